// The Llama-family kernels on CUDA against the CPU at model-like shapes (the generic op rows in
// tests/support/cases_llama.cpp cover small awkward ones): RMSNorm (plain, fused residual, backward
// with dres and dw, 16-byte and scalar paths), SwiGLU on packed [N, 2H] rows, RoPE tables and
// rotation (grouped-query attention at such shapes, bf16 at hd 64/128 with the tensor-core forward's
// grouped-query form and windows that start the key loop on either stage: the "(model-like)" rows of
// tests/support/cases_llama.cpp, run by test_cuda_vs_cpu). float32 and float64 against the CPU on the
// same values; bfloat16 against the CPU's float32 on the same bf16-rounded inputs.
// Outputs are NaN-poisoned first. Every case skips without a GPU. Timings: ARIA_LLAMA_BENCH=1
// build-gpu/tests/test_cuda_llama_ops -ts=benchmark.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::expect_close;
using testing::gpu_or_skip;
using testing::max_abs_diff;
using testing::misaligned_gpu;
using testing::poisoned;
using testing::randn;

namespace {

const Device kGpu = Device::cuda(0);
constexpr double kBf16Tol = 6e-3;  // relative L2 of bf16-rounded outputs

// Inputs of dtype dt as the CPU sees them: float32 values rounded to bf16 for bf16 runs.
Tensor host_input(const Shape& s, uint64_t seed, DType dt, double scale = 1.0) {
  if (dt == DType::BF16) return testing::round_bf16(randn(s, seed, scale));
  return randn(s, seed, scale, dt);
}
DType host_dtype(DType dt) { return dt == DType::BF16 ? DType::F32 : dt; }
Tensor on_gpu(const Tensor& host, DType dt) { return host.to(dt).to(kGpu); }
double tol_for(DType dt) { return dt == DType::BF16 ? kBf16Tol : dt == DType::F64 ? 1e-12 : 2e-5; }
std::string tag_of(const char* what, DType dt, int64_t a, int64_t b) {
  return std::string(what) + " " + dtype_name(dt) + " [" + std::to_string(a) + ", " + std::to_string(b) + "]";
}

}  // namespace

TEST_CASE("CUDA rmsnorm forward, fused residual and backward match the CPU") {
  if (!gpu_or_skip("rmsnorm kernels")) return;
  for (DType dt : {DType::F32, DType::F64, DType::BF16})
    for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 8}, {37, 4096}, {300, 768}, {5, 13}}) {
      const std::string tag = tag_of("rmsnorm", dt, N, C);
      CAPTURE(tag);
      const DType ht = host_dtype(dt);
      const uint64_t seed = uint64_t(N * 9000 + C);
      Tensor x = host_input({N, C}, seed, dt, 2.0), r = host_input({N, C}, seed + 1, dt);
      Tensor w = host_input({C}, seed + 2, dt), dy = host_input({N, C}, seed + 3, dt);
      Tensor dres = host_input({N, C}, seed + 4, dt);
      // reference: the residual sum as the GPU stores it (rounded to bf16 for bf16), then RMSNorm
      Tensor sum = ops::add(x, r);
      if (dt == DType::BF16) sum = testing::round_bf16(sum);
      Tensor y = Tensor::empty({N, C}, ht), rstd = Tensor::empty({N}, ht);
      cpu::rmsnorm_forward(sum, w, y, rstd, 1e-5);
      const DType st = dt == DType::F64 ? DType::F64 : DType::F32;
      Tensor gsum = poisoned({N, C}, dt), gy = poisoned({N, C}, dt), grstd = poisoned({N}, st);
      cuda::add_rmsnorm_forward(on_gpu(x, dt), on_gpu(r, dt), on_gpu(w, dt), gsum, gy, grstd, 1e-5);
      CHECK(max_abs_diff(gsum, sum) == 0.0);
      expect_close(gy, y, tol_for(dt), tag + " add y");
      expect_close(grstd, rstd, dt == DType::F64 ? 1e-12 : 2e-6, tag + " rstd");
      // plain forward on the stored sum, also through the scalar path (misaligned)
      Tensor gy2 = poisoned({N, C}, dt), grstd2 = poisoned({N}, st);
      cuda::rmsnorm_forward(gsum, on_gpu(w, dt), gy2, grstd2, 1e-5);
      CHECK(max_abs_diff(gy2, gy) == 0.0);
      Tensor gy3 = misaligned_gpu(Tensor::zeros({N, C}), dt), grstd3 = poisoned({N}, st);
      cuda::rmsnorm_forward(misaligned_gpu(sum, dt), on_gpu(w, dt), gy3, grstd3, 1e-5);
      expect_close(gy3, y, tol_for(dt), tag + " scalar path y");
      // backward: dx with dres, dw accumulated (float32 dw for bf16 data)
      Tensor dx = Tensor::empty({N, C}, ht), dw = host_input({C}, seed + 5, ht);
      cpu::rmsnorm_backward(sum, w, rstd, dy, dres, dx, dw);
      const DType wdt = dt == DType::BF16 ? DType::F32 : dt;
      Tensor gdx = poisoned({N, C}, dt), gdw = on_gpu(host_input({C}, seed + 5, ht), wdt);
      cuda::rmsnorm_backward(gsum, on_gpu(w, dt), grstd, on_gpu(dy, dt), on_gpu(dres, dt), gdx, gdw);
      expect_close(gdx, dx, tol_for(dt) * 2, tag + " dx");
      expect_close(gdw, dw, tol_for(dt) * 2, tag + " dw");
      // dres aliasing dx gives the same bits (and the same run twice: deterministic)
      Tensor gio = on_gpu(dres, dt), gdw2 = on_gpu(host_input({C}, seed + 5, ht), wdt);
      cuda::rmsnorm_backward(gsum, on_gpu(w, dt), grstd, on_gpu(dy, dt), gio, gio, gdw2);
      CHECK(max_abs_diff(gio, gdx) == 0.0);
      CHECK(max_abs_diff(gdw2, gdw) == 0.0);
    }
}

