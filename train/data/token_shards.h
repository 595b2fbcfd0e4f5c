// Token shards: GPT-2 token ids tokenized once and stored as binary files that training maps into
// memory. One shard file is
//   header (64 bytes, little-endian): magic "ARIATOKS", uint32 version (1), uint32 vocab size,
//     uint64 token count, uint64 checksum of the payload, 32 zero bytes;
//   payload: token count x uint16 token ids (each < vocab size).
// The checksum is 64-bit FNV-1a over the payload's 8-byte little-endian words (the tail
// zero-padded). Opening a shard validates everything (size, magic, version, vocab, checksum,
// ids): a truncated, corrupted or wrong-vocabulary shard is an aria::Error naming the file.
// A shard directory holds <split>_NNNNNN.bin (split = train, validation), in order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aria {

class Tokenizer;
using Gpt2Tokenizer = Tokenizer;

inline constexpr char kShardMagic[8] = {'A', 'R', 'I', 'A', 'T', 'O', 'K', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

uint64_t shard_checksum(const uint16_t* ids, size_t n);

// Writes one shard atomically (a temporary file renamed into place). Throws for an id >= vocab_size
// or vocab_size > 65536.
void write_token_shard(const std::string& path, const uint16_t* ids, size_t n, uint32_t vocab_size);
void write_token_shard(const std::string& path, const std::vector<int32_t>& ids, uint32_t vocab_size);

// A validated, read-only memory map of one shard. expected_vocab = 0 accepts any vocabulary size.
class TokenShard {
 public:
  static std::shared_ptr<TokenShard> open(const std::string& path, uint32_t expected_vocab = 0);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const uint16_t* data() const { return ids_; }
  size_t size() const { return n_; }
  uint32_t vocab_size() const { return vocab_; }
  const std::string& path() const { return path_; }

 private:
  TokenShard() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* ids_ = nullptr;
  size_t n_ = 0;
  uint32_t vocab_ = 0;
};

// A shard's header, read without mapping or checksumming the payload: what identifies its content
// cheaply (the model cache keys a recipe by these instead of re-reading the tokens). Validates the
// magic, version, vocabulary size and that the file's size matches the token count; the checksum
// itself is checked only when the shard is opened.
struct ShardHeader {
  uint32_t vocab_size = 0;
  uint64_t tokens = 0;
  uint64_t checksum = 0;
};
ShardHeader read_shard_header(const std::string& path);

// The shards of one split of a directory, in file order, as one logical token stream (a window
// never crosses a shard boundary).
struct TokenShardSet {
  std::vector<std::shared_ptr<TokenShard>> shards;
  uint64_t total_tokens = 0;
  uint32_t vocab_size = 0;
};

// Sorted paths of dir/<split>_*.bin; empty when there are none.
std::vector<std::string> list_shards(const std::string& dir, const std::string& split);
// Opens and validates every shard of `split`; throws when there is none or they disagree on the vocabulary.
TokenShardSet open_shards(const std::string& dir, const std::string& split, uint32_t expected_vocab = 0);

// Cuts `text` into about `chunks` pieces at paragraph boundaries where GPT-2's pre-tokenizer splits
// anyway (after a single '\n' between two non-space characters), so that encoding the pieces and
// concatenating the ids equals encoding the whole text.
std::vector<std::string_view> split_for_tokenizing(std::string_view text, size_t chunk_bytes);

// Tokenizes `text` with `threads` threads (each taking pieces from split_for_tokenizing in turn);
// the ids equal tok.encode(text).
std::vector<int32_t> tokenize_parallel(const Gpt2Tokenizer& tok, const std::string& text, int threads,
                                       size_t chunk_bytes = 1 << 20);

// Writes ids as dir/<split>_000000.bin, _000001.bin, ... of at most tokens_per_shard tokens each,
// after removing that split's old shards. Returns the paths written.
std::vector<std::string> write_split_shards(const std::string& dir, const std::string& split,
                                            const std::vector<int32_t>& ids, uint32_t vocab_size,
                                            size_t tokens_per_shard);

}  // namespace aria
