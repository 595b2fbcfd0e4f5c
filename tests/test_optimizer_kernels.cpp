// CPU optimizer and statistics kernels against hand computations: AdamW (with and without weight
// decay, several steps with bias corrections, clipping from a sum-of-squares scalar), sum_squares,
// square_accumulate.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::adamw_item;

namespace {

// torch.optim.AdamW on one scalar, written out in double. AdamWItem carries float hyperparameters,
// so the reference uses the same float-rounded values (f()).
double f(double x) { return double(float(x)); }

struct RefAdamW {
  double p, m = 0, v = 0;
  int t = 0;
  void step(double g, double lr, double b1, double b2, double eps, double wd) {
    ++t;
    const double bc1 = f(1 - std::pow(b1, t)), bc2 = f(1 - std::pow(b2, t));
    lr = f(lr), b1 = f(b1), b2 = f(b2), eps = f(eps), wd = f(wd);
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mh = m / bc1, vh = v / bc2;
    p -= lr * mh / (std::sqrt(vh) + eps);
  }
};

}  // namespace

TEST_CASE("adamw_update: decayed and non-decayed items over 3 steps match torch's formula") {
  for (DType t : {DType::F64, DType::F32}) {
    CAPTURE(std::string(dtype_name(t)));
    const double tol = t == DType::F64 ? 1e-12 : 1e-6;
    const std::vector<double> p0 = {0.5, -1.25, 2.0}, q0 = {1.0, -0.3};
    Tensor p = Tensor::from_vector(p0, {3}, t), q = Tensor::from_vector(q0, {2}, t);
    Tensor pm = Tensor::zeros({3}, t), pv = Tensor::zeros({3}, t), qm = Tensor::zeros({2}, t), qv = Tensor::zeros({2}, t);
    std::vector<RefAdamW> rp, rq;
    for (double x : p0) rp.push_back({x});
    for (double x : q0) rq.push_back({x});
    const std::vector<std::vector<double>> gp = {{0.1, -0.2, 0.3}, {0.4, 0.0, -0.1}, {-0.3, 0.2, 0.05}};
    const std::vector<std::vector<double>> gq = {{1.0, -2.0}, {0.5, 0.5}, {-1.5, 0.25}};
    for (int step = 1; step <= 3; ++step) {
      Tensor g1 = Tensor::from_vector(gp[size_t(step - 1)], {3}, t), g2 = Tensor::from_vector(gq[size_t(step - 1)], {2}, t);
      cpu::adamw_update({adamw_item(p, g1, pm, pv, step, 0.01f, 0.1f), adamw_item(q, g2, qm, qv, step, 0.01f, 0.0f)});
      for (size_t i = 0; i < 3; ++i) rp[i].step(gp[size_t(step - 1)][i], 0.01, 0.9, 0.95, 1e-8, 0.1);
      for (size_t i = 0; i < 2; ++i) rq[i].step(gq[size_t(step - 1)][i], 0.01, 0.9, 0.95, 1e-8, 0.0);
      auto pd = p.to_doubles(), qd = q.to_doubles(), md = pm.to_doubles(), vd = qv.to_doubles();
      for (size_t i = 0; i < 3; ++i) {
        CHECK(pd[i] == doctest::Approx(rp[i].p).epsilon(tol));
        CHECK(md[i] == doctest::Approx(rp[i].m).epsilon(tol));
      }
      for (size_t i = 0; i < 2; ++i) {
        CHECK(qd[i] == doctest::Approx(rq[i].p).epsilon(tol));
        CHECK(vd[i] == doctest::Approx(rq[i].v).epsilon(tol));
      }
    }
  }
}