TEST_CASE("CUDA swiglu on packed rows matches the CPU, forward and backward") {
  if (!gpu_or_skip("swiglu kernels")) return;
  for (DType dt : {DType::F32, DType::F64, DType::BF16})
    for (auto [N, H] : std::vector<std::pair<int64_t, int64_t>>{{256, 1376}, {7, 5}, {1, 8}}) {
      const std::string tag = tag_of("swiglu", dt, N, H);
      CAPTURE(tag);
      const DType ht = host_dtype(dt);
      Tensor gu = host_input({N, 2 * H}, uint64_t(N + H), dt, 2.0), dout = host_input({N, H}, uint64_t(N + H + 1), dt);
      Tensor out = Tensor::empty({N, H}, ht), dgu = Tensor::empty({N, 2 * H}, ht);
      cpu::swiglu_forward(gu.slice(1, 0, H), gu.slice(1, H, 2 * H), out);
      cpu::swiglu_backward(gu.slice(1, 0, H), gu.slice(1, H, 2 * H), dout, dgu.slice(1, 0, H), dgu.slice(1, H, 2 * H));
      Tensor g = on_gpu(gu, dt), gout = poisoned({N, H}, dt), gd = poisoned({N, 2 * H}, dt);
      cuda::swiglu_forward(g.slice(1, 0, H), g.slice(1, H, 2 * H), gout);
      cuda::swiglu_backward(g.slice(1, 0, H), g.slice(1, H, 2 * H), on_gpu(dout, dt), gd.slice(1, 0, H),
                            gd.slice(1, H, 2 * H));
      expect_close(gout, out, tol_for(dt) + (dt == DType::F32 ? 1e-5 : 0), tag + " out");
      expect_close(gd, dgu, tol_for(dt) + (dt == DType::F32 ? 1e-5 : 0), tag + " dgate|dup");
      // gradients written over the inputs give the same values
      cuda::swiglu_backward(g.slice(1, 0, H), g.slice(1, H, 2 * H), on_gpu(dout, dt), g.slice(1, 0, H),
                            g.slice(1, H, 2 * H));
      CHECK(max_abs_diff(g, gd) == 0.0);
    }
}

