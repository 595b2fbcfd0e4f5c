// The gemm_epilogue row (kernels/kernel_list.h) and bfloat16 matmul.
//  - CPU: every epilogue in float64 against a direct triple-loop reference (all transpose
//    combinations, awkward sizes), exact to 1e-12; float32 against the same reference; bad arguments.
//  - CUDA (skipped without a GPU): every epilogue in float32 (TF32 off) and bfloat16 against the CPU
//    float32 kernel on the same (bf16-rounded) inputs; fused and fallback shapes (N % 8 != 0 takes
//    the unfused path for GELU aux); cuBLASLt's GELU checked to be the tanh form; determinism;
//    batched bfloat16 matmul with alpha/beta and a shared batch-1 b.
//  - Timing (ARIA_GEMM_BENCH=1): GPT-2 124M GEMMs at 16384 tokens in bfloat16, fused epilogue
//    against plain matmul and against matmul + separate kernels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "aria/core/context.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"
#ifdef ARIA_WITH_CUDA
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"
namespace aria::cuda {
uint64_t gemm_epilogue_fallbacks();  // kernels/cuda/matmul.cu: calls that took the unfused path
}
#endif

using namespace aria;
using testing::gpu_or_skip;
using testing::poisoned;
using testing::randn;

namespace {

const Device kCpu = Device::cpu();
const DType kF64 = DType::F64;  // the CPU tests' dtype

// ---- problem and reference ----------------------------------------------------------------------

struct Problem {
  int64_t M, N, K;
  bool ta, tb;
  GemmEpilogue ep;
  bool with_bias, with_aux;  // for Gelu and DGelu, where both are optional (DGelu always has aux)
};

std::string describe(const Problem& p) {
  static const char* names[] = {"None", "Bias", "Gelu", "DGelu", "BGrad"};
  return std::string(names[int(p.ep)]) + " M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) +
         " K=" + std::to_string(p.K) + (p.ta ? " ta" : "") + (p.tb ? " tb" : "") + (p.with_bias ? " bias" : "") +
         (p.with_aux ? " aux" : "");
}

bool bias_is_input(const Problem& p) { return p.with_bias && (p.ep == GemmEpilogue::Bias || p.ep == GemmEpilogue::Gelu); }
bool bias_is_output(const Problem& p) {
  return p.with_bias && (p.ep == GemmEpilogue::DGelu || p.ep == GemmEpilogue::BGrad);
}

// Inputs in float64 on the CPU: ab ~ N(0, 1) (b scaled by 1/sqrt(K)), so GELU sees its curved part.
struct Inputs {
  Tensor a, b, bias, aux;  // bias: input for Bias/Gelu; aux: input for DGelu
};

Inputs make_inputs(const Problem& p, uint64_t seed) {
  Inputs in;
  in.a = randn(p.ta ? Shape{p.K, p.M} : Shape{p.M, p.K}, seed, 1.0, kF64);
  in.b = randn(p.tb ? Shape{p.N, p.K} : Shape{p.K, p.N}, seed + 1, 1.0 / std::sqrt(double(std::max<int64_t>(p.K, 1))),
               kF64);
  if (bias_is_input(p)) in.bias = randn({p.N}, seed + 2, 0.5, kF64);
  if (p.ep == GemmEpilogue::DGelu) in.aux = randn({p.M, p.N}, seed + 3, 1.5, kF64);
  return in;
}

Inputs cast_inputs(const Inputs& in, DType t) {
  Inputs o;
  o.a = in.a.to(t);
  o.b = in.b.to(t);
  if (in.bias.defined()) o.bias = in.bias.to(t);
  if (in.aux.defined()) o.aux = in.aux.to(t);
  return o;
}

constexpr double kGeluK0 = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluK1 = 0.044715;
double gelu_tanh(double x) { return 0.5 * x * (1 + std::tanh(kGeluK0 * (x + kGeluK1 * x * x * x))); }
double dgelu_tanh(double x) {
  const double t = std::tanh(kGeluK0 * (x + kGeluK1 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * kGeluK0 * (1 + 3 * kGeluK1 * x * x);
}
// The exact (erf) GELU: what cuBLASLt's epilogue must NOT be, for our tanh-form UnaryOp::Gelu.
double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double dgelu_erf(double x) {
  return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

struct Result {
  std::vector<double> c, bias, aux;  // bias/aux where the epilogue writes them
};

// The row's semantics, spelled out with loops in float64.
Result reference(const Problem& p, const Inputs& in, bool erf_gelu = false) {
  const auto a = in.a.to_doubles(), b = in.b.to_doubles();
  const int64_t M = p.M, N = p.N, K = p.K;
  auto A = [&](int64_t i, int64_t k) { return p.ta ? a[size_t(k * M + i)] : a[size_t(i * K + k)]; };
  auto B = [&](int64_t k, int64_t n) { return p.tb ? b[size_t(n * K + k)] : b[size_t(k * N + n)]; };
  std::vector<double> ab(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += A(i, k) * B(k, n);
      ab[size_t(i * N + n)] = s;
    }
  Result r;
  r.c = ab;
  const std::vector<double> bias = in.bias.defined() ? in.bias.to_doubles() : std::vector<double>(size_t(N), 0.0);
  switch (p.ep) {
    case GemmEpilogue::None: break;
    case GemmEpilogue::Bias:
      for (int64_t i = 0; i < M * N; ++i) r.c[size_t(i)] += bias[size_t(i % N)];
      break;
    case GemmEpilogue::Gelu:
      r.aux = ab;
      for (int64_t i = 0; i < M * N; ++i) {
        r.aux[size_t(i)] += bias[size_t(i % N)];
        r.c[size_t(i)] = erf_gelu ? gelu_erf(r.aux[size_t(i)]) : gelu_tanh(r.aux[size_t(i)]);
      }
      break;
    case GemmEpilogue::DGelu: {
      const auto aux = in.aux.to_doubles();
      r.bias.assign(size_t(N), 0.0);
      for (int64_t i = 0; i < M * N; ++i) {
        const double x = aux[size_t(i)];
        r.c[size_t(i)] = ab[size_t(i)] * (erf_gelu ? dgelu_erf(x) : dgelu_tanh(x));
        r.bias[size_t(i % N)] += r.c[size_t(i)];
      }
      break;
    }
    case GemmEpilogue::BGrad:
      r.bias.assign(size_t(N), 0.0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) r.bias[size_t(n)] += B(k, n);
      break;
  }
  if (!bias_is_output(p)) r.bias.clear();
  if (!p.with_aux) r.aux.clear();  // Gelu writes aux only when given one
  return r;
}

// Runs the row on `device` in the dtype of `in`. Outputs are poisoned with NaN first, so that an
// element the kernel forgot to write fails every comparison.
Result run(const Problem& p, const Inputs& in, Device device) {
  const DType t = in.a.dtype();
  auto on = [&](const Tensor& x) { return x.defined() ? x.to(device) : Tensor(); };
  Tensor c = poisoned({p.M, p.N}, t, device);
  Tensor bias = bias_is_input(p) ? on(in.bias) : bias_is_output(p) ? poisoned({p.N}, t, device) : Tensor();
  Tensor aux = p.ep == GemmEpilogue::DGelu ? on(in.aux)
               : (p.ep == GemmEpilogue::Gelu && p.with_aux) ? poisoned({p.M, p.N}, t, device)
                                                             : Tensor();
  ARIA_DISPATCH(device, gemm_epilogue, on(in.a), on(in.b), c, p.ta, p.tb, int(p.ep), bias, aux);
  Result r;
  r.c = c.to_doubles();
  if (bias_is_output(p)) r.bias = bias.to_doubles();
  if (p.ep == GemmEpilogue::Gelu && p.with_aux) r.aux = aux.to_doubles();
  return r;
}

double max_rel_err(const std::vector<double>& got, const std::vector<double>& want) {  // max |d| / max(1, max |want|)
  REQUIRE(got.size() == want.size());
  double d = 0, m = 1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]);
    d = std::isnan(e) ? INFINITY : std::max(d, e);
    m = std::max(m, std::fabs(want[i]));
  }
  return d / m;
}

double rel_l2(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    d += (got[i] - want[i]) * (got[i] - want[i]);
    n += want[i] * want[i];
  }
  if (std::isnan(d)) return INFINITY;
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
}

