// The fused kernels of ARIA's gated model against what they replace:
//   gate_mix (core/ops_gated.cpp) on transposed views and float32 (its equality with add(slow, mul(pi,
//   sub(fast, slow))) for every subset of differentiated inputs: the rows' references in
//   tests/support/cases_gated.cpp, checked by test_gradcheck);
//   gated_mlp (the whole gated MLP as one op) == its plain composition: out, pi and every gradient in
//   float64 (pi and/or out feeding the loss, frozen inputs, recomputation), one tape node, clear
//   errors; its gate_head rows against hand loops; a tiny gated GPT-2's loss and gradients with the
//   fused op == the plain path (Context::gated_mlp_fused off), and the plain ops given a per-sample capture sink;
//   spc_penalty_grad == binary mul + axpy(-B) + axpy(lambda), the three kernels SPC used before, and
//   over a list of awkward tensors (1 element, odd sizes, empty, a misaligned view) == the plain
//   formula per element;
//   the op's and rows' input checks;
//   CUDA (skipped visibly without a GPU): the rows in float32 and bfloat16 against the CPU at the
//   model's shape [16384, 768] and an awkward [129, 771] (no 16-byte packs), misaligned data, partial
//   gradients, deterministic dpi / dw2 / db2 (the gate_mix op in bfloat16 against the float32 CPU op:
//   the [4,33,768] row of tests/support/cases_gated.cpp); the gated_mlp op in bfloat16 against the float32 CPU op
//   and no less accurate than the unfused path; ARIA_BF16_BENCH=1 adds timing cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/context.h"
#include "aria/core/ops.h"
#include "aria/core/ops_capture.h"
#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/plasticity.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"
#ifdef ARIA_WITH_CUDA
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"
#endif

using namespace aria;
using testing::misaligned_gpu;
using testing::relative_l2;

namespace {

const Device kCpu = Device::cpu();
const Device kGpu = Device::cuda(0);

Tensor randn(const Shape& s, uint64_t seed, DType t = DType::F64, double scale = 1.0, Device d = Device::cpu()) {
  Tensor x = Tensor::empty(s, t, d);
  Rng(seed).fill_normal(x, 0, scale);
  return x;
}

// Gate values in (0, 1), like the sigmoid output they are in the model.
Tensor rand_gate(const Shape& s, uint64_t seed, DType t = DType::F64) {
  Tensor x = Tensor::empty(s, t);
  Rng(seed).fill_uniform(x, 0.0, 1.0);
  return x;
}

// A fresh leaf on t's data (its gradient is its own).
Tensor leaf(const Tensor& t, bool grad) {
  Tensor x = t.detach();
  x.set_requires_grad(grad);
  return x;
}

// {out, grads of slow, fast, pi} of f with d(out) = w; a grad is undefined when its input does not
// require grad.
std::vector<Tensor> forward_backward(const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f,
                                     const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& w,
                                     bool gs, bool gf, bool gp) {
  const Tensor s = leaf(slow, gs), fa = leaf(fast, gf), p = leaf(pi, gp);
  Tensor out = f(s, fa, p);
  if (gs || gf || gp) {
    out.set_grad(w);
    tape().backward(out, false);
  }
  return {out.detach(), gs ? s.grad() : Tensor(), gf ? fa.grad() : Tensor(), gp ? p.grad() : Tensor()};
}

Tensor fused(const Tensor& s, const Tensor& f, const Tensor& p) { return ops::gate_mix(s, f, p); }
Tensor composed(const Tensor& s, const Tensor& f, const Tensor& p) { return ops::add(s, ops::mul(p, ops::sub(f, s))); }

std::string shape_tag(const Shape& s) { return shape_str(s); }

}  // namespace

TEST_CASE("gate_mix in float32 on the CPU matches float64, and takes non-contiguous inputs") {
  const Tensor slow = randn({37, 19}, 1), fast = randn({37, 19}, 2), pi = rand_gate({37, 1}, 3), w = randn({37, 19}, 4);
  const auto ref = forward_backward(fused, slow, fast, pi, w, true, true, true);
  const auto f32 = forward_backward(fused, slow.to(DType::F32), fast.to(DType::F32), pi.to(DType::F32),
                                    w.to(DType::F32), true, true, true);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(f32[k].dtype() == DType::F32);
    CHECK(relative_l2(f32[k], ref[k]) <= 1e-6);
  }
  // transposed views: the op makes them contiguous; gradients come back in the views' shapes
  const Tensor st = randn({19, 37}, 5).transpose(0, 1), ft = randn({19, 37}, 6).transpose(0, 1);
  const auto a = forward_backward(fused, st, ft, pi, w, true, true, true);
  const auto b = forward_backward(composed, st.contiguous(), ft.contiguous(), pi, w, true, true, true);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(relative_l2(a[k], b[k]) <= 1e-12);
  }
}

TEST_CASE("gate_mix records one tape node and nothing under NoGradGuard") {
  const Tensor s = leaf(randn({4, 6}, 1), true), f = leaf(randn({4, 6}, 2), true), p = leaf(rand_gate({4, 1}, 3), true);
  tape().clear();
  Tensor out = ops::gate_mix(s, f, p);
  CHECK(tape().size() == 1);
  CHECK(out.requires_grad());
  tape().clear();
  {
    NoGradGuard ng;
    Tensor o2 = ops::gate_mix(s, f, p);
    CHECK(tape().size() == 0);
    CHECK(!o2.requires_grad());
    CHECK(relative_l2(o2, out.detach()) == 0.0);
  }
}

TEST_CASE("CPU gate_mix rows: partial backward outputs equal the full backward, dpi of empty rows is 0") {
  for (DType dt : {DType::F64, DType::F32}) {
    const int64_t N = 33, C = 70;
    const Tensor slow = randn({N, C}, 1, dt), fast = randn({N, C}, 2, dt), pi = rand_gate({N}, 3, dt);
    const Tensor dout = randn({N, C}, 4, dt);
    Tensor ds = Tensor::empty({N, C}, dt), df = Tensor::empty({N, C}, dt), dp = Tensor::empty({N}, dt);
    cpu::gate_mix_backward(slow, fast, pi, dout, ds, df, dp);
    // hand loops in double
    const auto s = slow.to_doubles(), f = fast.to_doubles(), p = pi.to_doubles(), g = dout.to_doubles();
    std::vector<double> ws(static_cast<size_t>(N * C)), wf(static_cast<size_t>(N * C)), wp(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = size_t(n * C + c);
        wf[i] = g[i] * p[size_t(n)];
        ws[i] = g[i] * (1 - p[size_t(n)]);
        acc += g[i] * (f[i] - s[i]);
      }
      wp[size_t(n)] = acc;
    }
    const double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    CHECK(relative_l2(ds, Tensor::from_vector(ws, {N, C}, DType::F64)) <= tol);
    CHECK(relative_l2(df, Tensor::from_vector(wf, {N, C}, DType::F64)) <= tol);
    CHECK(relative_l2(dp, Tensor::from_vector(wp, {N}, DType::F64)) <= tol);
    Tensor dp2 = Tensor::full({N}, 7.0, dt);
    cpu::gate_mix_backward(slow, fast, pi, dout, Tensor(), Tensor(), dp2);
    CHECK(relative_l2(dp2, dp) == 0.0);
    Tensor df2 = Tensor::full({N, C}, 7.0, dt);
    cpu::gate_mix_backward(slow, fast, pi, dout, Tensor(), df2, Tensor());
    CHECK(relative_l2(df2, df) == 0.0);
  }
  // C == 0: rows of nothing mix to nothing; their dpi is an empty sum
  const Tensor e = Tensor::empty({3, 0}, DType::F64);
  Tensor dp = Tensor::full({3}, 7.0, DType::F64);
  cpu::gate_mix_backward(e, e, rand_gate({3}, 1), e, Tensor(), Tensor(), dp);
  CHECK(dp.to_doubles() == std::vector<double>{0, 0, 0});
}

