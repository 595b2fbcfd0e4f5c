// The CPU kernels of the fused rows against compositions of existing rows, on fresh random inputs
// of awkward sizes: add_layernorm_forward == binary add + layernorm_forward; layernorm_backward_residual
// == layernorm_backward + dres (also with dres aliasing dx); cross_entropy_fused == cross_entropy_forward
// + cross_entropy_backward with dlosses = 1; masked_mean against a hand loop; AdamW through a float32
// master == the plain float32 step; bfloat16 reads in sum_squares / square_accumulate;
// gelu_backward_bias_grad == unary_backward(Gelu) + sum_to (also in place).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::adamw_item;
using testing::bit_equal;
using testing::randn;
using testing::relative_l2;
using testing::round_bf16;

namespace {

// Targets in [0, V) with every `ignore_every`-th (from 1) set to -100.
Tensor targets_for(int64_t N, int64_t V, uint64_t seed, int ignore_every = 3) {
  Rng rng(seed);
  std::vector<int32_t> t(size_t(N), 0);
  for (int64_t n = 0; n < N; ++n)
    t[size_t(n)] = (ignore_every > 0 && n % ignore_every == 1) ? -100 : int32_t(rng.below(uint64_t(V)));
  return Tensor::from_ints(t, {N});
}

std::string tag(DType t, int64_t N, int64_t C) {
  return std::string(dtype_name(t)) + " [" + std::to_string(N) + ", " + std::to_string(C) + "]";
}

// max over c of |got[c] - want[c]| / sum_r |d[r, c]|: the error of column sums of the [R, C] terms d,
// relative to the size of those terms (so that a column whose terms cancel is not held to a
// relative error of its small sum).
double column_sum_error(const Tensor& got, const Tensor& want, const Tensor& d) {
  const int64_t C = want.numel(), R = C ? d.numel() / C : 0;
  const Tensor g = got.to(DType::F64), w = want.to(DType::F64), t = d.to(DType::F64);
  const double *pg = g.data<double>(), *pw = w.data<double>(), *pt = t.data<double>();
  double worst = 0;
  for (int64_t c = 0; c < C; ++c) {
    double scale = 0;
    for (int64_t r = 0; r < R; ++r) scale += std::fabs(pt[r * C + c]);
    worst = std::max(worst, std::fabs(pg[c] - pw[c]) / std::max(scale, 1e-300));
  }
  return worst;
}

}  // namespace

TEST_CASE("CPU add_layernorm_forward equals binary add then layernorm_forward") {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t N : {1, 7, 129})
      for (int64_t C : {768, 771, 5}) {
        CAPTURE(tag(dt, N, C));
        Tensor x = randn({N, C}, 1, 2.0, dt), r = randn({N, C}, 2, 1.0, dt);
        Tensor w = Tensor::empty({C}, dt), b = randn({C}, 4, 1.0, dt);
        Rng(3).fill_uniform(w, 0.5, 1.5);  // away from 0: the check below divides by w
        Tensor sum = Tensor::empty({N, C}, dt), y = Tensor::empty({N, C}, dt);
        Tensor mean = Tensor::empty({N}, dt), rstd = Tensor::empty({N}, dt);
        cpu::add_layernorm_forward(x, r, w, b, sum, y, mean, rstd, 1e-5);
        Tensor s2 = Tensor::empty({N, C}, dt), y2 = Tensor::empty({N, C}, dt);
        Tensor m2 = Tensor::empty({N}, dt), r2 = Tensor::empty({N}, dt);
        cpu::binary(int(BinaryOp::Add), x, r, s2);
        cpu::layernorm_forward(s2, w, b, y2, m2, r2, 1e-5);
        // Same rounded sum, same normalisation code: identical results.
        CHECK(bit_equal(sum, s2));
        CHECK(bit_equal(y, y2));
        CHECK(bit_equal(mean, m2));
        CHECK(bit_equal(rstd, r2));
        // And the values are a layernorm: every row of (y - b) / w has mean 0 and variance 1.
        auto yv = y.to_doubles(), wv = w.to_doubles(), bv = b.to_doubles();
        double worst = 0;
        for (int64_t n = 0; n < N; ++n) {
          double s = 0, q = 0;
          for (int64_t c = 0; c < C; ++c) {
            const double z = (yv[size_t(n * C + c)] - bv[size_t(c)]) / wv[size_t(c)];
            s += z;
            q += z * z;
          }
          worst = std::max({worst, std::abs(s / double(C)), std::abs(q / double(C) - 1.0)});
        }
        CHECK(worst < (dt == DType::F64 ? 1e-4 : 2e-3));  // eps = 1e-5 shrinks the variance a little
      }
}