// Every epilogue, with the optional bias/aux of Gelu and DGelu both present and absent.
std::vector<Problem> variants(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  return {{M, N, K, ta, tb, GemmEpilogue::None, false, false},  {M, N, K, ta, tb, GemmEpilogue::Bias, true, false},
          {M, N, K, ta, tb, GemmEpilogue::Gelu, true, true},    {M, N, K, ta, tb, GemmEpilogue::Gelu, false, true},
          {M, N, K, ta, tb, GemmEpilogue::Gelu, true, false},   {M, N, K, ta, tb, GemmEpilogue::DGelu, true, true},
          {M, N, K, ta, tb, GemmEpilogue::DGelu, false, true},  {M, N, K, ta, tb, GemmEpilogue::BGrad, true, false}};
}

// variants() of every [M, N, K] in `shapes`, in each of the four transpose combinations.
template <size_t S>
std::vector<Problem> all_variants(const int64_t (&shapes)[S][3]) {
  std::vector<Problem> all;
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (const Problem& p : variants(s[0], s[1], s[2], t & 1, t & 2)) all.push_back(p);
  return all;
}

}  // namespace

// ---- CPU ----------------------------------------------------------------------------------------

TEST_CASE("CPU gemm_epilogue float64 equals the loop reference for every epilogue, transpose and awkward size") {
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 1, 129}, {1, 7, 771}, {129, 7, 1}, {7, 129, 771}, {771, 7, 129}};
  uint64_t seed = 100;
  int checked = 0;
  for (const Problem& p : all_variants(shapes)) {
    CAPTURE(describe(p));
    const Inputs in = make_inputs(p, seed += 10);
    const Result want = reference(p, in), got = run(p, in, kCpu);
    CHECK(max_rel_err(got.c, want.c) <= 1e-12);
    if (!want.bias.empty()) CHECK(max_rel_err(got.bias, want.bias) <= 1e-12);
    if (!want.aux.empty()) CHECK(max_rel_err(got.aux, want.aux) <= 1e-12);
    ++checked;
  }
  CHECK(checked == 6 * 4 * 8);
}

