// The bfloat16 path of attention_forward / attention_backward (kernels/cuda/attention_bf16_*.cu:
// tensor cores for head dims 64 and 128, the float32 kernel on float32 copies otherwise) against the
// float32 CUDA kernel (itself checked against the CPU in test_cuda_kernels.cpp) on the same inputs:
// N(0, 1) values rounded to bf16, fed to the float32 kernel as float32. Outputs are NaN-poisoned first
// (an unwritten element fails), the backward is run twice and compared bit for bit (no atomics).
// Timing (B=16, T=1024, H=12, hd=64, both kernels): ARIA_ATTN_BENCH=1.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::bit_equal;
using testing::gpu_or_skip;
using testing::poisoned;

namespace {

const Device kGpu = Device::cuda(0);

// N(0, 1) values rounded to bf16 on the GPU: the bf16 tensor and the same values as float32.
struct Bf16Input {
  Tensor bf, f32;
};
Bf16Input bf16_randn(const Shape& s, uint64_t seed) {
  const Tensor x = testing::randn(s, seed);
  Bf16Input r{Tensor::empty(s, DType::BF16, kGpu), Tensor::empty(s, DType::F32, kGpu)};
  cuda::copy_cast(x.to(kGpu), r.bf);
  cuda::copy_cast(r.bf, r.f32);
  return r;
}

struct Diff {
  double rel = 0, max_abs = 0, max_ref = 0;  // relative L2 error, max |got - ref|, max |ref|
};

// got/ref restricted to columns [c0, c1) of the last dimension (width `cols`), ref the float32 kernel.
Diff diff(const std::vector<double>& got, const std::vector<double>& ref, int64_t cols, int64_t c0, int64_t c1) {
  Diff d;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t c = int64_t(i) % cols;
    if (c < c0 || c >= c1) continue;
    if (std::isnan(got[i]) || std::isnan(ref[i])) return {INFINITY, INFINITY, 0};
    const double e = got[i] - ref[i];
    num += e * e;
    den += ref[i] * ref[i];
    d.max_abs = std::max(d.max_abs, std::fabs(e));
    d.max_ref = std::max(d.max_ref, std::fabs(ref[i]));
  }
  d.rel = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
  return d;
}

// bf16 has an 8-bit significand: one rounding is 2^-9 relative. Tolerances sit ~4x above what the
// kernels show on an emulator (relative L2 ~2e-3 for out and dqkv, ~1e-7 for lse) and far below what
// a wrong fragment, mask or tile index gives (relative errors of order 1).
void expect_close(const std::vector<double>& got, const std::vector<double>& ref, int64_t cols, int64_t c0,
                  int64_t c1, double rel_tol, double abs_tol, const std::string& what) {
  const Diff d = diff(got, ref, cols, c0, c1);
  CAPTURE(what);
  CAPTURE(d.rel);
  CAPTURE(d.max_abs);
  CAPTURE(d.max_ref);
  CHECK(d.rel <= rel_tol);
  CHECK(d.max_abs <= abs_tol * std::max(1.0, d.max_ref));
}

struct Case {
  int64_t B, T, H, hd;
};

std::string name(const Case& k) {
  return "B" + std::to_string(k.B) + " T" + std::to_string(k.T) + " H" + std::to_string(k.H) + " hd" +
         std::to_string(k.hd);
}

// Runs both kernels on one random problem; qkv may be replaced by a view (alignment tests).
void check_case(const Case& k, uint64_t seed, Tensor (*view)(const Tensor&) = nullptr) {
  const int64_t C = k.H * k.hd;
  const int H = int(k.H);
  const std::string nm = name(k);
  Bf16Input qkv = bf16_randn({k.B, k.T, 3 * C}, seed), dout = bf16_randn({k.B, k.T, C}, seed + 1);
  Tensor qb = view ? view(qkv.bf) : qkv.bf;

  Tensor out32 = poisoned({k.B, k.T, C}, DType::F32), lse32 = poisoned({k.B, k.H, k.T}, DType::F32);
  Tensor dqkv32 = poisoned({k.B, k.T, 3 * C}, DType::F32);
  cuda::attention_forward(qkv.f32, out32, lse32, H);
  cuda::attention_backward(qkv.f32, out32, lse32, dout.f32, dqkv32, H);

  Tensor out = poisoned({k.B, k.T, C}, DType::BF16), lse = poisoned({k.B, k.H, k.T}, DType::F32);
  Tensor out2 = poisoned({k.B, k.T, C}, DType::BF16), lse2 = poisoned({k.B, k.H, k.T}, DType::F32);
  cuda::attention_forward(qb, out, lse, H);
  cuda::attention_forward(qb, out2, lse2, H);
  Tensor d1 = poisoned({k.B, k.T, 3 * C}, DType::BF16), d2 = poisoned({k.B, k.T, 3 * C}, DType::BF16);
  cuda::attention_backward(qb, out, lse, dout.bf, d1, H);
  cuda::attention_backward(qb, out, lse, dout.bf, d2, H);

  expect_close(out.to_doubles(), out32.to_doubles(), C, 0, C, 1e-2, 2e-2, "out " + nm);
  expect_close(lse.to_doubles(), lse32.to_doubles(), k.T, 0, k.T, 1e-4, 1e-3, "lse " + nm);
  const auto g = d1.to_doubles(), r = dqkv32.to_doubles();
  const char* parts[3] = {"dq ", "dk ", "dv "};
  for (int p = 0; p < 3; ++p) expect_close(g, r, 3 * C, p * C, (p + 1) * C, 1e-2, 3e-2, parts[p] + nm);
  CHECK_MESSAGE(bit_equal(out, out2), "forward not deterministic: " << nm);
  CHECK_MESSAGE(bit_equal(lse, lse2), "forward lse not deterministic: " << nm);
  CHECK_MESSAGE(bit_equal(d1, d2), "backward not deterministic: " << nm);
}

}  // namespace