TEST_CASE("gate_mix rejects mismatched shapes, a pi that is not [..., 1], and bad dtypes with clear errors") {
  const Tensor s = randn({2, 3, 5}, 1), f = randn({2, 3, 5}, 2), p = rand_gate({2, 3, 1}, 3);
  CHECK_THROWS_WITH_AS(
      ops::gate_mix(s, randn({2, 3, 4}, 4), p),
      doctest::Contains("gate_mix: slow float64[2, 3, 5] cpu and fast float64[2, 3, 4] cpu must have the same shape"),
      aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f, rand_gate({2, 3}, 5)),
                       doctest::Contains("gate_mix: pi must be [2, 3, 1]"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f, rand_gate({2, 3, 5}, 5)),
                       doctest::Contains("gate_mix: pi must be [2, 3, 1]"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f, rand_gate({3, 2, 1}, 5)),
                       doctest::Contains("gate_mix: pi must be [2, 3, 1]"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f, rand_gate({1, 1}, 5)), doctest::Contains("gate_mix: pi must be"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f.to(DType::F32), p), doctest::Contains("gate_mix: dtypes differ"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s, f, p.to(DType::F32)), doctest::Contains("gate_mix: dtypes differ"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(s.to(DType::BF16), f.to(DType::BF16), p.to(DType::BF16)),
                       doctest::Contains("bfloat16 on the CPU"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(Tensor::from_ints({1, 2}, {1, 2}), f, p),
                       doctest::Contains("gate_mix: slow must be float32"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(Tensor(), f, p), doctest::Contains("gate_mix: slow is undefined"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gate_mix(Tensor::full({}, 1.0, DType::F64), Tensor::full({}, 1.0, DType::F64), p),
                       doctest::Contains("gate_mix: slow must be [..., C]"), aria::Error);
}

TEST_CASE("CPU gate_mix / spc_penalty_grad rows check their operands") {
  const Tensor s = randn({4, 6}, 1), p = rand_gate({4}, 2);
  Tensor out = Tensor::empty({4, 6}, DType::F64);
  CHECK_THROWS_WITH_AS(cpu::gate_mix_forward(s, s, rand_gate({5}, 3), out),
                       doctest::Contains("gate_mix_forward: pi must be a contiguous CPU tensor with 4 elements"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_mix_forward(s, s.transpose(0, 1).contiguous().transpose(0, 1), p, out),
                       doctest::Contains("gate_mix_forward: fast must be a contiguous"), aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_mix_backward(s, s, p, s, Tensor(), Tensor(), Tensor::empty({4}, DType::F32)),
                       doctest::Contains("gate_mix_backward: dpi float32[4] cpu must have dtype float64"), aria::Error);
  const Tensor g = Tensor::zeros({4, 6}, DType::F64);
  CHECK_THROWS_WITH_AS(
      cpu::spc_penalty_grad({g}, {s}, {s.reshape({6, 4})}, {s}, 1.0),
      doctest::Contains("spc_penalty_grad: p float64[6, 4] cpu and grad float64[4, 6] cpu must have the same shape "
                        "(entry 0 of 1)"),
      aria::Error);
  CHECK_THROWS_WITH_AS(cpu::spc_penalty_grad({g}, {s.to(DType::F32)}, {s}, {s}, 1.0),
                       doctest::Contains("spc_penalty_grad: A float32[4, 6] cpu must have dtype float64"), aria::Error);
  CHECK_THROWS_WITH_AS(cpu::spc_penalty_grad({g, g}, {s}, {s, s}, {s, s}, 1.0),
                       doctest::Contains("spc_penalty_grad: 2 grads but 1 As, 2 ps and 2 Bs"), aria::Error);
  // A later entry of another dtype is refused by name, and nothing was written before the refusal.
  const Tensor g32 = Tensor::zeros({3}, DType::F32), s32 = randn({3}, 4, DType::F32);
  CHECK_THROWS_WITH_AS(cpu::spc_penalty_grad({g, g32}, {s, s32}, {s, s32}, {s, s32}, 1.0),
                       doctest::Contains("spc_penalty_grad: grad float32[3] cpu must have dtype float64 (entry 1 of 2)"),
                       aria::Error);
  CHECK(testing::max_abs(g) == 0.0);
  CHECK_THROWS_WITH_AS(cpu::spc_penalty_grad({g, Tensor()}, {s, s}, {s, s}, {s, s}, 1.0),
                       doctest::Contains("spc_penalty_grad: grad is undefined (entry 1 of 2)"), aria::Error);
}

TEST_CASE("spc_penalty_grad equals the three-kernel composition (mul, axpy -B, axpy lambda)") {
  const std::vector<Shape> shapes = {{1}, {7}, {129, 771}, {3, 4, 5}, {100003}};
  uint64_t seed = 40;
  for (DType dt : {DType::F64, DType::F32}) {
    for (const Shape& shape : shapes) {
      for (double lambda : {0.5, 123.0}) {
        CAPTURE(shape_tag(shape));
        CAPTURE(dtype_name(dt));
        CAPTURE(lambda);
        const Tensor A = Tensor::empty(shape, dt);
        Rng(++seed).fill_uniform(A, 0.0, 2.0);  // a Fisher sum: non-negative
        const Tensor p = randn(shape, ++seed, dt), B = randn(shape, ++seed, dt), g0 = randn(shape, ++seed, dt);
        Tensor want = g0.clone(), d = Tensor::empty(shape, dt);
        cpu::binary(int(BinaryOp::Mul), A, p, d);
        cpu::axpy(d, B, -1.0);
        cpu::axpy(want, d, lambda);
        Tensor got = g0.clone();
        cpu::spc_penalty_grad({got}, {A}, {p}, {B}, lambda);
        CHECK(relative_l2(got, want) <= (dt == DType::F64 ? 1e-12 : 1e-5));
      }
    }
  }
}

namespace {

// Operands of one spc_penalty_grad call over tensors of awkward sizes: 1 element, odd and prime sizes,
// an empty tensor, several chunks of the GPU kernel, and (view) one entry whose every operand is a
// contiguous view one element into a larger tensor (off any 16-byte boundary).
struct SpcLists {
  std::vector<Tensor> grads, As, ps, Bs;
};

const std::vector<Shape> kSpcShapes = {{1}, {7}, {0}, {33, 5}, {2, 3, 5}, {16384 + 3}, {40001}};

// A view of a fresh [n + 1] tensor from element 1 on, holding t's values (shape of t).
Tensor offset_view(const Tensor& t) {
  const int64_t n = t.numel();
  Tensor base = Tensor::zeros({n + 1}, t.dtype(), t.device());
  Tensor v = base.slice(0, 1, n + 1);
  v.copy_from(t.reshape({n}));
  return v.reshape(t.shape());
}

SpcLists spc_lists(DType dt, uint64_t seed, bool with_view) {
  SpcLists l;
  for (const Shape& shape : kSpcShapes) {
    Tensor A = Tensor::empty(shape, dt);
    Rng(++seed).fill_uniform(A, 0.0, 2.0);
    l.As.push_back(A);
    l.ps.push_back(randn(shape, ++seed, dt));
    l.Bs.push_back(randn(shape, ++seed, dt));
    l.grads.push_back(randn(shape, ++seed, dt));
  }
  if (with_view) {
    const Shape shape{13, 3};
    Tensor A = Tensor::empty(shape, dt);
    Rng(++seed).fill_uniform(A, 0.0, 2.0);
    l.As.push_back(offset_view(A));
    l.ps.push_back(offset_view(randn(shape, ++seed, dt)));
    l.Bs.push_back(offset_view(randn(shape, ++seed, dt)));
    l.grads.push_back(offset_view(randn(shape, ++seed, dt)));
  }
  return l;
}

std::vector<Tensor> clones(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.clone());
  return out;
}

}  // namespace

TEST_CASE("spc_penalty_grad over a list of awkward tensors equals the plain formula per element") {
  const double lambda = 2.75;
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    const SpcLists in = spc_lists(dt, 700, true);
    REQUIRE(reinterpret_cast<uintptr_t>(in.grads.back().raw_data()) % 16 != 0);  // the view really is off
    std::vector<Tensor> got = clones(in.grads);
    cpu::spc_penalty_grad(views_of(got), views_of(in.As), views_of(in.ps), views_of(in.Bs), lambda);
    for (size_t k = 0; k < got.size(); ++k) {
      CAPTURE(k);
      const auto g0 = in.grads[k].to_doubles(), a = in.As[k].to_doubles(), p = in.ps[k].to_doubles();
      const auto b = in.Bs[k].to_doubles(), g = got[k].to_doubles();
      REQUIRE(g.size() == g0.size());
      double worst = 0;  // relative to the terms' scale |g0| + lambda (|a p| + |b|)
      for (size_t i = 0; i < g.size(); ++i) {
        const double want = g0[i] + lambda * (a[i] * p[i] - b[i]);
        const double scale = std::fabs(g0[i]) + lambda * (std::fabs(a[i] * p[i]) + std::fabs(b[i]));
        worst = std::max(worst, std::fabs(g[i] - want) / scale);
      }
      CHECK(worst <= (dt == DType::F64 ? 1e-15 : 1e-6));
    }
    // One call over the list == one call per tensor, bit for bit (the list changes nothing per element).
    std::vector<Tensor> one_by_one = clones(in.grads);
    for (size_t k = 0; k < got.size(); ++k)
      cpu::spc_penalty_grad({one_by_one[k]}, {in.As[k]}, {in.ps[k]}, {in.Bs[k]}, lambda);
    for (size_t k = 0; k < got.size(); ++k) CHECK(testing::bit_equal(got[k], one_by_one[k]));
    cpu::spc_penalty_grad({}, {}, {}, {}, lambda);  // an empty list is a no-op
  }
}

// ---- CUDA -----------------------------------------------------------------------------------------

namespace {

// Inputs for the GPU in `dt` and their exact values in float32 on the CPU (bf16 values widened).
struct In {
  Tensor gpu, cpu;
};

In make_in(const Tensor& f32, DType dt) {
  In in;
  const Tensor rounded = f32.to(dt);
  in.cpu = rounded.to(DType::F32);
  in.gpu = rounded.to(kGpu);
  return in;
}

Tensor nan_gpu(const Shape& s, DType dt) {
  Tensor y = Tensor::empty(s, dt, kGpu);
  y.fill_(NAN);
  return y;
}


// Each element: |got - want| <= rel |want| + atol_i (NaN fails). One CHECK for the whole tensor.
void expect_elementwise(const Tensor& got, const Tensor& want, double rel, const std::vector<double>& atol,
                        const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.numel() == want.numel());
  const auto a = got.to_doubles(), b = want.to_doubles();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double tol = rel * std::fabs(b[i]) + (atol.size() == 1 ? atol[0] : atol[i]);
    if (!(std::fabs(a[i] - b[i]) <= tol)) {
      if (first < 0) first = int64_t(i);
      ++bad;
    }
  }
  if (first >= 0) {
    const double g = a[size_t(first)], w = b[size_t(first)];
    CAPTURE(first);
    CAPTURE(g);
    CAPTURE(w);
    CHECK(bad == 0);
  }
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(kCpu), y = b.to(kCpu);
  return x.nbytes() == y.nbytes() && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

// sum_c |dout * (fast - slow)| per row: the scale of dpi's rounding error.
std::vector<double> dpi_scale(const Tensor& slow, const Tensor& fast, const Tensor& dout, int64_t N, int64_t C) {
  const auto s = slow.to_doubles(), f = fast.to_doubles(), g = dout.to_doubles();
  std::vector<double> out(size_t(N), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const size_t i = size_t(n * C + c);
      out[size_t(n)] += std::fabs(g[i] * (f[i] - s[i]));
    }
  return out;
}

// Tolerances of a GPU result against the float32 CPU on the same inputs. bf16: the output's rounding
// (2^-9 relative for round-to-nearest; 2^-8 allowed). fp32 math noise (FMA contraction, summation
// order) is absorbed by an absolute term: for the mix about 2^-24 (|pi (fast - slow)| + |out|) <= 1e-6
// at unit-normal inputs, which may cancel to an output near 0; for dpi relative to sum_c |dout (fast -
// slow)| (lane sums of C/32 terms). A wrong element, row or gate is off by O(1).
struct Tol {
  double rel, atol, dpi_rel;
};
Tol tol_for(DType dt) { return dt == DType::BF16 ? Tol{0x1p-8, 4e-6, 1e-5} : Tol{1e-6, 4e-6, 1e-5}; }

// Runs the gate_mix rows on the GPU (dtype dt) and the CPU (float32) for [N, C] and compares.
// misaligned: GPU operands one element off a 16-byte boundary.
void check_gate_mix_gpu(int64_t N, int64_t C, DType dt, bool misaligned, uint64_t seed) {
  const std::string tag = std::string(dtype_name(dt)) + " [" + std::to_string(N) + ", " + std::to_string(C) + "]" +
                          (misaligned ? " misaligned" : "");
  CAPTURE(tag);
  auto gpu_of = [&](const Tensor& t) { return misaligned ? misaligned_gpu(t) : t; };
  const In slow = make_in(randn({N, C}, seed, DType::F32), dt), fast = make_in(randn({N, C}, seed + 1, DType::F32), dt);
  const In dout = make_in(randn({N, C}, seed + 2, DType::F32), dt);
  const In pi = make_in(rand_gate({N}, seed + 3, DType::F32), dt);
  const Tol tol = tol_for(dt);

  Tensor out_c = Tensor::empty({N, C}, DType::F32);
  cpu::gate_mix_forward(slow.cpu, fast.cpu, pi.cpu, out_c);
  Tensor out_g = gpu_of(nan_gpu({N, C}, dt));
  cuda::gate_mix_forward(gpu_of(slow.gpu), gpu_of(fast.gpu), gpu_of(pi.gpu), out_g);
  expect_elementwise(out_g, out_c, tol.rel, {tol.atol}, tag + " forward");

  Tensor ds_c = Tensor::empty({N, C}, DType::F32), df_c = Tensor::empty({N, C}, DType::F32);
  Tensor dp_c = Tensor::empty({N}, DType::F32);
  cpu::gate_mix_backward(slow.cpu, fast.cpu, pi.cpu, dout.cpu, ds_c, df_c, dp_c);
  Tensor ds_g = gpu_of(nan_gpu({N, C}, dt)), df_g = gpu_of(nan_gpu({N, C}, dt)), dp_g = gpu_of(nan_gpu({N}, dt));
  cuda::gate_mix_backward(gpu_of(slow.gpu), gpu_of(fast.gpu), gpu_of(pi.gpu), gpu_of(dout.gpu), ds_g, df_g, dp_g);
  expect_elementwise(ds_g, ds_c, tol.rel, {tol.atol}, tag + " dslow");
  expect_elementwise(df_g, df_c, tol.rel, {tol.atol}, tag + " dfast");
  std::vector<double> dpi_atol = dpi_scale(slow.cpu, fast.cpu, dout.cpu, N, C);
  for (double& a : dpi_atol) a = a * tol.dpi_rel + 1e-6;
  expect_elementwise(dp_g, dp_c, tol.rel, dpi_atol, tag + " dpi");

  // deterministic: the same dpi bit for bit; partial requests give the same values
  Tensor dp2 = gpu_of(nan_gpu({N}, dt));
  cuda::gate_mix_backward(gpu_of(slow.gpu), gpu_of(fast.gpu), gpu_of(pi.gpu), gpu_of(dout.gpu), Tensor(), Tensor(),
                          dp2);
  CHECK(bit_equal(dp2, dp_g));
  Tensor ds2 = gpu_of(nan_gpu({N, C}, dt));
  cuda::gate_mix_backward(gpu_of(slow.gpu), gpu_of(fast.gpu), gpu_of(pi.gpu), gpu_of(dout.gpu), ds2, Tensor(),
                          Tensor());
  CHECK(bit_equal(ds2, ds_g));
}

}  // namespace

TEST_CASE("CUDA gate_mix rows (float32, bfloat16) match the CPU at [16384, 768] and [129, 771]") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: gate_mix rows")) return;
  uint64_t seed = 100;
  for (DType dt : {DType::F32, DType::BF16}) {
    check_gate_mix_gpu(16384, 768, dt, false, seed += 10);
    check_gate_mix_gpu(129, 771, dt, false, seed += 10);
    check_gate_mix_gpu(129, 768, dt, true, seed += 10);
    check_gate_mix_gpu(3, 5, dt, false, seed += 10);
    check_gate_mix_gpu(2, 4000, dt, false, seed += 10);  // several unrolled chunks per lane
  }
  check_gate_mix_gpu(129, 771, DType::F64, false, 999);
}

