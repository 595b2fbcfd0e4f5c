#include "aria/model/lm_score.h"

#include <algorithm>

#include "aria/core/autograd.h"
#include "aria/core/error.h"

namespace aria {

int64_t lm_score_windows(int64_t n_tokens, int64_t n_positions) {
  ARIA_CHECK(n_tokens >= 2, "score: ", n_tokens, " token(s); at least 2 are needed");
  ARIA_CHECK(n_positions >= 2, "score: n_positions = ", n_positions, " leaves no token to predict in a window");
  const int64_t stride = n_positions - 1;
  return (n_tokens - 1 + stride - 1) / stride;
}

// The windows of `ids` through loss(ids [count, len], targets [count, len]) -> mean loss, for a model
// with n_positions positions and vocab_size ids on dev.
using WindowLoss = std::function<Tensor(const Tensor&, const Tensor&)>;
static LmScore score_tokens(int64_t n_positions, int64_t vocab_size, Device dev, const WindowLoss& loss,
                            const std::vector<int32_t>& ids, const LmScoreOptions& options,
                            const std::function<void(int64_t, int64_t, const LmScore&)>& progress) {
  const int64_t n = int64_t(ids.size());
  const int64_t total_windows = lm_score_windows(n, n_positions);
  for (size_t i = 0; i < ids.size(); ++i)
    ARIA_CHECK(ids[i] >= 0 && ids[i] < vocab_size, "score: token ", i, " has id ", ids[i],
               ", outside the model's vocabulary of ", vocab_size);
  ARIA_CHECK(options.max_batch >= 1 && options.token_budget >= 1, "score: max_batch and token_budget must be >= 1");

  NoGradGuard no_grad;
  const int64_t S = n_positions - 1;  // predictions per full window, and the stride
  const int64_t full = (n - 1) / S;   // windows of full length
  const int64_t batch = std::clamp<int64_t>(options.token_budget / S, 1, options.max_batch);
  LmScore r;
  int64_t done = 0;
  // One forward over windows [w0, w0 + count), each of length len.
  auto run = [&](int64_t w0, int64_t count, int64_t len) {
    std::vector<int32_t> in(size_t(count * len)), tg(size_t(count * len));
    for (int64_t w = 0; w < count; ++w) {
      const int32_t* src = ids.data() + (w0 + w) * S;
      std::copy(src, src + len, in.begin() + w * len);
      std::copy(src + 1, src + 1 + len, tg.begin() + w * len);
    }
    Tensor x = Tensor::from_ints(in, {count, len}, dev), y = Tensor::from_ints(tg, {count, len}, dev);
    // The loss is the mean over the count * len predictions (nothing ignored): back to a sum.
    r.loss_sum += loss(x, y).item() * double(count * len);
    r.predicted += count * len;
    done += count;
    if (progress) progress(done, total_windows, r);
  };
  for (int64_t w = 0; w < full; w += batch) run(w, std::min(batch, full - w), S);
  const int64_t rest = (n - 1) - full * S;
  if (rest > 0) run(full, 1, rest);
  ARIA_CHECK(r.predicted == n - 1 && done == total_windows, "internal: score predicted ", r.predicted, " of ", n - 1,
             " tokens in ", done, " of ", total_windows, " windows");
  return r;
}

LmScore gpt2_score_tokens(const Gpt2Model& m, const std::vector<int32_t>& ids, const LmScoreOptions& options,
                          const std::function<void(int64_t, int64_t, const LmScore&)>& progress) {
  return score_tokens(
      m.config.n_positions, m.config.vocab_size, m.device(),
      [&](const Tensor& x, const Tensor& y) { return gpt2_lm_loss(m, x, y); }, ids, options, progress);
}

LmScore llama_score_tokens(const LlamaModel& m, const std::vector<int32_t>& ids, const LmScoreOptions& options,
                           const std::function<void(int64_t, int64_t, const LmScore&)>& progress) {
  return score_tokens(
      m.config.max_position_embeddings, m.config.vocab_size, m.device(),
      [&](const Tensor& x, const Tensor& y) { return llama_lm_loss(m, x, y); }, ids, options, progress);
}

}  // namespace aria