TEST_CASE("CPU gemm_epilogue float32 matches the float64 reference") {
  for (int t = 0; t < 4; ++t)
    for (const Problem& p : variants(33, 65, 127, t & 1, t & 2)) {
      CAPTURE(describe(p));
      const Inputs in = cast_inputs(make_inputs(p, 7000 + uint64_t(t)), DType::F32);
      const Result want = reference(p, in), got = run(p, in, kCpu);
      CHECK(rel_l2(got.c, want.c) <= 1e-6);
      if (!want.bias.empty()) CHECK(rel_l2(got.bias, want.bias) <= 1e-6);
      if (!want.aux.empty()) CHECK(rel_l2(got.aux, want.aux) <= 1e-6);
    }
}

TEST_CASE("CPU gemm_epilogue: the bias gradient of a linear layer (BGrad) and the MLP backward (DGelu) agree") {
  // x [T, in], dy [T, out]: dW = x^T dy and db = sum_t dy, in one call; and DGelu's bias is the
  // column sum of its own output, i.e. the bias gradient of the layer that produced aux.
  const int64_t T = 37, in = 19, out = 23;
  const Tensor x = randn({T, in}, 1, 1.0, kF64), dy = randn({T, out}, 2, 1.0, kF64);
  Tensor dw = Tensor::empty({in, out}, DType::F64), db = Tensor::empty({out}, DType::F64);
  cpu::gemm_epilogue(x, dy, dw, true, false, int(GemmEpilogue::BGrad), db, Tensor());
  const auto xs = x.to_doubles(), dys = dy.to_doubles(), dws = dw.to_doubles(), dbs = db.to_doubles();
  for (int64_t o = 0; o < out; ++o) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t) s += dys[size_t(t * out + o)];
    CHECK(dbs[size_t(o)] == doctest::Approx(s).epsilon(1e-12));
  }
  double w01 = 0;
  for (int64_t t = 0; t < T; ++t) w01 += xs[size_t(t * in + 0)] * dys[size_t(t * out + 1)];
  CHECK(dws[1] == doctest::Approx(w01).epsilon(1e-12));
}

