#include "aria/train/data/lm_data.h"

#include <algorithm>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

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

TokenDataset load_shard_dataset(const std::string& dir, const std::string& split, uint32_t expected_vocab) {
  TokenDataset d;
  d.shards = std::make_shared<const TokenShardSet>(open_shards(dir, split, expected_vocab));
  return d;
}

LmBatcher::LmBatcher(const TokenDataset& data, int batch_size, int seq_len, uint64_t seed)
    : data_(&data), batch_size_(batch_size), seq_len_(seq_len), rng_(seed) {
  ARIA_CHECK(batch_size >= 1, "batch size must be >= 1, got ", batch_size);
  ARIA_CHECK(seq_len >= 1, "sequence length must be >= 1, got ", seq_len);
  ARIA_CHECK(!data.empty(), "corpus is empty (0 tokens)");
  if (data.shards) {
    uint64_t total = 0, longest = 0;
    for (const auto& s : data.shards->shards) {
      longest = std::max<uint64_t>(longest, s->size());
      if (s->size() > uint64_t(seq_len)) total += s->size() - uint64_t(seq_len);
      window_ends_.push_back(total);
    }
    ARIA_CHECK(total > 0, "corpus too short: the longest shard has ", longest, " tokens for sequence length ",
               seq_len, " (need at least ", int64_t(seq_len) + 1, ")");
    return;
  }
  ARIA_CHECK(int64_t(data.tokens.size()) >= int64_t(seq_len) + 1, "corpus too short: ", data.tokens.size(),
             " tokens for sequence length ", seq_len, " (need at least ", int64_t(seq_len) + 1, ")");
}

LmBatch LmBatcher::next(Device device) {
  const size_t T = size_t(seq_len_);
  std::vector<int32_t> ids(size_t(batch_size_) * T), targets(ids.size());
  if (data_->shards) {
    const uint64_t windows = window_ends_.back();
    for (size_t b = 0; b < size_t(batch_size_); ++b) {
      const uint64_t r = rng_.below(windows);
      const size_t k = size_t(std::upper_bound(window_ends_.begin(), window_ends_.end(), r) - window_ends_.begin());
      const uint64_t off = r - (k ? window_ends_[k - 1] : 0);
      const uint16_t* w = data_->shards->shards[k]->data() + off;
      std::copy(w, w + T, ids.begin() + long(b * T));
      std::copy(w + 1, w + T + 1, targets.begin() + long(b * T));
    }
    const Shape shape{batch_size_, seq_len_};
    return {Tensor::from_ints(ids, shape, device), Tensor::from_ints(targets, shape, device)};
  }
  const uint64_t windows = uint64_t(data_->tokens.size() - T);  // valid start offsets
  for (size_t b = 0; b < size_t(batch_size_); ++b) {
    const int32_t* w = data_->tokens.data() + rng_.below(windows);
    std::copy(w, w + T, ids.begin() + b * T);
    std::copy(w + 1, w + T + 1, targets.begin() + b * T);
  }
  const Shape shape{batch_size_, seq_len_};
  return {Tensor::from_ints(ids, shape, device), Tensor::from_ints(targets, shape, device)};
}

}  // namespace aria
