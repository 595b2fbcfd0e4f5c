// The fused kernels of ARIA's gated model against what they replace:
//   gate_mix (core/ops_gated.cpp) == add(slow, mul(pi, sub(fast, slow))), forward and backward, in
//   float64 on the CPU (to rounding), also when only some inputs require grad;
//   spc_penalty_grad == binary mul + axpy(-B) + axpy(lambda), the three kernels SPC used before;
//   the op's and rows' input checks;
//   CUDA (skipped visibly without a GPU): the rows in float32 and bfloat16 against the CPU at the
//   model's shape [16384, 768] and an awkward [129, 771] (no 16-byte packs), misaligned data, partial
//   gradients, deterministic dpi; ARIA_BF16_BENCH=1 adds a timing case.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/kernels.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"
#ifdef ARIA_WITH_CUDA
#include "kernels/cuda/check.h"
#include "kernels/cuda/runtime.h"
#endif

using namespace aria;
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

TEST_CASE("gate_mix equals add(slow, mul(pi, sub(fast, slow))) forward and backward (float64)") {
  const std::vector<Shape> shapes = {{2, 3, 5}, {1, 7}, {129, 771}, {3, 1}, {4, 2, 3, 16}, {6}};
  uint64_t seed = 10;
  for (const Shape& shape : shapes) {
    Shape pshape = shape;
    pshape.back() = 1;
    const Tensor slow = randn(shape, ++seed), fast = randn(shape, ++seed), pi = rand_gate(pshape, ++seed);
    const Tensor w = randn(shape, ++seed);
    // every subset of differentiated inputs, the empty one included
    for (int mask = 0; mask < 8; ++mask) {
      const bool gs = mask & 1, gf = mask & 2, gp = mask & 4;
      CAPTURE(shape_tag(shape));
      CAPTURE(mask);
      const auto a = forward_backward(fused, slow, fast, pi, w, gs, gf, gp);
      const auto b = forward_backward(composed, slow, fast, pi, w, gs, gf, gp);
      CHECK(a[0].shape() == shape);
      CHECK(relative_l2(a[0], b[0]) <= 1e-12);
      for (int k = 1; k < 4; ++k) {
        CAPTURE(k);
        REQUIRE(a[k].defined() == b[k].defined());
        if (!a[k].defined()) continue;
        CHECK(a[k].shape() == b[k].shape());
        CHECK(relative_l2(a[k], b[k]) <= 1e-12);
      }
    }
  }
}

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
      cpu::spc_penalty_grad(g, s, s.reshape({6, 4}), s, 1.0),
      doctest::Contains("spc_penalty_grad: p float64[6, 4] cpu and grad float64[4, 6] cpu must have the same shape"),
      aria::Error);
  CHECK_THROWS_WITH_AS(cpu::spc_penalty_grad(g, s.to(DType::F32), s, s, 1.0),
                       doctest::Contains("spc_penalty_grad: A float32[4, 6] cpu must have dtype float64"), aria::Error);
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
        cpu::spc_penalty_grad(got, A, p, B, lambda);
        CHECK(relative_l2(got, want) <= (dt == DType::F64 ? 1e-12 : 1e-5));
      }
    }
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

// A GPU copy of t whose data pointer is one element past a 16-byte boundary (the scalar paths).
Tensor misaligned_gpu(const Tensor& t) {
  const int64_t n = t.numel();
  Tensor base = Tensor::empty({n + 1}, t.dtype(), kGpu);
  Tensor v = base.slice(0, 1, n + 1);
  v.copy_from(t.reshape({n}));
  return v.reshape(t.shape());
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

TEST_CASE("CUDA gate_mix op (bfloat16) matches the float32 CPU op, gradients included") {
  if (!testing::gpu_or_skip("gated fused CUDA kernels: gate_mix op")) return;
  const Shape shape{4, 33, 768}, pshape{4, 33, 1};
  const DType bf = DType::BF16;
  const In slow = make_in(randn(shape, 1, DType::F32), bf), fast = make_in(randn(shape, 2, DType::F32), bf);
  const In pi = make_in(rand_gate(pshape, 3, DType::F32), bf), w = make_in(randn(shape, 4, DType::F32), bf);
  const auto c = forward_backward(fused, slow.cpu, fast.cpu, pi.cpu, w.cpu, true, true, true);
  const auto g = forward_backward(fused, slow.gpu, fast.gpu, pi.gpu, w.gpu, true, true, true);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    REQUIRE(g[k].defined());
    CHECK(g[k].dtype() == DType::BF16);
    CHECK(g[k].device().is_cuda());
    CHECK(g[k].shape() == c[k].shape());
    CHECK(relative_l2(g[k], c[k]) <= 1e-2);
  }
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
        cpu::spc_penalty_grad(want, A.cpu, p.cpu, B.cpu, lambda);
        auto gpu_of = [&](const Tensor& t) { return misaligned ? misaligned_gpu(t) : t; };
        Tensor got = gpu_of(g.gpu.clone());
        cuda::spc_penalty_grad(got, gpu_of(A.gpu), gpu_of(p.gpu), gpu_of(B.gpu), lambda);
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

#ifdef ARIA_WITH_CUDA

TEST_CASE("gate_mix / spc_penalty_grad bandwidth (ARIA_BF16_BENCH=1)") {
  const char* env = std::getenv("ARIA_BF16_BENCH");
  if (!env || std::string(env) != "1") {
    MESSAGE("gated fused timing skipped (set ARIA_BF16_BENCH=1)");
    return;
  }
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
  report("spc_penalty_grad", testing::cuda_mean_ms([&] { cuda::spc_penalty_grad(g, A, fast, B, 1e-3); }), 5.0 * n * es);
  report("spc as mul + 2 axpy", testing::cuda_mean_ms([&] {
           cuda::binary(int(BinaryOp::Mul), A, fast, d);
           cuda::axpy(d, B, -1.0);
           cuda::axpy(g, d, 1e-3);
         }),
         5.0 * n * es);
  CHECK(true);
}

#endif