TEST_CASE("gemm_epilogue refuses bad arguments with clear errors") {
  const Tensor a = randn({4, 3}, 1, 1.0, DType::F32), b = randn({3, 5}, 2, 1.0, DType::F32);
  const Tensor c = Tensor::empty({4, 5}), bias = Tensor::zeros({5}), aux = Tensor::zeros({4, 5});
  auto call = [&](int ep, const Tensor& bi, const Tensor& ax, const Tensor& cc) {
    cpu::gemm_epilogue(a, b, cc, false, false, ep, bi, ax);
  };
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::Bias), Tensor(), Tensor(), c), doctest::Contains("needs a bias"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::BGrad), Tensor(), Tensor(), c), doctest::Contains("needs a bias"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::DGelu), bias, Tensor(), c), doctest::Contains("needs aux"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::None), bias, Tensor(), c), doctest::Contains("takes no bias"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::Bias), bias, aux, c), doctest::Contains("takes no aux"), Error);
  CHECK_THROWS_WITH_AS(call(9, Tensor(), Tensor(), c), doctest::Contains("unknown epilogue"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::Bias), Tensor::zeros({4}), Tensor(), c), doctest::Contains("bias must be"),
                       Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::Gelu), Tensor(), Tensor::zeros({5, 4}), c),
                       doctest::Contains("aux must be"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::None), Tensor(), Tensor(), Tensor::empty({4, 6})),
                       doctest::Contains("shapes do not agree"), Error);
  CHECK_THROWS_WITH_AS(call(int(GemmEpilogue::Bias), Tensor::zeros({5}, DType::F64), Tensor(), c),
                       doctest::Contains("bias must be"), Error);
  const Tensor a16 = a.to(DType::BF16), b16 = b.to(DType::BF16), c16 = Tensor::empty({4, 5}, DType::BF16);
  CHECK_THROWS_WITH_AS(cpu::gemm_epilogue(a16, b16, c16, false, false, 0, Tensor(), Tensor()),
                       doctest::Contains("float32 or float64"), Error);
}

// ---- CUDA ---------------------------------------------------------------------------------------

namespace {

#ifdef ARIA_WITH_CUDA
struct Tf32Off {  // float32 comparisons at 1e-4 need exact fp32 GEMMs
  bool was = context().tf32;
  Tf32Off() { context().tf32 = false; }
  ~Tf32Off() { context().tf32 = was; }
};
uint64_t fallbacks() { return cuda::gemm_epilogue_fallbacks(); }
#else
struct Tf32Off {
  ~Tf32Off() {}  // nothing to restore without CUDA (user-provided: no unused-variable warning)
};
uint64_t fallbacks() { return 0; }
#endif

// Shapes for the GPU: aligned ones that cuBLASLt should fuse (N % 8 == 0), odd ones that take the
// fallback for the GELU aux (N % 8 != 0) or need low-alignment kernels (odd K, M).
const int64_t kGpuShapes[][3] = {{128, 256, 64}, {77, 264, 129}, {1, 8, 771}, {129, 771, 7}, {33, 1, 5}};

// cuBLASLt's GELU may use the hardware tanh approximation (~2^-11 relative), which alone gives
// ~2e-4 relative L2 on GELU outputs; plain fp32 GEMM outputs meet 1e-4 easily. A wrong bias, a
// missing GELU or a wrong axis is off by O(1).
constexpr double kF32Tol = 1e-4, kF32GeluTol = 5e-4, kBf16Tol = 1e-2;

// max over n of |got[n] - want[n]| / sum_m |c[m, n]|: DGelu's bias error relative to the magnitude
// of the column of c (row-major [M, N]) it sums.
double bias_err_vs_terms(const std::vector<double>& got, const std::vector<double>& want,
                         const std::vector<double>& c, int64_t N) {
  REQUIRE(got.size() == want.size());
  std::vector<double> mag(size_t(N), 1e-30);
  for (size_t i = 0; i < c.size(); ++i) mag[i % size_t(N)] += std::abs(c[i]);
  double worst = 0;
  for (size_t n = 0; n < got.size(); ++n) worst = std::max(worst, std::abs(got[n] - want[n]) / mag[n % size_t(N)]);
  return worst;
}

bool gelu_shaped(const Problem& p) { return p.ep == GemmEpilogue::Gelu || p.ep == GemmEpilogue::DGelu; }

}  // namespace

