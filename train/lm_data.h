// Language-model data: a token stream and a batcher drawing random windows of it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace aria {

using TokenizeFn = std::function<std::vector<int32_t>(const std::string&)>;

struct TokenDataset {
  std::vector<int32_t> tokens;
};

// Reads the whole file and tokenizes it (e.g. with Gpt2Tokenizer::encode). Throws aria::Error for a
// missing or empty file, or a text that gives no tokens.
TokenDataset load_token_dataset(const std::string& path, const TokenizeFn& tokenize);

struct LmBatch {
  Tensor ids, targets;  // int32 [B, T]; targets[b, t] = ids[b, t + 1] of the same window
};

// Draws B windows of T + 1 consecutive tokens at uniformly random offsets (one Rng draw per
// window, in row order). Its state is the Rng's (seed, counter): save it, restore it, and the
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
  Rng rng_;
};

}  // namespace aria