TEST_CASE("CUDA spc_penalty_grad (float32, bfloat16) matches the CPU") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: spc_penalty_grad")) return;
  uint64_t seed = 300;
  for (DType dt : {DType::F32, DType::BF16, DType::F64}) {
    for (const Shape& shape : std::vector<Shape>{{1}, {7}, {129, 771}, {16384, 768}, {100003}}) {
      for (bool misaligned : {false, true}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(shape_tag(shape));
        CAPTURE(misaligned);
        const double lambda = 3.5;
        Tensor Af = Tensor::empty(shape, DType::F32);
        Rng(++seed).fill_uniform(Af, 0.0, 2.0);
        const In A = make_in(Af, dt), p = make_in(randn(shape, ++seed, DType::F32), dt);
        const In B = make_in(randn(shape, ++seed, DType::F32), dt), g = make_in(randn(shape, ++seed, DType::F32), dt);
        Tensor want = g.cpu.clone();
        cpu::spc_penalty_grad({want}, {A.cpu}, {p.cpu}, {B.cpu}, lambda);
        auto gpu_of = [&](const Tensor& t) { return misaligned ? misaligned_gpu(t) : t; };
        Tensor got = gpu_of(g.gpu.clone());
        cuda::spc_penalty_grad({got}, {gpu_of(A.gpu)}, {gpu_of(p.gpu)}, {gpu_of(B.gpu)}, lambda);
        // scale of the fp32 noise: |g| + lambda (|A p| + |B|)
        const auto gv = g.cpu.to_doubles(), av = A.cpu.to_doubles(), pv = p.cpu.to_doubles(), bv = B.cpu.to_doubles();
        std::vector<double> atol(gv.size());
        for (size_t i = 0; i < gv.size(); ++i)
          atol[i] = 1e-6 * (std::fabs(gv[i]) + lambda * (std::fabs(av[i] * pv[i]) + std::fabs(bv[i])));
        expect_elementwise(got, want, dt == DType::BF16 ? 0x1p-8 : 1e-6, atol, "spc_penalty_grad");
      }
    }
  }
}