TEST_CASE("CPU layernorm_backward_residual equals layernorm_backward plus dres, also in place") {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t N : {1, 7, 129})
      for (int64_t C : {768, 771}) {
        CAPTURE(tag(dt, N, C));
        const double tol = dt == DType::F64 ? 1e-13 : 1e-6;
        Tensor x = randn({N, C}, 10, 2.0, dt), w = randn({C}, 11, 1.0, dt), b = randn({C}, 12, 1.0, dt);
        Tensor y = Tensor::empty({N, C}, dt), mean = Tensor::empty({N}, dt), rstd = Tensor::empty({N}, dt);
        cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
        Tensor dy = randn({N, C}, 13, 1.0, dt), dres = randn({N, C}, 14, 1.0, dt);
        Tensor dw0 = randn({C}, 15, 1.0, dt), db0 = randn({C}, 16, 1.0, dt);
        // reference: plain backward, then + dres
        Tensor dx_ref = Tensor::empty({N, C}, dt), dw_ref = dw0.clone(), db_ref = db0.clone();
        cpu::layernorm_backward(x, w, mean, rstd, dy, dx_ref, dw_ref, db_ref);
        Tensor dx_plus = Tensor::empty({N, C}, dt);
        cpu::binary(int(BinaryOp::Add), dx_ref, dres, dx_plus);
        // undefined dres: exactly layernorm_backward
        Tensor dx1 = Tensor::empty({N, C}, dt), dw1 = dw0.clone(), db1 = db0.clone();
        cpu::layernorm_backward_residual(x, w, mean, rstd, dy, Tensor(), dx1, dw1, db1);
        CHECK(bit_equal(dx1, dx_ref));
        CHECK(bit_equal(dw1, dw_ref));
        CHECK(bit_equal(db1, db_ref));
        // separate dres
        Tensor dx2 = Tensor::empty({N, C}, dt), dw2 = dw0.clone(), db2 = db0.clone();
        cpu::layernorm_backward_residual(x, w, mean, rstd, dy, dres, dx2, dw2, db2);
        CHECK(relative_l2(dx2, dx_plus) <= tol);
        CHECK(bit_equal(dw2, dw_ref));  // dw/db do not see dres
        CHECK(bit_equal(db2, db_ref));
        // dres aliasing dx: dx holds the residual gradient on entry
        Tensor dx3 = dres.clone(), dw3 = dw0.clone(), db3 = db0.clone();
        cpu::layernorm_backward_residual(x, w, mean, rstd, dy, dx3, dx3, dw3, db3);
        CHECK(bit_equal(dx3, dx2));
        CHECK(relative_l2(dx3, dx_plus) <= tol);
      }
}

TEST_CASE("CPU cross_entropy_fused equals cross_entropy_forward + backward with dlosses = 1") {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t N : {1, 7, 129})
      for (int64_t V : {1, 7, 1000, 50257}) {
        if (N * V > 8'000'000) continue;
        CAPTURE(tag(dt, N, V));
        Tensor logits = randn({N, V}, 20, 3.0, dt);
        Tensor t = targets_for(N, V, 21);
        Tensor losses_ref = Tensor::empty({N}, dt), lse = Tensor::empty({N}, dt);
        cpu::cross_entropy_forward(logits, t, losses_ref, lse, -100);
        Tensor ones = Tensor::full({N}, 1.0, dt), grad_ref = Tensor::empty({N, V}, dt);
        cpu::cross_entropy_backward(logits, t, lse, ones, grad_ref, -100);
        Tensor fused = logits.clone(), losses = Tensor::full({N}, NAN, dt);
        cpu::cross_entropy_fused(fused, t, losses, -100);
        CHECK(bit_equal(losses, losses_ref));
        CHECK(bit_equal(fused, grad_ref));
        // Independent facts: each kept row sums to 0 (softmax sums to 1, minus the onehot), ignored
        // rows and their losses are 0, losses are >= 0.
        auto g = fused.to_doubles(), l = losses.to_doubles();
        auto tv = t.to_ints();
        for (int64_t n = 0; n < N; ++n) {
          double s = 0, a = 0;
          for (int64_t v = 0; v < V; ++v) {
            s += g[size_t(n * V + v)];
            a += std::abs(g[size_t(n * V + v)]);
          }
          if (tv[size_t(n)] == -100) {
            CHECK(a == 0.0);
            CHECK(l[size_t(n)] == 0.0);
          } else {
            CHECK(std::abs(s) < (dt == DType::F64 ? 1e-12 : 1e-5));
            CHECK(l[size_t(n)] >= 0.0);
          }
        }
      }
}