TEST_CASE("CUDA rope tables and rotation match the CPU") {
  if (!gpu_or_skip("rope kernels")) return;
  ops::RopeScaling l3;
  l3.type = "llama3";
  l3.factor = 8;
  l3.original_max_position_embeddings = 8192;
  for (int hd : {64, 128}) {
    std::vector<double> f;
    for (float v : ops::rope_inv_freq(hd, 500000.0, l3)) f.push_back(v);
    std::vector<int32_t> pos;
    for (int t = 0; t < 300; ++t) pos.push_back(t * 437 % 131072);
    const int64_t P = int64_t(pos.size()), half = hd / 2;
    for (DType dt : {DType::F32, DType::F64, DType::BF16}) {
      const std::string tag = tag_of("rope", dt, P, hd);
      CAPTURE(tag);
      const DType tdt = dt == DType::F64 ? DType::F64 : DType::F32, ht = host_dtype(dt);
      Tensor inv = Tensor::from_vector(f, {half}, tdt);
      Tensor cos = Tensor::empty({P, half}, tdt), sin = Tensor::empty({P, half}, tdt);
      cpu::rope_table(Tensor::from_ints(pos, {P}), inv, cos, sin);
      Tensor gcos = poisoned({P, half}, tdt), gsin = poisoned({P, half}, tdt);
      cuda::rope_table(Tensor::from_ints(pos, {P}, kGpu), inv.to(kGpu), gcos, gsin);
      CHECK(max_abs_diff(gcos, cos) <= (tdt == DType::F64 ? 1e-15 : 6e-8));
      CHECK(max_abs_diff(gsin, sin) <= (tdt == DType::F64 ? 1e-15 : 6e-8));
      // q (8 heads) and k (2 heads) rotated, v (2 heads) copied; 2 sequences share the table
      const int n_rot = 10, W = 12 * hd;
      Tensor x = host_input({2 * P, W}, uint64_t(hd + P), dt), y = Tensor::empty({2 * P, W}, ht);
      cpu::rope_apply(x, cos, sin, y, n_rot, hd, false);
      Tensor gy = poisoned({2 * P, W}, dt);
      cuda::rope_apply(on_gpu(x, dt), cos.to(kGpu), sin.to(kGpu), gy, n_rot, hd, false);
      expect_close(gy, y, tol_for(dt) + (dt == DType::F32 ? 1e-6 : 0), tag + " y");
      Tensor back = Tensor::empty({2 * P, W}, ht), gback = poisoned({2 * P, W}, dt);
      cpu::rope_apply(y, cos, sin, back, n_rot, hd, true);
      cuda::rope_apply(on_gpu(y, dt), cos.to(kGpu), sin.to(kGpu), gback, n_rot, hd, true);
      expect_close(gback, back, tol_for(dt) + (dt == DType::F32 ? 1e-6 : 0), tag + " inverse");
      Tensor io = on_gpu(x, dt);  // in place
      cuda::rope_apply(io, cos.to(kGpu), sin.to(kGpu), io, n_rot, hd, false);
      CHECK(max_abs_diff(io, gy) == 0.0);
    }
  }
}

TEST_CASE("CUDA Llama-family kernels refuse tensors of the wrong device or shape") {
  if (!gpu_or_skip("llama kernel checks")) return;
  Tensor x = Tensor::zeros({2, 8}, DType::F32, kGpu), w = Tensor::zeros({8}, DType::F32, kGpu);
  CHECK_THROWS_WITH_AS(cuda::rmsnorm_forward(x, Tensor::zeros({8}), Tensor::zeros({2, 8}, DType::F32, kGpu),
                                             Tensor::zeros({2}, DType::F32, kGpu), 1e-5),
                       doctest::Contains("w must be a contiguous float32 CUDA tensor"), Error);
  CHECK_THROWS_WITH_AS(cuda::rmsnorm_backward(Tensor::zeros({2, 8}, DType::BF16, kGpu), Tensor::zeros({8}, DType::BF16, kGpu),
                                              Tensor::zeros({2}, DType::F32, kGpu), Tensor::zeros({2, 8}, DType::BF16, kGpu),
                                              Tensor(), Tensor(), Tensor::zeros({8}, DType::F64, kGpu)),
                       doctest::Contains("dw must be bfloat16 or float32"), Error);
  CHECK_THROWS_WITH_AS(cuda::swiglu_forward(x, x, Tensor::zeros({2, 8})), doctest::Contains("out must be"), Error);
  CHECK_THROWS_WITH_AS(cuda::rope_apply(x, Tensor::zeros({2, 2}, DType::F32, kGpu), Tensor::zeros({2, 2}, DType::F32, kGpu),
                                        x, 3, 4, false),
                       doctest::Contains("do not fit rows of 8"), Error);
  Tensor qkv = Tensor::zeros({1, 3, 16}, DType::F32, kGpu);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(qkv, 3, 2), doctest::Contains("must divide n_head"), Error);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(Tensor::zeros({1, 3, 6 * 300}, DType::F32, kGpu), 4, 1),
                       doctest::Contains("head_dim 300 is above"), Error);
}