TEST_CASE("adamw_update: one step by hand, with grad_scale") {
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (up to eps) plus the decay.
  Tensor p = Tensor::from_vector({2.0}, {1}, DType::F64), g = Tensor::from_vector({-4.0}, {1}, DType::F64);
  Tensor m = Tensor::zeros({1}, DType::F64), v = Tensor::zeros({1}, DType::F64);
  const AdamWItem it = adamw_item(p, g, m, v, 1, 0.01f, 0.5f, /*grad_scale=*/0.5f);  // g = -2
  cpu::adamw_update({it});
  const double gs = -2.0;
  const double want = 2.0 - 0.01 * 0.5 * 2.0 - 0.01 * gs / (std::abs(gs) + 1e-8);
  CHECK(p.item() == doctest::Approx(want).epsilon(1e-7));
  CHECK(m.item() == doctest::Approx(0.1 * gs).epsilon(1e-7));
  CHECK(v.item() == doctest::Approx(0.05 * gs * gs).epsilon(1e-7));
}

TEST_CASE("adamw_update with a clipping source equals the host-scaled update, and a non-finite norm skips every item") {
  // Two items, float64 and float32; their gradients' sum of squares is 16 (norm 4) or, in the
  // second case, 0.25 (norm 0.5), with max_norm 2 and grad_scale 0.5.
  for (double sumsq : {16.0, 0.25}) {
    CAPTURE(sumsq);
    const double factor = std::sqrt(sumsq) > 2.0 ? 2.0 / std::sqrt(sumsq) : 1.0;
    auto run = [&](bool clip_on_device, double clip_value) {
      Tensor p = Tensor::from_vector({0.5, -1.0, 2.0}, {3}, DType::F64), q = Tensor::from_vector({1.0, -3.0}, {2});
      Tensor pm = Tensor::full({3}, 0.1, DType::F64), pv = Tensor::full({3}, 0.2, DType::F64);
      Tensor qm = Tensor::full({2}, -0.1), qv = Tensor::full({2}, 0.3);
      const Tensor gp = Tensor::from_vector({0.3, -2.0, 1.0}, {3}, DType::F64), gq = Tensor::from_vector({4.0, 0.5}, {2});
      const float gs = clip_on_device ? 0.5f : float(0.5 * factor);
      std::vector<AdamWItem> items = {adamw_item(p, gp, pm, pv, 2, 0.01f, 0.1f, gs),
                                      adamw_item(q, gq, qm, qv, 2, 0.01f, 0.0f, gs)};
      if (clip_on_device) {
        const Tensor clip = Tensor::full({1}, clip_value, DType::F64);
        for (AdamWItem& it : items) it.clip_sumsq = clip, it.clip_max_norm = 2.0f;
      }
      cpu::adamw_update(views_of(items));
      std::vector<double> all;
      for (const Tensor& t : {p, q, pm, pv, qm, qv})
        for (double x : t.to_doubles()) all.push_back(x);
      return all;
    };
    const auto want = run(false, 0);
    CHECK(run(true, sumsq) == want);  // the same float multiplier either way: bit for bit
    // NaN or infinite sum of squares: every item keeps its param and moments.
    const auto untouched = run(true, NAN);
    CHECK(untouched == std::vector<double>{0.5, -1.0, 2.0, 1.0, -3.0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2,
                                           double(-0.1f), double(-0.1f), double(0.3f), double(0.3f)});
    CHECK(run(true, INFINITY) == untouched);
  }
}