TEST_CASE("CPU cross_entropy_fused refuses mismatched losses and out-of-range targets") {
  Tensor logits = randn({3, 5}, 22, 1.0, DType::F32);
  Tensor t = Tensor::from_ints({0, 4, -100}, {3});
  CHECK_THROWS_WITH_AS(cpu::cross_entropy_fused(logits, t, Tensor::empty({3}, DType::F64), -100),
                       doctest::Contains("losses"), Error);
  CHECK_THROWS_AS(cpu::cross_entropy_fused(logits, Tensor::from_ints({0, 5, 1}, {3}), Tensor::empty({3}), -100), Error);
}

TEST_CASE("CPU masked_mean matches a hand loop (float32 and float64, ignored rows, all ignored)") {
  for (DType lt : {DType::F32, DType::F64})
    for (DType ot : {DType::F32, DType::F64})
      for (int64_t N : {1, 7, 129, 1000}) {
        CAPTURE(tag(lt, N, 1));
        CAPTURE(std::string(dtype_name(ot)));
        Tensor losses = randn({N}, 30 + uint64_t(N), 2.0, lt);
        Tensor t = targets_for(N, 50, 31, 4);
        auto lv = losses.to_doubles();
        auto tv = t.to_ints();
        double s = 0;
        int64_t c = 0;
        for (int64_t n = 0; n < N; ++n) {
          s += lv[size_t(n)];
          c += tv[size_t(n)] != -100;
        }
        const double want = s / double(std::max<int64_t>(c, 1));
        Tensor out = Tensor::full({1}, NAN, ot), count = Tensor::full({1}, NAN, ot);
        cpu::masked_mean(losses, t, out, count, -100);
        CHECK(count.item() == double(c));
        const double tol = ot == DType::F64 && lt == DType::F64 ? 1e-14 : 1e-6;
        CHECK(std::abs(out.item() - want) <= tol * std::max(1.0, std::abs(want)));
      }
  // every target ignored: mean 0 over a count of 0 (no division by zero)
  Tensor losses = Tensor::zeros({5}), out = Tensor::empty({1}), count = Tensor::empty({1});
  cpu::masked_mean(losses, Tensor::from_ints({-100, -100, -100, -100, -100}, {5}), out, count, -100);
  CHECK(out.item() == 0.0);
  CHECK(count.item() == 0.0);
  // another ignore_index
  Tensor l2 = Tensor::from_vector({1, 2, 3, 4}, {4}), t2 = Tensor::from_ints({7, -100, 7, 0}, {4});
  cpu::masked_mean(l2, t2, out, count, 7);
  CHECK(count.item() == 2.0);
  CHECK(out.item() == doctest::Approx(5.0));
  CHECK_THROWS_AS(cpu::masked_mean(l2, Tensor::from_ints({1, 2}, {2}), out, count, -100), Error);
}

namespace {

constexpr float kLr = 3e-3f, kGradScale = 0.7f;  // every AdamW item's (a grad_scale the kernel must apply)

}  // namespace

TEST_CASE("CPU adamw_update through a float32 master equals the plain float32 step, param = bf16(master)") {
  for (int64_t n : {1, 7, 1000, 40000}) {  // 40000: past the OpenMP threshold
    CAPTURE(n);
    Tensor p0 = randn({n}, 40, 1.0, DType::F32);
    // plain float32 item, and master items with a bf16 param and a float32 or a bf16 grad
    Tensor pf = p0.clone(), mf = Tensor::zeros({n}), vf = Tensor::zeros({n});
    Tensor master = p0.clone(), pb = p0.to(DType::BF16), mb = Tensor::zeros({n}), vb = Tensor::zeros({n});
    Tensor master2 = p0.clone(), pb2 = p0.to(DType::BF16), mb2 = Tensor::zeros({n}), vb2 = Tensor::zeros({n});
    for (int step = 1; step <= 10; ++step) {
      Tensor g = round_bf16(randn({n}, 100 + uint64_t(step), 1.0, DType::F32));  // bf16-representable
      AdamWItem plain = adamw_item(pf, g, mf, vf, step, kLr, 0.1f, kGradScale);
      AdamWItem with_master = adamw_item(pb, g, mb, vb, step, kLr, 0.1f, kGradScale);
      with_master.master = master;
      AdamWItem bf16_grad = adamw_item(pb2, g.to(DType::BF16), mb2, vb2, step, kLr, 0.1f, kGradScale);
      bf16_grad.master = master2;
      cpu::adamw_update({with_master, plain, bf16_grad});  // mixed in one call
    }
    CHECK(bit_equal(master, pf));
    CHECK(bit_equal(mb, mf));
    CHECK(bit_equal(vb, vf));
    CHECK(bit_equal(master2, pf));
    CHECK(bit_equal(pb, pf.to(DType::BF16)));
    CHECK(bit_equal(pb2, pb));
    CHECK(relative_l2(master, p0) > 1e-3);  // it moved
  }
}