#ifdef ARIA_WITH_CUDA
// Timings at Llama-1B-like shapes (N = 16384 tokens, C 2048, MLP 8192, 32 query / 8 kv heads of 64),
// bfloat16, median of 20 CUDA-event runs: a benchmark, not a test (ARIA_LLAMA_BENCH=1).
TEST_CASE("Llama-family kernel timings (ARIA_LLAMA_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_LLAMA_BENCH")) return;
  if (!gpu_or_skip("llama kernel timings")) return;
  const DType bf = DType::BF16;
  auto gpu_randn = [&](const Shape& s, uint64_t seed) { return randn(s, seed).to(bf).to(kGpu); };
  auto report = [](const char* what, double ms, double bytes) {
    std::printf("%s: %.1f us, %.0f GB/s\n", what, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
  };
  const int64_t N = 16384, C = 2048, H = 8192;
  {
    Tensor x = gpu_randn({N, C}, 1), r = gpu_randn({N, C}, 2), w = gpu_randn({C}, 3), dy = gpu_randn({N, C}, 4);
    Tensor y = Tensor::empty({N, C}, bf, kGpu), sum = Tensor::empty({N, C}, bf, kGpu), dx = Tensor::empty({N, C}, bf, kGpu);
    Tensor rstd = Tensor::empty({N}, DType::F32, kGpu), dw = Tensor::zeros({C}, DType::F32, kGpu);
    const double e = 2.0 * double(N * C);
    report("rmsnorm_forward bf16 [16384, 2048]",
           testing::cuda_median_ms([&] { cuda::rmsnorm_forward(x, w, y, rstd, 1e-5); }), 2 * e);
    report("add_rmsnorm_forward bf16 [16384, 2048]",
           testing::cuda_median_ms([&] { cuda::add_rmsnorm_forward(x, r, w, sum, y, rstd, 1e-5); }), 4 * e);
    report("rmsnorm_backward (dx with dres, dw) bf16 [16384, 2048]",
           testing::cuda_median_ms([&] { cuda::rmsnorm_backward(x, w, rstd, dy, r, dx, dw); }), 4 * e);
  }
  {
    Tensor gu = gpu_randn({N, 2 * H}, 5), dout = gpu_randn({N, H}, 6);
    Tensor out = Tensor::empty({N, H}, bf, kGpu), d = Tensor::empty({N, 2 * H}, bf, kGpu);
    const double e = 2.0 * double(N * H);
    report("swiglu_forward bf16 packed [16384, 2 x 8192]",
           testing::cuda_median_ms([&] { cuda::swiglu_forward(gu.slice(1, 0, H), gu.slice(1, H, 2 * H), out); }), 3 * e);
    report("swiglu_backward bf16 packed [16384, 2 x 8192]", testing::cuda_median_ms([&] {
             cuda::swiglu_backward(gu.slice(1, 0, H), gu.slice(1, H, 2 * H), dout, d.slice(1, 0, H), d.slice(1, H, 2 * H));
           }),
           5 * e);
  }
  {
    const int64_t T = 2048, W = 48 * 64;  // 32 q + 8 k rotated, 8 v copied
    std::vector<int32_t> pos(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t);
    std::vector<double> f;
    for (float v : ops::rope_inv_freq(64, 500000.0)) f.push_back(v);
    auto [cos, sin] = ops::rope_tables(Tensor::from_ints(pos, {T}, kGpu), Tensor::from_vector(f, {32}, DType::F32, kGpu));
    Tensor x = gpu_randn({N, W}, 7), y = Tensor::empty({N, W}, bf, kGpu);
    report("rope_apply bf16 qkv [16384, 48 x 64] (40 heads rotated)",
           testing::cuda_median_ms([&] { cuda::rope_apply(x, cos, sin, y, 40, 64, false); }), 4.0 * double(N * W));
  }
  {
    const int B = 8, T = 2048, Hq = 32, KV = 8, hd = 64;
    Tensor qkv = gpu_randn({B, T, int64_t(Hq + 2 * KV) * hd}, 8), dout = gpu_randn({B, T, int64_t(Hq) * hd}, 9);
    Tensor out = Tensor::empty({B, T, int64_t(Hq) * hd}, bf, kGpu), lse = Tensor::empty({B, Hq, T}, DType::F32, kGpu);
    Tensor dqkv = Tensor::empty(qkv.shape(), bf, kGpu);
    const double flops = 4.0 * B * Hq * double(T) * T / 2 * hd;  // causal: half of QK^T and PV
    const double fwd = testing::cuda_median_ms([&] { cuda::attention_gqa_forward(qkv, out, lse, Hq, KV, 0); });
    std::printf("attention_gqa_forward bf16 B8 T2048 H32 KV8 hd64: %.3f ms, %.0f TFLOP/s\n", fwd, flops / (fwd * 1e-3) / 1e12);
    const double win = testing::cuda_median_ms([&] { cuda::attention_gqa_forward(qkv, out, lse, Hq, KV, 512); });
    std::printf("attention_gqa_forward bf16 same, window 512: %.3f ms\n", win);
    const double bwd = testing::cuda_median_ms([&] { cuda::attention_gqa_backward(qkv, out, lse, dout, dqkv, Hq, KV, 0); });
    std::printf("attention_gqa_backward bf16 B8 T2048 H32 KV8 hd64 (plain kernel): %.3f ms\n", bwd);
  }
}
#endif