TEST_CASE("CUDA spc_penalty_grad over a list of awkward tensors (one launch) matches the CPU") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: spc_penalty_grad over a list")) return;
  const double lambda = 0.625;
  const SpcLists f32 = spc_lists(DType::F32, 900, false);
  // Entries 1 (7 elements) and 5 (three chunks and 3 more) misaligned on the GPU: those go element by
  // element while their neighbours in the same launch use 16-byte packs.
  auto misaligned = [](size_t k) { return k == 1 || k == 5; };
  for (DType dt : {DType::F32, DType::BF16, DType::F64}) {
    CAPTURE(dtype_name(dt));
    std::vector<Tensor> gc, ac, pc, bc, gg, ag, pg, bg;
    for (size_t k = 0; k < f32.grads.size(); ++k) {
      auto gpu_of = [&](const Tensor& t) { return misaligned(k) ? misaligned_gpu(t) : t; };
      const In g = make_in(f32.grads[k], dt), A = make_in(f32.As[k], dt), p = make_in(f32.ps[k], dt);
      const In B = make_in(f32.Bs[k], dt);
      gc.push_back(g.cpu.clone()), ac.push_back(A.cpu), pc.push_back(p.cpu), bc.push_back(B.cpu);
      gg.push_back(gpu_of(g.gpu.clone())), ag.push_back(gpu_of(A.gpu)), pg.push_back(gpu_of(p.gpu));
      bg.push_back(gpu_of(B.gpu));
    }
    const std::vector<Tensor> g0 = clones(gc);
    cpu::spc_penalty_grad(views_of(gc), views_of(ac), views_of(pc), views_of(bc), lambda);
    cuda::spc_penalty_grad(views_of(gg), views_of(ag), views_of(pg), views_of(bg), lambda);
    for (size_t k = 0; k < gc.size(); ++k) {
      CAPTURE(k);
      CHECK(gg[k].dtype() == dt);
      const auto gv = g0[k].to_doubles(), av = ac[k].to_doubles(), pv = pc[k].to_doubles(), bv = bc[k].to_doubles();
      std::vector<double> atol(gv.size());
      for (size_t i = 0; i < gv.size(); ++i)
        atol[i] = 1e-6 * (std::fabs(gv[i]) + lambda * (std::fabs(av[i] * pv[i]) + std::fabs(bv[i])));
      if (!gv.empty()) expect_elementwise(gg[k], gc[k], dt == DType::BF16 ? 0x1p-8 : 1e-6, atol, "list entry");
    }
  }
}

#ifdef ARIA_WITH_CUDA

TEST_CASE("gate_mix / spc_penalty_grad bandwidth (ARIA_BF16_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_BF16_BENCH")) return;
  if (!testing::gpu_or_skip("gated fused CUDA kernels: bandwidth timing")) return;
  const int64_t N = 16384, C = 768, n = N * C;
  const DType dt = DType::BF16;
  const double es = double(dtype_size(dt));
  const Tensor slow = randn({N, C}, 1, dt, 1.0, kGpu), fast = randn({N, C}, 2, dt, 1.0, kGpu);
  const Tensor dout = randn({N, C}, 3, dt, 1.0, kGpu), pi = randn({N}, 4, dt, 1.0, kGpu);
  Tensor out = Tensor::empty({N, C}, dt, kGpu), ds = Tensor::empty({N, C}, dt, kGpu);
  Tensor df = Tensor::empty({N, C}, dt, kGpu), dp = Tensor::empty({N}, dt, kGpu);
  auto report = [&](const char* what, double ms, double bytes) {
    std::printf("bf16 [%lld, %lld] %-28s %8.1f us  %7.0f GB/s\n", (long long)N, (long long)C, what, ms * 1e3,
                bytes / (ms * 1e-3) / 1e9);
  };
  report("gate_mix fwd", testing::cuda_mean_ms([&] { cuda::gate_mix_forward(slow, fast, pi, out); }), (3.0 * n + N) * es);
  report("gate_mix bwd", testing::cuda_mean_ms([&] { cuda::gate_mix_backward(slow, fast, pi, dout, ds, df, dp); }),
         (5.0 * n + 2.0 * N) * es);
  // The op-level forward + backward, fused vs the plain composition it replaced (allocations from
  // the caching allocator included); GB/s counts the fused kernels' traffic for both.
  const Tensor pi3 = pi.reshape({N, 1});
  auto step = [&](bool use_fused) {
    const Tensor s = leaf(slow, true), f = leaf(fast, true), p = leaf(pi3, true);
    Tensor o = use_fused ? fused(s, f, p) : composed(s, f, p);
    o.set_grad(dout);
    tape().backward(o, false);
  };
  report("op fwd+bwd fused", testing::cuda_mean_ms([&] { step(true); }, 10), (8.0 * n + 3.0 * N) * es);
  report("op fwd+bwd composed", testing::cuda_mean_ms([&] { step(false); }, 10), (8.0 * n + 3.0 * N) * es);
  const Tensor A = randn({N, C}, 5, dt, 1.0, kGpu), B = randn({N, C}, 6, dt, 1.0, kGpu);
  Tensor g = Tensor::zeros({N, C}, dt, kGpu), d = Tensor::empty({N, C}, dt, kGpu);
  report("spc_penalty_grad", testing::cuda_mean_ms([&] { cuda::spc_penalty_grad({g}, {A}, {fast}, {B}, 1e-3); }),
         5.0 * n * es);
  report("spc as mul + 2 axpy", testing::cuda_mean_ms([&] {
           cuda::binary(int(BinaryOp::Mul), A, fast, d);
           cuda::axpy(d, B, -1.0);
           cuda::axpy(g, d, 1e-3);
         }),
         5.0 * n * es);
  CHECK(true);
}

#endif

// ---- the fused gated MLP (ops::gated_mlp) and its gate-head rows ----