TEST_CASE("adamw_update checks the clipping source: one float64 [1] tensor shared by every item") {
  Tensor p = Tensor::zeros({2}), g = Tensor::full({2}, 1.0), m = Tensor::zeros({2}), v = Tensor::zeros({2});
  Tensor p2 = Tensor::zeros({2}), m2 = Tensor::zeros({2}), v2 = Tensor::zeros({2});
  const Tensor clip = Tensor::full({1}, 1.0, DType::F64);
  AdamWItem a = adamw_item(p, g, m, v, 1, 0.1f, 0.0f), b = adamw_item(p2, g, m2, v2, 1, 0.1f, 0.0f);
  a.clip_sumsq = clip;
  CHECK_THROWS_WITH_AS(cpu::adamw_update({a, b}), doctest::Contains("item 1 does not share item 0's clip_sumsq"), Error);
  CHECK_THROWS_WITH_AS(cpu::adamw_update({b, a}), doctest::Contains("item 1 has a clip_sumsq tensor but item 0 has none"),
                       Error);
  b.clip_sumsq = clip.clone();  // equal value, another tensor
  CHECK_THROWS_WITH_AS(cpu::adamw_update({a, b}), doctest::Contains("does not share"), Error);
  a.clip_sumsq = b.clip_sumsq = Tensor::full({1}, 1.0, DType::F32);
  CHECK_THROWS_WITH_AS(cpu::adamw_update({a}), doctest::Contains("clip_sumsq must be a float64 [1] CPU tensor"), Error);
  a.clip_sumsq = Tensor::zeros({2}, DType::F64);
  CHECK_THROWS_WITH_AS(cpu::adamw_update({a}), doctest::Contains("clip_sumsq must be a float64 [1]"), Error);
  a.clip_sumsq = clip;
  a.clip_max_norm = NAN;
  CHECK_THROWS_WITH_AS(cpu::adamw_update({a}), doctest::Contains("non-finite clip_max_norm"), Error);
  CHECK(p.to_doubles() == std::vector<double>{0, 0});  // nothing ran
}

TEST_CASE("sum_squares accumulates over tensors of both float dtypes into the out scalar") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}, DType::F32);
  Tensor b = Tensor::from_vector({-1, 0.5, 2, 2}, {2, 2}, DType::F64);
  for (DType t : {DType::F64, DType::F32}) {
    Tensor out = Tensor::full({1}, 1.0, t);
    cpu::sum_squares({a, b}, out);
    CHECK(out.item() == doctest::Approx(1 + 14 + 9.25));
    cpu::sum_squares({}, out);
    CHECK(out.item() == doctest::Approx(24.25));
  }
  // a large tensor (OpenMP path) in float32, accumulated in double
  Tensor big = Tensor::full({100000}, 0.1, DType::F32);
  Tensor out = Tensor::zeros({1}, DType::F64);
  cpu::sum_squares({big}, out);
  // 1e5 double additions carry up to ~1e5 * 2^-53 relative rounding, depending on the thread count
  CHECK(out.item() == doctest::Approx(100000 * double(0.1f) * double(0.1f)).epsilon(1e-10));
}

TEST_CASE("square_accumulate: same shape and stacked [S, ...] samples") {
  Tensor acc = Tensor::from_vector({1, 1, 1, 1}, {2, 2}, DType::F64);
  cpu::square_accumulate(acc, Tensor::from_vector({1, 2, 3, 4}, {2, 2}, DType::F64), 0.5);
  CHECK(acc.to_doubles() == std::vector<double>{1.5, 3, 5.5, 9});
  Tensor g = Tensor::from_vector({1, 2, 3, 4, -1, 0, 2, 1, 0, 1, 1, 1}, {3, 2, 2}, DType::F64);
  cpu::square_accumulate(acc, g, 2.0);
  CHECK(acc.to_doubles() == std::vector<double>{1.5 + 2 * 2, 3 + 2 * 5, 5.5 + 2 * 14, 9 + 2 * 18});
  Tensor acc32 = Tensor::zeros({3}, DType::F32);
  cpu::square_accumulate(acc32, Tensor::from_vector({1, -2, 3, 1, 1, 1}, {2, 3}, DType::F32), 1.0);
  CHECK(acc32.to_doubles() == std::vector<double>{2, 5, 10});
  CHECK_THROWS_WITH_AS(cpu::square_accumulate(acc32, Tensor::zeros({2, 2}, DType::F32), 1.0),
                       doctest::Contains("square_accumulate: g"), Error);
}