TEST_CASE("CUDA gemm_epilogue float32 matches the CPU for every epilogue (TF32 off)") {
  if (!gpu_or_skip("gemm_epilogue float32")) return;
  Tf32Off tf32_off;
  const Device gpu = Device::cuda(0);
  uint64_t seed = 500;
  for (const Problem& p : all_variants(kGpuShapes)) {
    CAPTURE(describe(p));
    const Inputs in = cast_inputs(make_inputs(p, seed += 10), DType::F32);
    const uint64_t before = fallbacks();
    const Result got = run(p, in, gpu), want = run(p, in, kCpu);
    CAPTURE(fallbacks() - before);  // 1 when this call took the unfused path
    const double tol = gelu_shaped(p) ? kF32GeluTol : kF32Tol;
    CHECK(rel_l2(got.c, want.c) <= tol);
    if (!want.bias.empty()) CHECK(rel_l2(got.bias, want.bias) <= tol);
    if (!want.aux.empty()) CHECK(rel_l2(got.aux, want.aux) <= kF32Tol);  // the pre-activation: GEMM + bias
  }
}

TEST_CASE("CUDA gemm_epilogue: cuBLASLt's GELU is the tanh form, the same as UnaryOp::Gelu") {
  if (!gpu_or_skip("gemm_epilogue GELU form")) return;
  Tf32Off tf32_off;
  // Aligned shapes (fused when cuBLASLt accepts them). erf and tanh GELU differ by ~2e-4 (~4e-4 for
  // the derivative) relative L2; an approximation error in the library is uncorrelated with that
  // difference, so the tanh form must be strictly closer to what the GPU computed.
  for (GemmEpilogue ep : {GemmEpilogue::Gelu, GemmEpilogue::DGelu}) {
    const Problem p{512, 256, 64, false, false, ep, true, true};
    CAPTURE(describe(p));
    const Inputs in = cast_inputs(make_inputs(p, 4242), DType::F32);
    const uint64_t before = fallbacks();
    const Result got = run(p, in, Device::cuda(0));
    const bool fused = fallbacks() == before;
    CAPTURE(fused);
    const double e_tanh = rel_l2(got.c, reference(p, in).c), e_erf = rel_l2(got.c, reference(p, in, true).c);
    CAPTURE(e_tanh);
    CAPTURE(e_erf);
    CHECK(e_tanh < e_erf);
    CHECK(e_tanh <= kF32GeluTol);
    std::printf("gemm_epilogue %s float32 (%s): rel L2 vs tanh GELU %.2e, vs erf GELU %.2e\n", ep == GemmEpilogue::Gelu ? "Gelu" : "DGelu",
                fused ? "fused" : "FALLBACK", e_tanh, e_erf);
  }
}

TEST_CASE("CUDA gemm_epilogue bfloat16 matches the CPU float32 on the same bf16-rounded inputs") {
  if (!gpu_or_skip("gemm_epilogue bfloat16")) return;
  const Device gpu = Device::cuda(0);
  uint64_t seed = 900;
  int calls = 0, unfused_aligned = 0;
  for (const Problem& p : all_variants(kGpuShapes)) {
    CAPTURE(describe(p));
    const Inputs in16 = cast_inputs(make_inputs(p, seed += 10), DType::BF16);
    const uint64_t before = fallbacks();
    const Result got = run(p, in16, gpu);
    const bool fused = fallbacks() == before;
    CAPTURE(fused);
    ++calls;
    if (!fused && p.N % 8 == 0 && p.K % 8 == 0 && p.M % 8 == 0) ++unfused_aligned;
    const Result want = run(p, cast_inputs(in16, DType::F32), kCpu);  // the exact values the GPU saw
    CHECK(rel_l2(got.c, want.c) <= kBf16Tol);
    // A bias gradient is a column sum that may cancel (N = 1: one sum of M signed terms), so it
    // is held to bf16 rounding of the terms it adds, not to its own size.
    if (!want.bias.empty() && p.ep == GemmEpilogue::DGelu)
      CHECK(bias_err_vs_terms(got.bias, want.bias, want.c, p.N) <= kBf16Tol);
    else if (!want.bias.empty())
      CHECK(rel_l2(got.bias, want.bias) <= kBf16Tol);
    if (!want.aux.empty()) CHECK(rel_l2(got.aux, want.aux) <= kBf16Tol);
  }
  std::printf("gemm_epilogue bfloat16: %d calls, %d aligned calls took the unfused fallback\n", calls,
              unfused_aligned);
  // Not a failure (results are checked above either way), but worth seeing: cuBLASLt should fuse
  // every epilogue at aligned shapes.
  WARN(unfused_aligned == 0);
}