namespace {

// x [..., C] -> the 12 weights of a gated MLP in GatedMlpWeights order (fast w1 b1 w2 b2, slow w1 b1
// w2 b2, gate w1 b1 w2 b2) for pathway hidden H and gate hidden G. Scaled like trained weights
// (1/sqrt(fan-in)) so the gate's logits spread pi over (0, 1) and both relu sides are hit.
std::vector<Tensor> gated_params(int64_t C, int64_t H, int64_t G, uint64_t seed, DType dt = DType::F64) {
  const double sc = 1 / std::sqrt(double(C)), sh = 1 / std::sqrt(double(H)), sg = 2 / std::sqrt(double(G));
  const std::vector<std::pair<Shape, double>> specs = {
      {{C, H}, sc}, {{H}, 0.5}, {{H, C}, sh}, {{C}, 0.5},  // fast
      {{C, H}, sc}, {{H}, 0.5}, {{H, C}, sh}, {{C}, 0.5},  // slow
      {{C, G}, sc}, {{G}, 0.5}, {{G, 1}, sg}, {{1}, 0.5}};  // gate
  std::vector<Tensor> p;
  for (const auto& [shape, scale] : specs) p.push_back(randn(shape, ++seed, dt, scale));
  return p;
}

ops::GatedMlpWeights as_weights(const std::vector<Tensor>& p) {
  return {{p[0], p[1], p[2], p[3]}, {p[4], p[5], p[6], p[7]}, p[8], p[9], p[10], p[11]};
}

// What the op replaces, in plain ops only (model/gated_mlp.cpp's plain branch without gelu_mlp).
std::pair<Tensor, Tensor> gated_plain(const Tensor& x, const std::vector<Tensor>& p) {
  const Tensor pi = ops::sigmoid(ops::linear(ops::relu(ops::linear(x, p[8], p[9])), p[10], p[11]));
  auto mlp = [&](size_t k) { return ops::linear(ops::gelu(ops::linear(x, p[k], p[k + 1])), p[k + 2], p[k + 3]); };
  const Tensor fast = mlp(0), slow = mlp(4);
  return {ops::add(slow, ops::mul(pi, ops::sub(fast, slow))), pi};
}

enum class Feeds { OutAndPi, OutOnly, PiOnly };

struct GatedRun {
  Tensor out, pi;
  std::vector<Tensor> grads;  // x, then the 12 weights; undefined where not differentiated
};

using GatedFn = std::function<std::pair<Tensor, Tensor>(const Tensor&, const std::vector<Tensor>&)>;

// f(x, weights) forward, then backward of sum(out * wo) + sum(pi * wp) (the terms `feeds` names) from
// fresh leaves; grad[k] says whether input k (x, then the weights) is differentiated.
GatedRun run_gated_with(const GatedFn& f, const Tensor& x0, const std::vector<Tensor>& p0,
                        const std::vector<bool>& grad, Feeds feeds, const Tensor& wo, const Tensor& wp) {
  const Tensor x = leaf(x0, grad[0]);
  std::vector<Tensor> p;
  for (size_t k = 0; k < p0.size(); ++k) p.push_back(leaf(p0[k], grad[k + 1]));
  auto [out, pi] = f(x, p);
  Tensor loss;
  if (feeds != Feeds::PiOnly) loss = ops::sum(ops::mul(out, wo));
  if (feeds != Feeds::OutOnly) {
    const Tensor t = ops::sum(ops::mul(pi, wp));
    loss = loss.defined() ? ops::add(loss, t) : t;
  }
  if (loss.requires_grad()) loss.backward();
  GatedRun r{out.detach(), pi.detach(), {}};
  r.grads.push_back(grad[0] ? x.grad() : Tensor());
  for (size_t k = 0; k < p.size(); ++k) r.grads.push_back(grad[k + 1] ? p[k].grad() : Tensor());
  return r;
}

// The fused op (fused) or the plain composition.
GatedRun run_gated(bool fused, const Tensor& x0, const std::vector<Tensor>& p0, const std::vector<bool>& grad,
                   Feeds feeds, const Tensor& wo, const Tensor& wp) {
  const GatedFn op = [](const Tensor& x, const std::vector<Tensor>& p) { return ops::gated_mlp(x, as_weights(p)); };
  return run_gated_with(fused ? op : GatedFn(gated_plain), x0, p0, grad, feeds, wo, wp);
}

// Sets a switch of aria::context() (recompute_activations, gated_mlp_fused) for a scope.
struct SwitchScope {
  bool& flag;
  bool saved;
  SwitchScope(bool& f, bool on) : flag(f), saved(f) { flag = on; }
  ~SwitchScope() { flag = saved; }
  SwitchScope(const SwitchScope&) = delete;
  SwitchScope& operator=(const SwitchScope&) = delete;
};

}  // namespace

TEST_CASE("gated_mlp equals the plain composition: out, pi and every gradient (float64)") {
  const int64_t C = 12, H = 20, G = 7;
  const Tensor x = randn({2, 5, C}, 1);
  const std::vector<Tensor> p = gated_params(C, H, G, 10);
  const Tensor wo = randn({2, 5, C}, 2), wp = randn({2, 5, 1}, 3);
  // Which inputs are differentiated: all; x frozen; the gate frozen; the slow pathway frozen; only
  // the gate's head; only x.
  auto mask = [](std::initializer_list<int> off) {
    std::vector<bool> g(13, true);
    for (int k : off) g[size_t(k)] = false;
    return g;
  };
  const std::vector<std::pair<std::string, std::vector<bool>>> masks = {
      {"all", mask({})},
      {"x frozen", mask({0})},
      {"gate frozen", mask({9, 10, 11, 12})},
      {"slow frozen", mask({5, 6, 7, 8})},
      {"gate head only", mask({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})},
      {"x only", mask({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})}};
  for (bool recompute : {false, true}) {
    SwitchScope scope(context().recompute_activations, recompute);
    for (Feeds feeds : {Feeds::OutAndPi, Feeds::OutOnly, Feeds::PiOnly}) {
      for (const auto& [name, grad] : masks) {
        CAPTURE(recompute);
        CAPTURE(int(feeds));
        CAPTURE(name);
        const GatedRun a = run_gated(true, x, p, grad, feeds, wo, wp);
        const GatedRun b = run_gated(false, x, p, grad, feeds, wo, wp);
        CHECK(a.out.shape() == Shape{2, 5, C});
        CHECK(a.pi.shape() == Shape{2, 5, 1});
        CHECK(relative_l2(a.out, b.out) <= 1e-12);
        CHECK(relative_l2(a.pi, b.pi) <= 1e-12);
        for (size_t k = 0; k < a.grads.size(); ++k) {
          CAPTURE(k);
          // The plain path leaves no gradient where none flows (pi only: the pathways); the fused op
          // may then give none either.
          if (!b.grads[k].defined()) {
            CHECK((!a.grads[k].defined() || testing::max_abs(a.grads[k]) == 0.0));
            continue;
          }
          REQUIRE(a.grads[k].defined());
          CHECK(a.grads[k].shape() == b.grads[k].shape());
          CHECK(relative_l2(a.grads[k], b.grads[k]) <= 1e-10);
        }
      }
    }
  }
}

TEST_CASE("gated_mlp records one tape node with both outputs, nothing under NoGradGuard, float32 matches") {
  const Tensor x = leaf(randn({3, 4, 6}, 1), true);
  std::vector<Tensor> p = gated_params(6, 8, 5, 20);
  for (Tensor& t : p) t = leaf(t, true);
  tape().clear();
  auto [out, pi] = ops::gated_mlp(x, as_weights(p));
  CHECK(tape().size() == 1);
  CHECK(out.requires_grad());
  CHECK(pi.requires_grad());
  tape().clear();
  {
    NoGradGuard ng;
    auto [o2, p2] = ops::gated_mlp(x, as_weights(p));
    CHECK(tape().size() == 0);
    CHECK(!o2.requires_grad());
    CHECK(relative_l2(o2, out.detach()) == 0.0);
    CHECK(relative_l2(p2, pi.detach()) == 0.0);
    // float32 on the CPU against float64
    std::vector<Tensor> p32;
    for (const Tensor& t : p) p32.push_back(t.detach().to(DType::F32));
    auto [o3, p3] = ops::gated_mlp(x.detach().to(DType::F32), as_weights(p32));
    CHECK(o3.dtype() == DType::F32);
    CHECK(relative_l2(o3, o2) <= 1e-6);
    CHECK(relative_l2(p3, p2) <= 1e-6);
  }
  // a non-contiguous x: the op makes it contiguous; the gradient comes back in the view's shape
  const Tensor xt = leaf(randn({6, 4}, 3), true);
  const Tensor xv = xt.transpose(0, 1);
  auto [o4, p4] = ops::gated_mlp(xv, as_weights(p));
  ops::sum(ops::add(ops::sum_dim(o4, -1, true), p4)).backward();
  const Tensor want = leaf(xv.contiguous(), true);
  auto [o5, p5] = gated_plain(want, p);
  ops::sum(ops::add(ops::sum_dim(o5, -1, true), p5)).backward();
  REQUIRE(xt.grad().defined());
  CHECK(relative_l2(xt.grad().transpose(0, 1), want.grad()) <= 1e-12);
}

TEST_CASE("gated_mlp rejects weights that do not chain with clear errors") {
  const Tensor x = randn({2, 3, 6}, 1);
  const std::vector<Tensor> p = gated_params(6, 8, 5, 30);
  auto with = [&](size_t k, const Tensor& t) {
    std::vector<Tensor> q = p;
    q[k] = t;
    return as_weights(q);
  };
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(10, randn({5, 2}, 2))),
                       doctest::Contains("gated_mlp: the gate's shapes do not chain"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(8, randn({7, 5}, 2))),
                       doctest::Contains("gated_mlp: the gate's shapes do not chain"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(11, randn({2}, 2))),
                       doctest::Contains("gated_mlp: the gate's shapes do not chain"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(0, randn({5, 8}, 2))),
                       doctest::Contains("gated_mlp (fast pathway): shapes do not chain"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(7, randn({7}, 2))),
                       doctest::Contains("gated_mlp (slow pathway): shapes do not chain"), aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(9, p[9].to(DType::F32))), doctest::Contains("gated_mlp: dtypes differ"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(ops::gated_mlp(x, with(11, Tensor())), doctest::Contains("gated_mlp: gate weight is undefined"),
                       aria::Error);
}