TEST_CASE("CUDA bf16 attention (tensor cores, hd 64) matches the float32 kernel, deterministic") {
  if (!gpu_or_skip("bf16 attention hd 64")) return;
  uint64_t seed = 100;
  // one token; one exact tile; several tiles with a ragged last one (the forward's and dQ's 128-row
  // tiles cut with a warp's second row block past T, a tile with rows on both sides of the diagonal);
  // GPT-2 small's layout
  for (Case k : {Case{1, 1, 1, 64}, Case{1, 64, 2, 64}, Case{1, 129, 3, 64}, Case{2, 129, 3, 64},
                 Case{2, 200, 2, 64}, Case{2, 1000, 2, 64}, Case{4, 1024, 12, 64}}) {
    check_case(k, seed);
    seed += 10;
  }
}

TEST_CASE("CUDA bf16 attention (tensor cores, hd 128) matches the float32 kernel") {
  if (!gpu_or_skip("bf16 attention hd 128")) return;
  for (Case k : {Case{1, 77, 1, 128}, Case{2, 200, 2, 128}}) check_case(k, 200 + uint64_t(k.T));
}

TEST_CASE("CUDA bf16 attention falls back to the float32 kernel for other head dims and unaligned data") {
  if (!gpu_or_skip("bf16 attention fallback")) return;
  for (Case k : {Case{1, 300, 2, 32}, Case{3, 77, 5, 3}}) check_case(k, 300 + uint64_t(k.T));
  // qkv starting 2 bytes into its storage: not 16-byte aligned, so the tensor-core path must not run
  const Case k{2, 129, 3, 64};
  check_case(k, 400, [](const Tensor& t) {
    Tensor flat = Tensor::empty({t.numel() + 1}, DType::BF16, kGpu);
    Tensor v = flat.slice(0, 1, t.numel() + 1).reshape(t.shape());
    v.copy_from(t);
    return v;
  });
}

TEST_CASE("CUDA bf16 attention rejects mismatched dtypes with a clear error") {
  if (!gpu_or_skip("bf16 attention errors")) return;
  Tensor qkv = Tensor::zeros({1, 8, 3 * 64}, DType::BF16, kGpu);
  Tensor out32 = Tensor::empty({1, 8, 64}, DType::F32, kGpu), lse = Tensor::empty({1, 1, 8}, DType::F32, kGpu);
  Tensor lse16 = Tensor::empty({1, 1, 8}, DType::BF16, kGpu), out = Tensor::empty({1, 8, 64}, DType::BF16, kGpu);
  CHECK_THROWS_WITH(cuda::attention_forward(qkv, out32, lse, 1), doctest::Contains("out"));
  CHECK_THROWS_WITH(cuda::attention_forward(qkv, out, lse16, 1), doctest::Contains("lse"));
  Tensor dq32 = Tensor::empty({1, 8, 3 * 64}, DType::F32, kGpu);
  CHECK_THROWS_WITH(cuda::attention_backward(qkv, out, lse, out, dq32, 1), doctest::Contains("dqkv"));
  CHECK_THROWS_WITH(cuda::attention_forward(qkv, out, lse, 5), doctest::Contains("heads"));
}

#ifdef ARIA_WITH_CUDA
TEST_CASE("CUDA attention timing: bf16 tensor cores vs float32 (ARIA_ATTN_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_ATTN_BENCH")) return;
  if (!gpu_or_skip("bf16 attention timing")) return;
  const int64_t B = 16, T = 1024, H = 12, hd = 64, C = H * hd;
  // causal: half of the T x T scores; forward = 2 products of 2*T*T*hd flops each per head
  const double fwd_flops = 4.0 * B * H * T * T * hd / 2, bwd_flops = 2.5 * fwd_flops;
  Bf16Input qkv = bf16_randn({B, T, 3 * C}, 7), dout = bf16_randn({B, T, C}, 8);
  for (DType dt : {DType::BF16, DType::F32}) {
    const Tensor& q = dt == DType::BF16 ? qkv.bf : qkv.f32;
    const Tensor& d = dt == DType::BF16 ? dout.bf : dout.f32;
    Tensor out = Tensor::empty({B, T, C}, dt, kGpu), lse = Tensor::empty({B, H, T}, DType::F32, kGpu);
    Tensor dqkv = Tensor::empty({B, T, 3 * C}, dt, kGpu);
    const double f = testing::cuda_median_ms([&] { cuda::attention_forward(q, out, lse, int(H)); });
    const double b = testing::cuda_median_ms([&] { cuda::attention_backward(q, out, lse, d, dqkv, int(H)); });
    std::printf("attention %-8s B=%lld T=%lld H=%lld hd=%lld: forward %.3f ms (%.1f TFLOP/s), backward %.3f ms "
                "(%.1f TFLOP/s)\n",
                dtype_name(dt), (long long)B, (long long)T, (long long)H, (long long)hd, f, fwd_flops / f * 1e-9, b,
                bwd_flops / b * 1e-9);
  }
}
#endif