TEST_CASE("CUDA gemm_epilogue is deterministic (bit-identical reruns), fused and fallback") {
  if (!gpu_or_skip("gemm_epilogue determinism")) return;
  for (DType t : {DType::BF16, DType::F32})
    for (const Problem& p : {Problem{1024, 768, 512, true, false, GemmEpilogue::BGrad, true, false},
                             Problem{512, 768, 384, false, true, GemmEpilogue::DGelu, true, true},
                             Problem{300, 771, 96, false, false, GemmEpilogue::DGelu, true, true},
                             Problem{256, 384, 96, false, false, GemmEpilogue::Gelu, true, true}}) {
      CAPTURE(describe(p));
      CAPTURE(dtype_name(t));
      const Inputs in = cast_inputs(make_inputs(p, 77), t);
      const Result r1 = run(p, in, Device::cuda(0)), r2 = run(p, in, Device::cuda(0));
      CHECK(std::memcmp(r1.c.data(), r2.c.data(), r1.c.size() * sizeof(double)) == 0);
      CHECK(r1.bias == r2.bias);
      CHECK(r1.aux == r2.aux);
    }
}

#ifdef ARIA_WITH_CUDA
// Autotuned plans (Context::gemm_autotune) time several algorithms on the call's own operands
// before the launch that counts: the results must still be the CPU's, accumulation (beta = 1, which
// is never tuned because a timing run would overwrite c) must survive, and reruns stay bit-identical.
// Shapes used nowhere else in this binary, so their plans are made with tuning on.
TEST_CASE("CUDA GEMM autotuning: tuned plans match the CPU, accumulate correctly and rerun bit-identically") {
  if (!gpu_or_skip("GEMM autotuning")) return;
  const Device gpu = Device::cuda(0);
  struct Restore {
    ~Restore() { context().gemm_autotune = false; }
  } restore;
  context().gemm_autotune = true;
  uint64_t seed = 1300;
  for (const Problem& p : {Problem{384, 640, 192, false, false, GemmEpilogue::Gelu, true, true},
                           Problem{640, 384, 192, false, true, GemmEpilogue::DGelu, true, true},
                           Problem{192, 640, 384, true, false, GemmEpilogue::BGrad, true, false}}) {
    CAPTURE(describe(p));
    const Inputs in16 = cast_inputs(make_inputs(p, seed += 10), DType::BF16);
    const Result r1 = run(p, in16, gpu), r2 = run(p, in16, gpu);
    const Result want = run(p, cast_inputs(in16, DType::F32), kCpu);
    CHECK(rel_l2(r1.c, want.c) <= kBf16Tol);
    if (!want.aux.empty()) CHECK(rel_l2(r1.aux, want.aux) <= kBf16Tol);
    CHECK(std::memcmp(r1.c.data(), r2.c.data(), r1.c.size() * sizeof(double)) == 0);
    CHECK(r1.bias == r2.bias);
  }
  // Plain matmul: the first call accumulates (beta = 1: the plan is made but not tuned), the second
  // overwrites (beta = 0: tuned now), the third accumulates on the tuned algorithm.
  const int64_t M = 320, N = 448, K = 160;
  Tensor a = randn({M, K}, 1401, 1.0, DType::F32).to(DType::BF16), b = randn({K, N}, 1402, 1.0, DType::F32).to(DType::BF16);
  Tensor c0 = randn({M, N}, 1403, 1.0, DType::F32).to(DType::BF16);
  Tensor ab = Tensor::empty({M, N}, DType::F32);
  cpu::matmul(a.to(DType::F32).reshape({1, M, K}), b.to(DType::F32).reshape({1, K, N}), ab.reshape({1, M, N}), false,
              false, 1.0, 0.0);
  const std::vector<double> abv = ab.to_doubles(), c0v = c0.to_doubles();
  std::vector<double> want1(abv.size()), want3(abv.size());
  for (size_t i = 0; i < abv.size(); ++i) {
    want1[i] = abv[i] + c0v[i];
    want3[i] = 2 * abv[i];
  }
  Tensor c = c0.to(gpu);
  cuda::matmul(a.to(gpu), b.to(gpu), c, false, false, 1.0, 1.0);
  CHECK(rel_l2(c.to_doubles(), want1) <= kBf16Tol);
  cuda::matmul(a.to(gpu), b.to(gpu), c, false, false, 1.0, 0.0);
  CHECK(rel_l2(c.to_doubles(), abv) <= kBf16Tol);
  cuda::matmul(a.to(gpu), b.to(gpu), c, false, false, 1.0, 1.0);
  CHECK(rel_l2(c.to_doubles(), want3) <= kBf16Tol);
}
#endif