TEST_CASE("CPU gate_head rows equal the plain formula, partial outputs, relu applied inside, empty rows") {
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    const int64_t N = 37, C = 13;
    const Tensor h = randn({N, C}, 1, dt), w2 = randn({C}, 2, dt), b2 = randn({1}, 3, dt), dpi = randn({N}, 4, dt);
    Tensor pi = Tensor::empty({N}, dt), logit = Tensor::empty({N}, dt);
    cpu::gate_head_forward(h, w2, b2, pi, logit);
    Tensor dh = Tensor::empty({N, C}, dt), dw2 = Tensor::empty({C}, dt), db2 = Tensor::empty({1}, dt);
    cpu::gate_head_backward(h, w2, logit, dpi, dh, dw2, db2);
    // hand loops in double: dz = dpi pi (1 - pi) as the plain sigmoid's backward has it
    const auto hv = h.to_doubles(), wv = w2.to_doubles(), gv = dpi.to_doubles();
    std::vector<double> want_pi(static_cast<size_t>(N)), want_z(static_cast<size_t>(N)),
        want_dh(static_cast<size_t>(N * C)), want_dw2(static_cast<size_t>(C), 0.0), want_db2(1, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      double z = b2.to_doubles()[0];
      for (int64_t c = 0; c < C; ++c) z += std::max(hv[size_t(n * C + c)], 0.0) * wv[size_t(c)];
      const double p = 1 / (1 + std::exp(-z));
      want_z[size_t(n)] = z;
      want_pi[size_t(n)] = p;
      const double dz = gv[size_t(n)] * p * (1 - p);
      want_db2[0] += dz;
      for (int64_t c = 0; c < C; ++c) {
        const double a = hv[size_t(n * C + c)];
        want_dh[size_t(n * C + c)] = a > 0 ? dz * wv[size_t(c)] : 0.0;
        want_dw2[size_t(c)] += dz * std::max(a, 0.0);
      }
    }
    const double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    CHECK(relative_l2(pi, Tensor::from_vector(want_pi, {N}, DType::F64)) <= tol);
    CHECK(relative_l2(logit, Tensor::from_vector(want_z, {N}, DType::F64)) <= tol);
    CHECK(relative_l2(dh, Tensor::from_vector(want_dh, {N, C}, DType::F64)) <= tol);
    CHECK(relative_l2(dw2, Tensor::from_vector(want_dw2, {C}, DType::F64)) <= tol);
    CHECK(relative_l2(db2, Tensor::from_vector(want_db2, {1}, DType::F64)) <= tol);
    // partial requests give the same values
    Tensor dw2b = Tensor::full({C}, 7.0, dt), dhb = Tensor::full({N, C}, 7.0, dt), db2b = Tensor::full({1}, 7.0, dt);
    cpu::gate_head_backward(h, w2, logit, dpi, Tensor(), dw2b, Tensor());
    CHECK(relative_l2(dw2b, dw2) == 0.0);
    cpu::gate_head_backward(h, w2, logit, dpi, dhb, Tensor(), Tensor());
    CHECK(relative_l2(dhb, dh) == 0.0);
    cpu::gate_head_backward(h, w2, logit, dpi, Tensor(), Tensor(), db2b);
    CHECK(relative_l2(db2b, db2) == 0.0);
    // no logit wanted: pi alone, the same
    Tensor pi_only = Tensor::empty({N}, dt);
    cpu::gate_head_forward(h, w2, b2, pi_only, Tensor());
    CHECK(relative_l2(pi_only, pi) == 0.0);
    // an already rectified h gives the same results (relu(relu(h)) = relu(h), same mask)
    Tensor a1 = Tensor::empty({N, C}, dt), pi_a = Tensor::empty({N}, dt), dh_a = Tensor::empty({N, C}, dt);
    cpu::unary(int(UnaryOp::Relu), h, a1, 1.0, 0.0);
    cpu::gate_head_forward(a1, w2, b2, pi_a, Tensor());
    CHECK(relative_l2(pi_a, pi) == 0.0);
    cpu::gate_head_backward(a1, w2, logit, dpi, dh_a, Tensor(), Tensor());
    CHECK(relative_l2(dh_a, dh) == 0.0);
  }
  // C == 0: each logit is b2; N == 0: the sums over no rows are 0
  const Tensor b2 = Tensor::full({1}, 0.25, DType::F64);
  Tensor pi = Tensor::empty({3}, DType::F64);
  cpu::gate_head_forward(Tensor::empty({3, 0}, DType::F64), Tensor::empty({0}, DType::F64), b2, pi, Tensor());
  const double s = 1 / (1 + std::exp(-0.25));
  CHECK(pi.to_doubles() == std::vector<double>{s, s, s});
  Tensor dw2 = Tensor::full({4}, 7.0, DType::F64), db2 = Tensor::full({1}, 7.0, DType::F64);
  const Tensor none = Tensor::empty({0}, DType::F64);
  cpu::gate_head_backward(Tensor::empty({0, 4}, DType::F64), randn({4}, 1), none, none, Tensor::empty({0, 4}, DType::F64),
                          dw2, db2);
  CHECK(dw2.to_doubles() == std::vector<double>{0, 0, 0, 0});
  CHECK(db2.to_doubles() == std::vector<double>{0});
}

TEST_CASE("CPU gate_head rows check their operands") {
  const Tensor h = randn({4, 6}, 1), w2 = randn({6}, 2), b2 = randn({1}, 3), z = randn({4}, 4);
  const Tensor pi = Tensor::empty({4}, DType::F64);
  CHECK_THROWS_WITH_AS(cpu::gate_head_forward(h, randn({5}, 5), b2, pi, Tensor()),
                       doctest::Contains("gate_head_forward: w2 must be a contiguous CPU tensor with 6 elements"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_head_forward(h, w2, randn({2}, 5), pi, Tensor()),
                       doctest::Contains("gate_head_forward: b2 must be a contiguous CPU tensor with 1 elements"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_head_forward(h, w2, b2, pi, randn({4}, 5, DType::F32)),
                       doctest::Contains("gate_head_forward: logit float32[4] cpu must have dtype float64"), aria::Error);
  const Tensor h32 = h.to(DType::F32);
  CHECK_THROWS_WITH_AS(cpu::gate_head_backward(h32, w2.to(DType::F32), z, z.to(DType::F32), Tensor(), Tensor(), Tensor()),
                       doctest::Contains("gate_head_backward: logit float64[4] cpu must have dtype float32"), aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_head_backward(h, w2, z, randn({4}, 6, DType::F32), Tensor(), Tensor(), Tensor()),
                       doctest::Contains("gate_head_backward: dpi float32[4] cpu must have dtype float64"), aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_head_backward(h, w2, z, randn({4}, 6), Tensor::empty({6, 4}, DType::F64).transpose(0, 1),
                                               Tensor(), Tensor()),
                       doctest::Contains("gate_head_backward: dh must be a contiguous"), aria::Error);
  CHECK_THROWS_WITH_AS(cpu::gate_head_forward(Tensor::full({}, 1.0, DType::F64), w2, b2, pi, Tensor()),
                       doctest::Contains("gate_head_forward: h must be [N, C]"), aria::Error);
}

TEST_CASE("a tiny gated GPT-2: the fused gated MLP gives the plain path's loss, gates and gradients (float64)") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(), 5).to(DType::F64);
  inject_gated_mlp(m, 6, 0.5);
  // Distinct pathways, so that the gate's gradient through the mix is not zero.
  uint64_t seed = 40;
  for (const Gpt2Block& b : m.blocks)
    for (const Tensor* t : {&b.gated->fast.fc_w, &b.gated->fast.fc_b, &b.gated->fast.proj_w, &b.gated->fast.proj_b})
      Rng(++seed).fill_normal(*t, 0, 0.2);
  m.set_requires_grad(true);
  const Tensor ids = testing::random_ids({2, 9}, 64, 1), targets = testing::random_ids({2, 9}, 64, 2);
  PlasticitySettings ps;
  ps.lambda = 0.5;
  ps.warmup_steps = 0;
  const Tensor mask = Tensor::full({2, 9, 1}, 1.0, DType::F64);
  struct Result {
    double loss = 0;
    std::vector<Tensor> pis, grads;
    size_t tape_nodes = 0;
  };
  auto run = [&](bool fused) {
    SwitchScope scope(context().gated_mlp_fused, fused);
    for (auto& [name, t] : m.named_parameters()) t.zero_grad();
    tape().clear();
    // The language-model loss plus the plasticity loss: both out and pi of every layer feed it.
    GateValues gates;
    const Tensor lm = gpt2_lm_loss(m, ids, targets, ForwardOptions{&gates});
    Tensor loss = ops::add(lm, plasticity_loss(gates, mask, 18.0, ps));
    Result r;
    r.tape_nodes = tape().size();
    r.loss = loss.item();
    for (const Tensor& pi : gates.pi) r.pis.push_back(pi.detach().clone());
    loss.backward();
    for (auto& [name, t] : m.named_parameters()) r.grads.push_back(t.grad());
    return r;
  };
  const Result a = run(true), b = run(false);
  CHECK(a.tape_nodes < b.tape_nodes);  // one node per gated MLP instead of the plain ops' dozen
  CHECK(std::fabs(a.loss - b.loss) <= 1e-12 * std::fabs(b.loss));
  for (size_t l = 0; l < a.pis.size(); ++l) CHECK(relative_l2(a.pis[l], b.pis[l]) <= 1e-12);
  const auto names = m.named_parameters();
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t k = 0; k < a.grads.size(); ++k) {
    CAPTURE(names[k].first);
    REQUIRE(a.grads[k].defined());
    REQUIRE(b.grads[k].defined());
    CHECK(relative_l2(a.grads[k], b.grads[k]) <= 1e-10);
  }
}

