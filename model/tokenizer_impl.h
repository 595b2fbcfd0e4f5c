// Internals of aria::Tokenizer shared by model/tokenizer.cpp (the encode/decode pipeline, BPE, the
// vocab.json + merges.txt reader) and model/tokenizer_json.cpp (the tokenizer.json reader). Not
// installed API: include only from those two files.
#pragma once
#include <array>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aria/model/pretok_regex.h"
#include "aria/model/tokenizer.h"

namespace aria::tok {

// An added token (tokenizer.json "added_tokens", or GPT-2's <|endoftext|>): cut out of the text
// before normalization (normalized = false) or after it (true), never merged with its neighbours.
struct AddedToken {
  std::string content;  // as written (a normalized token is matched after normalizing it too)
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Leftmost-longest matcher over a set of added tokens (a byte trie).
class AddedMatcher {
 public:
  void add(const std::string& content, int index);
  bool empty() const { return nodes_.size() <= 1; }
  bool may_start(unsigned char c) const { return first_[c]; }
  // Longest token starting at pos: its index, or -1.
  int longest_at(std::string_view text, size_t pos, size_t& len) const;

 private:
  struct TrieNode {
    std::unordered_map<unsigned char, int> next;
    int token = -1;
  };
  std::vector<TrieNode> nodes_{1};
  std::array<bool, 256> first_{};
};

struct NormalizerStep {
  enum Kind { kPrepend, kReplace, kStrip } kind = kPrepend;
  std::string text;                     // kPrepend: prepended; kReplace: the literal pattern
  std::string content;                  // kReplace: the replacement
  std::shared_ptr<PretokRegex> regex;   // kReplace with a Regex pattern
  bool left = false, right = false;     // kStrip: white space on each side
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class Prepend { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  enum Kind { kSplit, kMetaspace, kByteLevel, kDigits } kind = kSplit;
  std::shared_ptr<PretokRegex> regex;  // kSplit on a Regex (else on `literal`)
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  std::string replacement;             // kMetaspace: the space marker ("▁")
  Prepend prepend = Prepend::kAlways;
  bool split = true;                   // kMetaspace: split before each marker
  bool add_prefix_space = false;       // kByteLevel
  bool use_regex = true;               // kByteLevel: GPT-2's regex
  bool individual_digits = false;      // kDigits
};

struct DecoderStep {
  enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind = kByteLevel;
  std::string pattern, content;        // kReplace (literal); kStrip: content is the stripped character
  std::shared_ptr<PretokRegex> regex;  // kReplace with a Regex pattern
  std::string replacement;             // kMetaspace
  bool drop_first = true;              // kMetaspace: markers of the first token are dropped
  int start = 0, stop = 0;             // kStrip
};

// One item of a TemplateProcessing "single" template: the sequence ($A) or a special token's ids.
struct TemplateItem {
  bool sequence = false;
  std::vector<int32_t> ids;
};

// A text piece on its way through the pipeline.
struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace prepend_scheme "first")
  int32_t added = -1;     // the id of the added token this piece is
};

}  // namespace aria::tok

namespace aria {

struct Tokenizer::Impl {
  // ---- the BPE model
  bool byte_level = false;  // symbols are bytes (a ByteLevel pre-tokenizer): tokens held as raw bytes
  std::unordered_map<std::string, int32_t> ids;  // model token -> id (raw bytes when byte_level)
  std::vector<std::string> spelling;             // id -> token as Hugging Face spells it (decoders)
  std::vector<bool> present;                     // id -> used by the vocabulary or an added token
  std::vector<bool> special;                     // id -> a special added token
  struct Merge {
    int32_t rank, id;
  };
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> rank, merged id
  std::array<int32_t, 256> byte_fallback{};    // id of "<0xNN>" per byte, -1 when absent or disabled
  std::array<int32_t, 256> byte_id{};          // byte_level: id of each single-byte token, -1 if none
  int32_t unk = -1;
  bool fuse_unk = false, ignore_merges = false;
  // ---- the pipeline around it
  std::vector<tok::AddedToken> added;
  tok::AddedMatcher raw_matcher, normalized_matcher;  // non-normalized / normalized added tokens
  std::vector<tok::NormalizerStep> normalizers;
  std::vector<tok::PreTokenizerStep> pre_tokenizers;
  bool has_decoder = false;
  std::vector<tok::DecoderStep> decoders;
  std::vector<tok::TemplateItem> template_single;  // the post-processor's single template; empty: none
  int32_t eos = -1;
  bool lossless = false;  // decode(encode(s)) == s for every byte string s
  // ---- per-word cache
  mutable std::mutex mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // Sizes the id tables, marks ids; the spelling is HF's.
  void add_token(int32_t id, const std::string& spelling_hf, bool is_special);
  void finish_added();  // builds the matchers, byte_id and the eos id once the vocabulary is complete
  int32_t token_to_id(const std::string& spelling_hf) const;
  // The model on one pre-tokenized word (tokenizer.cpp).
  void tokenize_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  // The pipeline around it (tokenizer_pipeline.cpp).
  void normalize(std::string& text) const;
  void encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;
  std::string decode(const std::vector<int32_t>& ids) const;
};

namespace tok {
// Calls emit(piece) for each match of GPT-2's pre-tokenizer regex, in order (tokenizer.cpp).
void split_gpt2_words(std::string_view text, const std::function<void(std::string_view)>& emit);
// GPT-2's byte-to-unicode spelling of a byte string, and its inverse (empty when `s` is not in it).
std::string bytes_to_spelling(std::string_view raw);
std::string spelling_to_bytes(std::string_view s);
// Adds merge (left, right) (HF spellings) at `rank`; returns what is wrong, or "" when it was added.
std::string add_merge(Tokenizer::Impl& impl, const std::string& left, const std::string& right, int32_t rank);
inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
}  // namespace tok

}  // namespace aria