TEST_CASE("CUDA matmul bfloat16: batched, transposes, alpha/beta, shared batch-1 b, against the CPU") {
  if (!gpu_or_skip("matmul bfloat16")) return;
  const Device gpu = Device::cuda(0);
  struct Case {
    int64_t batch, bbatch, M, K, N;
    double alpha, beta;
  };
  const Case cases[] = {{3, 3, 37, 65, 29, 1.0, 0.0},   {3, 3, 64, 128, 96, 0.5, 0.75}, {4, 1, 37, 65, 29, 1.0, 0.0},
                        {4, 1, 64, 128, 96, -1.5, 1.0}, {1, 1, 1, 771, 7, 1.0, 0.0},    {2, 1, 129, 7, 1, 2.0, 0.5}};
  uint64_t seed = 3000;
  for (const Case& k : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      CAPTURE(k.batch);
      CAPTURE(k.bbatch);
      CAPTURE(k.M);
      CAPTURE(k.K);
      CAPTURE(k.N);
      CAPTURE(ta);
      CAPTURE(tb);
      CAPTURE(k.alpha);
      CAPTURE(k.beta);
      // bf16-rounded inputs; the CPU computes in float32 on exactly those values.
      const Tensor a = randn(ta ? Shape{k.batch, k.K, k.M} : Shape{k.batch, k.M, k.K}, seed += 3, 1.0, DType::BF16);
      const Tensor b = randn(tb ? Shape{k.bbatch, k.N, k.K} : Shape{k.bbatch, k.K, k.N}, seed + 1,
                             1.0 / std::sqrt(double(k.K)), DType::BF16);
      const Tensor c0 = randn({k.batch, k.M, k.N}, seed + 2, 1.0, DType::BF16);
      Tensor want = c0.to(DType::F32).clone();
      cpu::matmul(a.to(DType::F32), b.to(DType::F32), want, ta, tb, k.alpha, k.beta);
      Tensor got = c0.to(gpu).clone();
      cuda::matmul(a.to(gpu), b.to(gpu), got, ta, tb, k.alpha, k.beta);
      CHECK(got.dtype() == DType::BF16);
      CHECK(rel_l2(got.to_doubles(), want.to_doubles()) <= kBf16Tol);
    }
  // Mixed dtypes are refused.
  const Tensor a = Tensor::zeros({1, 4, 4}, DType::BF16, gpu), b = Tensor::zeros({1, 4, 4}, DType::F32, gpu);
  CHECK_THROWS_WITH_AS(cuda::matmul(a, b, Tensor::zeros({1, 4, 4}, DType::BF16, gpu), false, false, 1, 0),
                       doctest::Contains("dtypes differ"), Error);
}

// ---- timing ------------------------------------------------------------------------------------

#ifdef ARIA_WITH_CUDA
namespace {

std::string timing(const std::function<void()>& fn, double flops) {
  char buf[96];
  try {
    const double ms = testing::cuda_median_ms(fn);
    std::snprintf(buf, sizeof buf, "%8.3f ms %6.1f TFLOP/s", ms, flops / (ms * 1e-3) / 1e12);
  } catch (const Error& e) {
    std::snprintf(buf, sizeof buf, "%-25s", "n/a (kernel error)");
    std::fprintf(stderr, "  error: %s\n", e.what());
  }
  return buf;
}

}  // namespace
#endif

TEST_CASE("CUDA gemm_epilogue timing, GPT-2 124M at 16384 tokens, bfloat16 (ARIA_GEMM_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_GEMM_BENCH")) return;
  if (!gpu_or_skip("gemm_epilogue timing")) return;