TEST_CASE("CPU adamw_update checks the mixed-precision item layout") {
  Tensor p = Tensor::zeros({4}), g = Tensor::zeros({4}), m = Tensor::zeros({4}), v = Tensor::zeros({4});
  AdamWItem it = adamw_item(p.to(DType::BF16), g, m, v, 1, kLr, 0, kGradScale);
  CHECK_THROWS_WITH_AS(cpu::adamw_update({it}), doctest::Contains("master"), Error);  // bf16 param, no master
  it.master = Tensor::zeros({4}, DType::F64);
  CHECK_THROWS_WITH_AS(cpu::adamw_update({it}), doctest::Contains("master"), Error);
  it.master = Tensor::zeros({5});
  CHECK_THROWS_AS(cpu::adamw_update({it}), Error);
  it.master = Tensor::zeros({4});
  it.m = Tensor::zeros({4}, DType::F64);
  CHECK_THROWS_AS(cpu::adamw_update({it}), Error);
  // nothing is updated when a later item is bad
  Tensor good = Tensor::full({4}, 1.0);
  AdamWItem ok =
      adamw_item(good, Tensor::full({4}, 1.0), Tensor::zeros({4}), Tensor::zeros({4}), 1, kLr, 0, kGradScale);
  CHECK_THROWS_AS(cpu::adamw_update({ok, it}), Error);
  CHECK(good.to_floats() == std::vector<float>(4, 1.0f));
}

TEST_CASE("CPU sum_squares and square_accumulate read bfloat16 as its float32 value") {
  Tensor a = round_bf16(randn({1001}, 50, 1.0, DType::F32)), b = randn({77}, 51, 1.0, DType::F64);
  Tensor want = Tensor::full({1}, 0.5, DType::F64), got = Tensor::full({1}, 0.5, DType::F64);
  cpu::sum_squares({a, b}, want);
  cpu::sum_squares({a.to(DType::BF16), b}, got);
  CHECK(got.item() == want.item());
  Tensor acc = randn({300}, 52, 1.0, DType::F32), acc2 = acc.clone();
  Tensor g = round_bf16(randn({3, 300}, 53, 1.0, DType::F32));
  cpu::square_accumulate(acc, g, 0.25);
  cpu::square_accumulate(acc2, g.to(DType::BF16), 0.25);
  CHECK(bit_equal(acc, acc2));
  CHECK_THROWS_AS(cpu::square_accumulate(Tensor::zeros({300}, DType::F64), g.to(DType::BF16), 1.0), Error);
}

TEST_CASE("CPU gelu_backward_bias_grad equals unary_backward(Gelu) then sum_to, also in place") {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t R : {1, 7, 513, 1300})  // 513, 1300: more than one chunk of rows
      for (int64_t C : {1, 5, 768, 771}) {
        CAPTURE(tag(dt, R, C));
        const Tensor pre = randn({R, C}, 40, 2.0, dt), dh = randn({R, C}, 41, 1.0, dt);
        // reference: the unfused rows
        Tensor d_ref = Tensor::empty({R, C}, dt), b_ref = Tensor::empty({1, C}, dt);
        cpu::unary_backward(int(UnaryOp::Gelu), pre, Tensor(), dh, d_ref, 0);
        cpu::sum_to(d_ref, b_ref);
        Tensor dpre = Tensor::full({R, C}, NAN, dt), db = Tensor::full({C}, NAN, dt);
        cpu::gelu_backward_bias_grad(pre, dh, dpre, db);
        CHECK(bit_equal(dpre, d_ref));  // one derivative function, one product
        const double err = column_sum_error(db, b_ref, d_ref);
        CAPTURE(err);
        CHECK(err <= (dt == DType::F64 ? 1e-12 : 1e-6));
        // dpre aliasing dh (as the MLP backward calls it): the same dpre, bit for bit the same db
        Tensor x = dh.clone(), db2 = Tensor::full({C}, NAN, dt);
        cpu::gelu_backward_bias_grad(pre, x, x, db2);
        CHECK(bit_equal(x, d_ref));
        CHECK(bit_equal(db2, db));
      }
}

