#include "train/lm_data.h"

#include "core/error.h"
#include "core/file_io.h"

namespace aria {

TokenDataset load_token_dataset(const std::string& path, const TokenizeFn& tokenize) {
  // A regular file only: a FIFO would block open() forever, a folder is not "empty".
  const std::string text = io::read_file(path, "text file");
  ARIA_CHECK(!text.empty(), "text file '", path, "' is empty");
  TokenDataset d;
  d.tokens = tokenize(text);
  ARIA_CHECK(!d.tokens.empty(), "text file '", path, "' (", text.size(), " bytes) gave no tokens");
  return d;
}

LmBatcher::LmBatcher(const TokenDataset& data, int batch_size, int seq_len, uint64_t seed)
    : data_(&data), batch_size_(batch_size), seq_len_(seq_len), rng_(seed) {
  ARIA_CHECK(batch_size >= 1, "batch size must be >= 1, got ", batch_size);
  ARIA_CHECK(seq_len >= 1, "sequence length must be >= 1, got ", seq_len);
  ARIA_CHECK(!data.tokens.empty(), "corpus is empty (0 tokens)");
  ARIA_CHECK(int64_t(data.tokens.size()) >= int64_t(seq_len) + 1, "corpus too short: ", data.tokens.size(),
             " tokens for sequence length ", seq_len, " (need at least ", int64_t(seq_len) + 1, ")");
}

LmBatch LmBatcher::next(Device device) {
  const size_t T = size_t(seq_len_);
  const uint64_t windows = uint64_t(data_->tokens.size() - T);  // valid start offsets
  std::vector<int32_t> ids(size_t(batch_size_) * T), targets(ids.size());
  for (size_t b = 0; b < size_t(batch_size_); ++b) {
    const int32_t* w = data_->tokens.data() + rng_.below(windows);
    std::copy(w, w + T, ids.begin() + b * T);
    std::copy(w + 1, w + T + 1, targets.begin() + b * T);
  }
  const Shape shape{batch_size_, seq_len_};
  return {Tensor::from_ints(ids, shape, device), Tensor::from_ints(targets, shape, device)};
}

}  // namespace aria
