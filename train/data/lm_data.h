// Language-model data: a token stream and a batcher drawing random windows of it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aria/core/rng.h"
#include "aria/core/tensor.h"
#include "aria/train/data/token_shards.h"

namespace aria {

using TokenizeFn = std::function<std::vector<int32_t>(const std::string&)>;

// A token stream: in memory (`tokens`, the --corpus path) or memory-mapped token shards
// (`shards`, the --shards path; train/data/token_shards.h). Exactly one of the two is used.
struct TokenDataset {
  std::vector<int32_t> tokens;
  std::shared_ptr<const TokenShardSet> shards;
  uint64_t size() const { return shards ? shards->total_tokens : uint64_t(tokens.size()); }
  bool empty() const { return size() == 0; }
};

// The train and validation shards of a directory written by `aria tokenize --shards` (validation
// empty when the directory has no validation_*.bin). expected_vocab = 0 accepts any vocabulary.
TokenDataset load_shard_dataset(const std::string& dir, const std::string& split, uint32_t expected_vocab);

// Reads the whole file and tokenizes it (e.g. with Gpt2Tokenizer::encode). Throws aria::Error for a
// missing or empty file, or a text that gives no tokens.
TokenDataset load_token_dataset(const std::string& path, const TokenizeFn& tokenize);

struct LmBatch {
  Tensor ids, targets;  // int32 [B, T]; targets[b, t] = ids[b, t + 1] of the same window
};

// Draws B windows of T + 1 consecutive tokens at uniformly random offsets (one Rng draw per
// window, in row order; over shards, the offset is drawn uniformly over every window that lies inside
// one shard, so a window never crosses a shard boundary). Its state is the Rng's (seed, counter): save it, restore it, and the
// resumed run sees the same batches. Because draws are per window, B = 8 gives the same windows as
// two batches of B = 4 (what makes gradient accumulation testable).
class LmBatcher {
 public:
  // `data` must outlive the batcher. Throws aria::Error "corpus too short: N tokens for sequence length T" when N < T + 1.
  LmBatcher(const TokenDataset& data, int batch_size, int seq_len, uint64_t seed);
  LmBatch next(Device device = Device::cpu());

  RngState state() const { return rng_.state(); }
  void set_state(const RngState& s) { rng_.set_state(s); }
  int batch_size() const { return batch_size_; }
  int seq_len() const { return seq_len_; }

 private:
  const TokenDataset* data_;
  int batch_size_, seq_len_;
  std::vector<uint64_t> window_ends_;  // shards: cumulative number of window starts per shard
  Rng rng_;
};

}  // namespace aria