TEST_CASE("CPU gelu_backward_bias_grad: rows of the last dimension, no rows, and its argument checks") {
  const Tensor pre = randn({2, 3, 5}, 42, 2.0, DType::F64), dh = randn({2, 3, 5}, 43, 1.0, DType::F64);
  Tensor d3 = Tensor::empty({2, 3, 5}, DType::F64), b3 = Tensor::empty({5}, DType::F64);
  cpu::gelu_backward_bias_grad(pre, dh, d3, b3);
  Tensor d2 = Tensor::empty({6, 5}, DType::F64), b2 = Tensor::empty({5}, DType::F64);
  cpu::gelu_backward_bias_grad(pre.reshape({6, 5}), dh.reshape({6, 5}), d2, b2);
  CHECK(bit_equal(d3, d2));
  CHECK(bit_equal(b3, b2));

  Tensor none = Tensor::empty({0, 5}, DType::F64), bz = Tensor::full({5}, NAN, DType::F64);
  cpu::gelu_backward_bias_grad(none, none, none, bz);
  CHECK(bit_equal(bz, Tensor::zeros({5}, DType::F64)));  // an empty sum

  const Tensor p = randn({4, 6}, 44), d = randn({4, 6}, 45);
  Tensor out = Tensor::empty({4, 6}), db = Tensor::empty({6});
  CHECK_THROWS_WITH_AS(cpu::gelu_backward_bias_grad(p, d, out, Tensor::empty({4})), doctest::Contains("db must be 6"),
                       Error);
  CHECK_THROWS_AS(cpu::gelu_backward_bias_grad(p, randn({4, 5}, 46), Tensor::empty({4, 5}), db), Error);
  CHECK_THROWS_AS(cpu::gelu_backward_bias_grad(p, d.to(DType::F64), out, db), Error);
  CHECK_THROWS_AS(cpu::gelu_backward_bias_grad(p, d, out, Tensor::empty({6}, DType::F64)), Error);
  CHECK_THROWS_AS(cpu::gelu_backward_bias_grad(p.transpose(0, 1).contiguous().transpose(0, 1), d, out, db), Error);
  CHECK_THROWS_AS(cpu::gelu_backward_bias_grad(p, d, out, Tensor()), Error);
}

TEST_CASE("CPU scale_by: out = x * s[0] (float32/float64 scale), in place, and clear errors") {
  for (DType t : {DType::F32, DType::F64}) {
    for (DType st : {DType::F32, DType::F64}) {
      CAPTURE(dtype_name(t));
      CAPTURE(dtype_name(st));
      const Tensor x = randn({5, 7}, 61, 1.0, t);
      const Tensor s = Tensor::from_vector({-2.5}, {1}, st);
      Tensor out = Tensor::full({5, 7}, NAN, t);
      cpu::scale_by(x, s, out);
      const std::vector<double> xv = x.to_doubles(), ov = out.to_doubles();
      for (size_t i = 0; i < xv.size(); ++i) CHECK(ov[i] == doctest::Approx(-2.5 * xv[i]).epsilon(1e-7));
      Tensor inplace = x.clone();
      cpu::scale_by(inplace, s, inplace);
      CHECK(bit_equal(inplace, out));
    }
  }
  const Tensor x = randn({3, 4}, 62), s = Tensor::from_vector({2.0}, {1});
  CHECK_THROWS_WITH_AS(cpu::scale_by(x, s, Tensor::empty({4, 3})), doctest::Contains("scale_by: x and out"), Error);
  CHECK_THROWS_WITH_AS(cpu::scale_by(x, s, Tensor::empty({3, 4}, DType::F64)), doctest::Contains("one shape, dtype"),
                       Error);
  CHECK_THROWS_WITH_AS(cpu::scale_by(x, Tensor::from_vector({1.0, 2.0}, {2}), Tensor::empty({3, 4})),
                       doctest::Contains("s must be one float32/float64 value"), Error);
  CHECK_THROWS_WITH_AS(cpu::scale_by(x, Tensor::from_ints({2}, {1}), Tensor::empty({3, 4})),
                       doctest::Contains("s must be one float32/float64 value"), Error);
}