TEST_CASE("given a capture sink the gated MLP runs the plain ops, which the sink sees") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(), 7).to(DType::F64);
  inject_gated_mlp(m, 8, 0.5);
  const GatedMlp& g = *m.blocks[0].gated;
  struct Seen : ops::CaptureSink {
    const Tensor* gate_w1 = nullptr;
    int gate_linears = 0, linears = 0;
    Tensor on_linear(const Tensor&, const Tensor& w, const Tensor&, const Tensor& y) override {
      ++linears;
      if (w.same_as(*gate_w1)) ++gate_linears;
      return y;
    }
    Tensor on_layernorm(const Tensor&, const Tensor&, const Tensor&, double, const Tensor& y) override { return y; }
    Tensor on_embedding(const Tensor&, const Tensor&, const Tensor& y) override { return y; }
  } seen;
  seen.gate_w1 = &g.gate_w1;
  const Tensor x = leaf(randn({2, 3, 16}, 9), true);
  const auto [fused_out, fused_pi_out] = gated_mlp_forward(g, x);
  const Tensor fused = fused_out.detach(), fused_pi = fused_pi_out.detach();
  const auto [plain, plain_pi] = gated_mlp_forward(g, x, &seen);
  tape().clear();
  CHECK(seen.gate_linears == 1);
  CHECK(seen.linears == 6);  // the gate's two and each pathway's two
  CHECK(relative_l2(plain, fused) <= 1e-12);
  CHECK(relative_l2(plain_pi, fused_pi) <= 1e-12);
}

TEST_CASE("a capture sink given to the GPT-2 forward sees every linear, layernorm and embedding, and changes no value") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(), 7).to(DType::F64);
  inject_gated_mlp(m, 8, 0.5);
  m.set_requires_grad(true);
  struct Count : ops::CaptureSink {
    int linears = 0, layernorms = 0, embeddings = 0;
    Tensor on_linear(const Tensor&, const Tensor&, const Tensor&, const Tensor& y) override { return ++linears, y; }
    Tensor on_layernorm(const Tensor&, const Tensor&, const Tensor&, double, const Tensor& y) override {
      return ++layernorms, y;
    }
    Tensor on_embedding(const Tensor&, const Tensor&, const Tensor& y) override { return ++embeddings, y; }
  } count;
  const Tensor ids = testing::random_ids({2, 5}, 64, 3);
  GateValues fused_gates, plain_gates;
  const Tensor fused = gpt2_hidden(m, ids, ForwardOptions{&fused_gates}).detach();
  const Tensor plain = gpt2_hidden(m, ids, ForwardOptions{&plain_gates, &count}).detach();
  tape().clear();
  const int L = m.config.n_layer;
  CHECK(count.embeddings == 2);           // wte, wpe
  CHECK(count.layernorms == 2 * L + 1);   // ln_1, ln_2 per block, ln_f
  CHECK(count.linears == 8 * L);          // attention's two, the gate's two, each pathway's two
  CHECK(relative_l2(plain, fused) <= 1e-12);
  REQUIRE(plain_gates.pi.size() == size_t(L));
  for (int l = 0; l < L; ++l) CHECK(relative_l2(plain_gates.pi[size_t(l)], fused_gates.pi[size_t(l)]) <= 1e-12);
  {
    NoGradGuard no_grad;  // nothing recorded: nothing to capture
    Count none;
    gpt2_hidden(m, ids, ForwardOptions{nullptr, &none});
    CHECK(none.linears + none.layernorms + none.embeddings == 0);
  }
}

namespace {

// Runs the gate_head rows on the GPU (dtype dt) and the CPU (float32) for h [N, C] and compares.
// misaligned: GPU operands one element off a 16-byte boundary. The backward gets the same logits on
// both sides (the CPU's), so that it is compared alone.
void check_gate_head_gpu(int64_t N, int64_t C, DType dt, bool misaligned, uint64_t seed) {
  const std::string tag = std::string(dtype_name(dt)) + " [" + std::to_string(N) + ", " + std::to_string(C) + "]" +
                          (misaligned ? " misaligned" : "");
  CAPTURE(tag);
  auto gpu_of = [&](const Tensor& t) { return misaligned ? misaligned_gpu(t) : t; };
  const In h = make_in(randn({N, C}, seed, DType::F32), dt);
  const In w2 = make_in(randn({C}, seed + 1, DType::F32, 2 / std::sqrt(double(std::max<int64_t>(C, 1)))), dt);
  const In b2 = make_in(randn({1}, seed + 2, DType::F32), dt), dpi = make_in(randn({N}, seed + 3, DType::F32), dt);
  const bool bf = dt == DType::BF16;
  const double rel = bf ? 0x1p-8 : 1e-6;
  const auto hv = h.cpu.to_doubles(), wv = w2.cpu.to_doubles();

  // forward: the logit's fp32 noise scales with sum_c |relu(h) w2| (+ |b2|), pi's with a quarter of it
  const DType lt = dt == DType::F64 ? DType::F64 : DType::F32;  // the logits' dtype
  Tensor pi_c = Tensor::empty({N}, DType::F32), z_c = Tensor::empty({N}, DType::F32);
  cpu::gate_head_forward(h.cpu, w2.cpu, b2.cpu, pi_c, z_c);
  Tensor pi_g = gpu_of(nan_gpu({N}, dt)), z_g = gpu_of(nan_gpu({N}, lt));
  cuda::gate_head_forward(gpu_of(h.gpu), gpu_of(w2.gpu), b2.gpu, pi_g, z_g);
  std::vector<double> z_atol(static_cast<size_t>(N), 0.0), pi_atol(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double s = std::fabs(b2.cpu.to_doubles()[0]);
    for (int64_t c = 0; c < C; ++c) s += std::max(hv[size_t(n * C + c)], 0.0) * std::fabs(wv[size_t(c)]);
    z_atol[size_t(n)] = 2e-6 * s + 1e-7;
    pi_atol[size_t(n)] = 1e-6 * s + 1e-7;
  }
  expect_elementwise(pi_g, pi_c, rel, pi_atol, tag + " pi");
  expect_elementwise(z_g, z_c, 1e-6, z_atol, tag + " logit");  // never rounded to bf16
  Tensor pi_only = gpu_of(nan_gpu({N}, dt));
  cuda::gate_head_forward(gpu_of(h.gpu), gpu_of(w2.gpu), b2.gpu, pi_only, Tensor());
  CHECK(bit_equal(pi_only, pi_g));

  // backward, from the CPU's logits on both sides
  const Tensor z_in = z_c.to(lt).to(kGpu);
  Tensor dh_c = Tensor::empty({N, C}, DType::F32), dw2_c = Tensor::empty({C}, DType::F32),
         db2_c = Tensor::empty({1}, DType::F32);
  cpu::gate_head_backward(h.cpu, w2.cpu, z_c, dpi.cpu, dh_c, dw2_c, db2_c);
  Tensor dh_g = gpu_of(nan_gpu({N, C}, dt)), dw2_g = gpu_of(nan_gpu({C}, dt)), db2_g = nan_gpu({1}, dt);
  cuda::gate_head_backward(gpu_of(h.gpu), gpu_of(w2.gpu), gpu_of(z_in), gpu_of(dpi.gpu), dh_g, dw2_g, db2_g);
  expect_elementwise(dh_g, dh_c, rel, {1e-7}, tag + " dh");
  // the column sums' fp32 noise scales with sum_n |dz relu(h)| (chunk and warp partials)
  const auto pv = pi_c.to_doubles(), gv = dpi.cpu.to_doubles();
  std::vector<double> dw2_atol(static_cast<size_t>(C), 1e-7), db2_atol(1, 1e-7);
  for (int64_t n = 0; n < N; ++n) {
    const double dz = std::fabs(gv[size_t(n)] * pv[size_t(n)] * (1 - pv[size_t(n)]));
    db2_atol[0] += 1e-5 * dz;
    for (int64_t c = 0; c < C; ++c) dw2_atol[size_t(c)] += 1e-5 * dz * std::max(hv[size_t(n * C + c)], 0.0);
  }
  expect_elementwise(dw2_g, dw2_c, rel, dw2_atol, tag + " dw2");
  expect_elementwise(db2_g, db2_c, rel, db2_atol, tag + " db2");

  // deterministic: the same sums bit for bit; partial requests give the same values
  Tensor dw2_2 = gpu_of(nan_gpu({C}, dt)), db2_2 = nan_gpu({1}, dt), dh_2 = gpu_of(nan_gpu({N, C}, dt));
  cuda::gate_head_backward(gpu_of(h.gpu), gpu_of(w2.gpu), gpu_of(z_in), gpu_of(dpi.gpu), Tensor(), dw2_2, Tensor());
  CHECK(bit_equal(dw2_2, dw2_g));
  cuda::gate_head_backward(gpu_of(h.gpu), gpu_of(w2.gpu), gpu_of(z_in), gpu_of(dpi.gpu), Tensor(), Tensor(), db2_2);
  CHECK(bit_equal(db2_2, db2_g));
  cuda::gate_head_backward(gpu_of(h.gpu), gpu_of(w2.gpu), gpu_of(z_in), gpu_of(dpi.gpu), dh_2, Tensor(), Tensor());
  CHECK(bit_equal(dh_2, dh_g));
}

// The model's gated MLP before the fused op: the gate in plain ops, each pathway one gelu_mlp, the mix.
std::pair<Tensor, Tensor> gated_unfused(const Tensor& x, const std::vector<Tensor>& p) {
  const Tensor pi = ops::sigmoid(ops::linear(ops::relu(ops::linear(x, p[8], p[9])), p[10], p[11]));
  const Tensor fast = ops::gelu_mlp(x, p[0], p[1], p[2], p[3]), slow = ops::gelu_mlp(x, p[4], p[5], p[6], p[7]);
  return {ops::gate_mix(slow, fast, pi), pi};
}

}  // namespace

