// gpt2_score_tokens (aria score): windows of n_positions tokens overlapping by one, run several to a
// forward, give the loss of scoring each window alone (the pre-batching code of aria score, written
// out below), on the CPU and on the GPU; progress is reported after every forward.
#include <doctest/doctest.h>

#include <cmath>

#include "aria/core/autograd.h"
#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "aria/model/lm_score.h"
#include "tests/support/test_util.h"

using namespace aria;

namespace {

std::vector<int32_t> random_ids(size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = int32_t(rng.uniform() * vocab) % vocab;
  return ids;
}

// aria score before batching: one window per forward, [start, start + n_positions), stride
// n_positions - 1; the mean over all predictions.
double reference_loss(const Gpt2Model& m, const std::vector<int32_t>& ids) {
  NoGradGuard ng;
  const size_t window = size_t(m.config.n_positions);
  double total = 0;
  int64_t predicted = 0;
  for (size_t start = 0; start + 1 < ids.size(); start += window - 1) {
    const size_t end = std::min(ids.size(), start + window);
    std::vector<int32_t> in(ids.begin() + long(start), ids.begin() + long(end) - 1);
    std::vector<int32_t> tg(ids.begin() + long(start) + 1, ids.begin() + long(end));
    const int64_t n = int64_t(in.size());
    Tensor x = Tensor::from_ints(in, {1, n}, m.device()), y = Tensor::from_ints(tg, {1, n}, m.device());
    total += gpt2_lm_loss(m, x, y).item() * double(n);
    predicted += n;
  }
  return total / double(predicted);
}

}  // namespace

TEST_CASE("batched scoring equals scoring one window at a time (CPU, float32 and float64)") {
  // n_positions 16: full windows predict 15 tokens each.
  Gpt2Model m32 = gpt2_random(testing::tiny_gpt2_config(64, 16, 16, 2, 2), 11);
  Gpt2Model m64 = m32.to(DType::F64);
  for (size_t n : {2, 15, 16, 17, 31, 32, 200}) {
    CAPTURE(n);
    const auto ids = random_ids(n, 64, n);
    const double want32 = reference_loss(m32, ids), want64 = reference_loss(m64, ids);
    const int64_t windows = lm_score_windows(int64_t(n), 16);
    CHECK(windows == int64_t((n - 1 + 14) / 15));
    for (int64_t batch : {1, 3, 16}) {
      CAPTURE(batch);
      std::vector<int64_t> seen;
      LmScore r = gpt2_score_tokens(m32, ids, LmScoreOptions{.max_batch = batch},
                                    [&](int64_t done, int64_t total, const LmScore& so_far) {
                                      CHECK(total == windows);
                                      CHECK(so_far.predicted > 0);
                                      seen.push_back(done);
                                    });
      CHECK(r.predicted == int64_t(n) - 1);
      CHECK(r.mean() == doctest::Approx(want32).epsilon(1e-6));
      // One call per forward: full windows in groups of `batch`, then the short last one alone.
      const int64_t full = int64_t(n - 1) / 15, rest = int64_t(n - 1) % 15;
      std::vector<int64_t> want;
      for (int64_t w = 0; w < full; w += batch) want.push_back(std::min(full, w + batch));
      if (rest) want.push_back(full + 1);
      CHECK(seen == want);
      // float64: the same numbers to rounding, so the batching changes nothing but the summation order.
      LmScore r64 = gpt2_score_tokens(m64, ids, LmScoreOptions{.max_batch = batch});
      CHECK(r64.mean() == doctest::Approx(want64).epsilon(1e-12));
    }
  }
}

TEST_CASE("the token budget bounds a forward's windows") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(64, 16, 16, 2, 2), 12);
  const auto ids = random_ids(151, 64, 3);  // 10 full windows of 15 predictions
  std::vector<int64_t> seen;
  LmScore r = gpt2_score_tokens(m, ids, LmScoreOptions{.max_batch = 16, .token_budget = 45},
                                [&](int64_t done, int64_t, const LmScore&) { seen.push_back(done); });
  CHECK(seen == std::vector<int64_t>{3, 6, 9, 10});  // 45 tokens = 3 windows per forward
  CHECK(r.mean() == doctest::Approx(reference_loss(m, ids)).epsilon(1e-6));
  // A budget below one window still runs one window per forward.
  seen.clear();
  gpt2_score_tokens(m, ids, LmScoreOptions{.max_batch = 16, .token_budget = 1},
                    [&](int64_t done, int64_t, const LmScore&) { seen.push_back(done); });
  CHECK(seen.size() == 10);
}

TEST_CASE("scoring refuses what it cannot score") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(64, 16, 16, 2, 2), 13);
  CHECK_THROWS_WITH_AS(gpt2_score_tokens(m, {5}), doctest::Contains("at least 2"), Error);
  CHECK_THROWS_WITH_AS(gpt2_score_tokens(m, {5, 64, 1}), doctest::Contains("token 1 has id 64"), Error);
  CHECK_THROWS_WITH_AS(gpt2_score_tokens(m, {5, -1}), doctest::Contains("token 1 has id -1"), Error);
  Gpt2Model one = gpt2_random(testing::tiny_gpt2_config(64, 1, 16, 1, 2), 13);
  CHECK_THROWS_WITH_AS(gpt2_score_tokens(one, {1, 2, 3}), doctest::Contains("n_positions = 1"), Error);
}

TEST_CASE("batched scoring on the GPU equals one window at a time on the CPU") {
  if (!testing::gpu_or_skip("batched scoring on the GPU")) return;
  Gpt2Model cpu = gpt2_random(testing::tiny_gpt2_config(64, 16, 16, 2, 2), 14);
  Gpt2Model gpu = cpu.to(Device::cuda(0));
  for (size_t n : {2, 16, 200, 451}) {
    CAPTURE(n);
    const auto ids = random_ids(n, 64, 100 + n);
    const double want = reference_loss(cpu, ids);
    for (int64_t batch : {1, 16}) {
      LmScore r = gpt2_score_tokens(gpu, ids, LmScoreOptions{.max_batch = batch});
      CHECK(r.predicted == int64_t(n) - 1);
      CHECK(r.mean() == doctest::Approx(want).epsilon(1e-5));
    }
  }
}