#ifdef ARIA_WITH_CUDA
  const Device gpu = Device::cuda(0);
  const int64_t T = 16384, C = 768, C3 = 3 * C, C4 = 4 * C, V = 50304;
  struct Bench {
    const char* name;
    Problem p;
  };
  const Bench benches[] = {
      {"qkv      x[T,768] W[768,2304] +bias", {T, C3, C, false, false, GemmEpilogue::Bias, true, false}},
      {"fc       x[T,768] W[768,3072] gelu", {T, C4, C, false, false, GemmEpilogue::Gelu, true, true}},
      {"fc_proj  h[T,3072] W[3072,768] +bias", {T, C, C4, false, false, GemmEpilogue::Bias, true, false}},
      {"fc dx    dy[T,768] W^T -> dgelu,db", {T, C4, C, false, true, GemmEpilogue::DGelu, true, true}},
      {"fc dx    dy[T,768] W^T -> dgelu", {T, C4, C, false, true, GemmEpilogue::DGelu, false, true}},
      {"fc dW    x^T[768,T] dpre[T,3072],db", {C, C4, T, true, false, GemmEpilogue::BGrad, true, false}},
      {"lm head  x[T,768] wte[50304,768]^T", {T, V, C, false, true, GemmEpilogue::None, false, false}},
  };
  const DType bf = DType::BF16;
  std::printf("gemm_epilogue bfloat16 timings on %s (median of 20, ms and TFLOP/s of 2MNK)\n",
              cuda::device_props().name);
  std::printf("%-38s %-7s %-25s %-25s %-25s\n", "GEMM", "path", "fused epilogue", "matmul only",
              "matmul + separate kernels");
  for (const Bench& bn : benches) {
    const Problem& p = bn.p;
    const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
    auto dev = [&](const Shape& s, uint64_t seed, double scale) { return randn(s, seed, scale, DType::F32).to(bf).to(gpu); };
    const Tensor a = dev(p.ta ? Shape{p.K, p.M} : Shape{p.M, p.K}, 1, 1.0);
    const Tensor b = dev(p.tb ? Shape{p.N, p.K} : Shape{p.K, p.N}, 2, 0.03);
    const Tensor c = Tensor::empty({p.M, p.N}, bf, gpu);
    const Tensor bias = p.with_bias ? (bias_is_input(p) ? dev({p.N}, 3, 0.5) : Tensor::empty({p.N}, bf, gpu)) : Tensor();
    const Tensor aux = p.ep == GemmEpilogue::DGelu ? dev({p.M, p.N}, 4, 1.0)
                       : p.with_aux               ? Tensor::empty({p.M, p.N}, bf, gpu)
                                                  : Tensor();
    const Tensor tmp = gelu_shaped(p) ? Tensor::empty({p.M, p.N}, bf, gpu) : Tensor();
    const uint64_t before = fallbacks();
    cuda::gemm_epilogue(a, b, c, p.ta, p.tb, int(p.ep), bias, aux);
    const bool fused = fallbacks() == before;
    const std::string t_fused =
        timing([&] { cuda::gemm_epilogue(a, b, c, p.ta, p.tb, int(p.ep), bias, aux); }, flops);
    const std::string t_plain = timing([&] { cuda::matmul(a, b, c, p.ta, p.tb, 1.0, 0.0); }, flops);
    // What the fused epilogue replaces: the GEMM, then our own kernels over its output.
    const std::string t_split = timing(
        [&] {
          switch (p.ep) {
            case GemmEpilogue::None: cuda::matmul(a, b, c, p.ta, p.tb, 1.0, 0.0); break;
            case GemmEpilogue::Bias:
              cuda::matmul(a, b, c, p.ta, p.tb, 1.0, 0.0);
              cuda::add_bias(c, bias);
              break;
            case GemmEpilogue::Gelu:
              cuda::matmul(a, b, aux, p.ta, p.tb, 1.0, 0.0);
              cuda::add_bias(aux, bias);
              cuda::unary(int(UnaryOp::Gelu), aux, c, 1.0, 0.0);
              break;
            case GemmEpilogue::DGelu:
              cuda::matmul(a, b, tmp, p.ta, p.tb, 1.0, 0.0);
              cuda::unary_backward(int(UnaryOp::Gelu), aux, aux, tmp, c, 0.0);
              if (p.with_bias) cuda::sum_to(c, bias.reshape({1, p.N}));
              break;
            case GemmEpilogue::BGrad:
              cuda::matmul(a, b, c, p.ta, p.tb, 1.0, 0.0);
              cuda::sum_to(b, bias.reshape({1, p.N}));
              break;
          }
        },
        flops);
    std::printf("%-38s %-7s %-25s %-25s %-25s\n", bn.name, fused ? "fused" : "FALLBK", t_fused.c_str(),
                t_plain.c_str(), t_split.c_str());
  }
  std::fflush(stdout);
#endif
}