TEST_CASE("CUDA gate_head rows (float32, bfloat16) match the CPU, awkward sizes included") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: gate_head rows")) return;
  uint64_t seed = 500;
  for (DType dt : {DType::F32, DType::BF16}) {
    check_gate_head_gpu(16384, 768, dt, false, seed += 10);  // the model's shape
    check_gate_head_gpu(129, 771, dt, false, seed += 10);    // C not a multiple of 8: no packs
    check_gate_head_gpu(129, 768, dt, true, seed += 10);     // misaligned: no packs
    check_gate_head_gpu(257, 13, dt, false, seed += 10);
    check_gate_head_gpu(3, 4000, dt, false, seed += 10);  // several column tiles, few rows
    check_gate_head_gpu(1, 1, dt, false, seed += 10);
    check_gate_head_gpu(5, 0, dt, false, seed += 10);  // logits = b2; db2 still summed
    check_gate_head_gpu(0, 24, dt, false, seed += 10);  // no rows: zero sums
  }
  check_gate_head_gpu(129, 771, DType::F64, false, 999);
}

TEST_CASE("CUDA gated_mlp op (bfloat16, float32) matches the float32 CPU op, gradients included") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: gated_mlp op")) return;
  const int64_t C = 96, H = 384, G = 96;
  const Shape xs{4, 33, C};
  const std::vector<bool> all(13, true);
  for (DType dt : {DType::BF16, DType::F32}) {
    CAPTURE(dtype_name(dt));
    const In x = make_in(randn(xs, 1, DType::F32), dt), wo = make_in(randn(xs, 2, DType::F32), dt);
    const In wp = make_in(randn({4, 33, 1}, 3, DType::F32), dt);
    std::vector<Tensor> pc, pg;
    for (const Tensor& t : gated_params(C, H, G, 4, DType::F32)) {
      const In in = make_in(t, dt);
      pc.push_back(in.cpu);
      pg.push_back(in.gpu);
    }
    for (Feeds feeds : {Feeds::OutAndPi, Feeds::OutOnly}) {
      CAPTURE(int(feeds));
      const GatedRun c = run_gated(true, x.cpu, pc, all, feeds, wo.cpu, wp.cpu);
      const GatedRun g = run_gated(true, x.gpu, pg, all, feeds, wo.gpu, wp.gpu);
      // The unfused model path on the GPU in the same dtype: the fused op must be no less accurate.
      const GatedRun u = run_gated_with(gated_unfused, x.gpu, pg, all, feeds, wo.gpu, wp.gpu);
      const double tol = dt == DType::BF16 ? 2e-2 : 1e-4;
      CHECK(g.out.device().is_cuda());
      CHECK(g.out.dtype() == dt);
      CHECK(relative_l2(g.out, c.out) <= tol);
      CHECK(relative_l2(g.pi, c.pi) <= tol);
      for (size_t k = 0; k < c.grads.size(); ++k) {
        CAPTURE(k);
        REQUIRE(g.grads[k].defined());
        CHECK(g.grads[k].dtype() == dt);
        const double err = relative_l2(g.grads[k], c.grads[k]), err_unfused = relative_l2(u.grads[k], c.grads[k]);
        CAPTURE(err_unfused);
        CHECK(err <= tol);
        // A floor of one rounding of the result (gate_b2 is one bf16 value: its error is its ulp).
        CHECK(err <= 1.5 * err_unfused + (dt == DType::BF16 ? 0x1p-8 : 1e-6));
      }
    }
  }
}

#ifdef ARIA_WITH_CUDA

TEST_CASE("gated_mlp op timing against the unfused gated MLP (ARIA_BF16_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_BF16_BENCH")) return;
  if (!testing::gpu_or_skip("gated fused CUDA kernels: gated_mlp timing")) return;
  // GPT-2 124M's gated block at B = 16, T = 1024: C = 768, pathways 3072 wide, gate 768 wide.
  const int64_t C = 768, H = 3072, G = 768;
  const DType dt = DType::BF16;
  const Tensor x0 = randn({16, 1024, C}, 1, dt, 1.0, kGpu), dout = randn({16, 1024, C}, 2, dt, 1.0, kGpu);
  const Tensor dpi = randn({16, 1024, 1}, 3, dt, 1e-3, kGpu);
  std::vector<Tensor> p;
  for (const Tensor& t : gated_params(C, H, G, 4, DType::F32)) p.push_back(leaf(t.to(dt).to(kGpu), true));
  const Tensor x = leaf(x0, true);
  auto step = [&](bool fused) {
    auto [out, pi] = fused ? ops::gated_mlp(x, as_weights(p)) : gated_unfused(x, p);
    out.set_grad(dout);
    pi.set_grad(dpi.clone());  // the unfused gate_mix adds into pi's gradient in place
    // Both outputs seeded as in training (the plasticity loss reads pi): one walk over the op's nodes.
    tape().backward(out, false);
    for (Tensor& t : p) t.zero_grad();
    x.zero_grad();
  };
  auto fwd = [&](bool fused) {
    NoGradGuard ng;
    (void)(fused ? ops::gated_mlp(x, as_weights(p)) : gated_unfused(x, p));
  };
  const double f_fused = testing::cuda_median_ms([&] { fwd(true); }),
               f_plain = testing::cuda_median_ms([&] { fwd(false); });
  const double s_fused = testing::cuda_median_ms([&] { step(true); }),
               s_plain = testing::cuda_median_ms([&] { step(false); });
  std::printf("gated MLP bf16 [16384, 768] forward:            fused %7.3f ms  unfused %7.3f ms\n", f_fused, f_plain);
  std::printf("gated MLP bf16 [16384, 768] forward + backward: fused %7.3f ms  unfused %7.3f ms\n", s_fused, s_plain);
  // The gate-head rows alone, against the bytes they must move (h read, dh written).
  const int64_t N = 16384;
  const Tensor h = randn({N, G}, 5, dt, 1.0, kGpu), w2 = randn({G}, 6, dt, 0.05, kGpu), b2 = randn({1}, 7, dt, 1.0, kGpu);
  Tensor pi = Tensor::empty({N}, dt, kGpu), z = Tensor::empty({N}, DType::F32, kGpu);
  const Tensor dpi_rows = randn({N}, 8, dt, 1.0, kGpu);
  Tensor dh = Tensor::empty({N, G}, dt, kGpu), dw2 = Tensor::empty({G}, dt, kGpu), db2 = Tensor::empty({1}, dt, kGpu);
  const double es = double(dtype_size(dt));
  const double t_fwd = testing::cuda_median_ms([&] { cuda::gate_head_forward(h, w2, b2, pi, z); });
  const double t_bwd = testing::cuda_median_ms([&] { cuda::gate_head_backward(h, w2, z, dpi_rows, dh, dw2, db2); });
  std::printf("gate_head_forward  bf16 [16384, 768] %7.1f us %6.0f GB/s\n", t_fwd * 1e3, N * G * es / (t_fwd * 1e6));
  std::printf("gate_head_backward bf16 [16384, 768] %7.1f us %6.0f GB/s\n", t_bwd * 1e3,
              2.0 * N * G * es / (t_bwd * 1e6));
  CHECK(true);
}

#endif
