// bfloat16 (and the new fused rows) on CUDA against the CPU float32/float64 reference:
// layernorm forward/backward (and add_layernorm_forward, layernorm_backward_residual), cross-entropy
// forward/backward and the fused classifier, masked_mean, AdamW with float32 masters, sum_squares and
// square_accumulate with bf16 inputs. Inputs are fresh random values rounded to bf16 once; the CPU
// computes on exactly those values in float32, so the only differences are the bf16 rounding of the
// GPU's outputs (relative L2 about 2e-3, checked at 6e-3) and fp32 summation order. A wrong index, a
// missed row or a wrong formula is off by far more. Outputs are NaN-poisoned before each kernel.
// Timings (ARIA_BF16_BENCH=1): layernorm forward/backward GB/s, fused classifier ms, AdamW 124M ms.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::adamw_item;
using testing::bit_equal;
using testing::expect_close;
using testing::gpu_or_skip;
using testing::max_abs_diff;
using testing::poisoned;
using testing::randn;
using testing::relative_l2;

namespace {

const Device kGpu = Device::cuda(0);
const Device kCpu = Device::cpu();
constexpr double kBf16Tol = 6e-3;  // relative L2 of a bf16-rounded output (rounding alone: ~2e-3)
constexpr float kGradScale = 0.8f;  // every AdamW item's grad_scale: the kernels must apply it

// Normal values rounded to bf16, held as float32 on the CPU (the reference's inputs).
Tensor randn_bf(const Shape& s, uint64_t seed, double scale = 1.0) {
  return testing::round_bf16(randn(s, seed, scale));
}

// The same values on the GPU in dtype t.
Tensor on_gpu(const Tensor& host, DType t = DType::BF16) { return host.to(t).to(kGpu); }

Tensor targets_for(int64_t N, int64_t V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(N), 0);
  for (int64_t n = 0; n < N; ++n) t[size_t(n)] = n % 5 == 2 ? -100 : int32_t(rng.below(uint64_t(V)));
  if (N > 3) t[3] = int32_t(V - 1);  // the last class
  if (N > 4) t[4] = 0;               // the first class
  return Tensor::from_ints(t, {N});
}

// Relative L2 over the entries that are not a row's target (the softmax part of a gradient, which
// the -1 entries would otherwise dominate), and over ignored rows' absence of anything.
double off_target_rel_l2(const Tensor& got, const Tensor& want, const Tensor& targets, int64_t V) {
  auto g = got.to_doubles(), w = want.to_doubles();
  auto t = targets.to_ints();
  double num = 0, den = 0;
  for (size_t n = 0; n < t.size(); ++n)
    for (int64_t v = 0; v < V; ++v) {
      if (v == t[n]) continue;
      const size_t i = n * size_t(V) + size_t(v);
      if (std::isnan(g[i])) return INFINITY;
      num += (g[i] - w[i]) * (g[i] - w[i]);
      den += w[i] * w[i];
    }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

std::string shape_tag(const char* what, DType t, int64_t N, int64_t C) {
  return std::string(what) + " " + dtype_name(t) + " [" + std::to_string(N) + ", " + std::to_string(C) + "]";
}

}  // namespace

// ---- layernorm ----------------------------------------------------------------------------------

TEST_CASE("CUDA bf16 layernorm forward/backward match the CPU float32 on the same values") {
  if (!gpu_or_skip("layernorm bf16")) return;
  for (int64_t N : {1, 7, 129, 1000})
    for (int64_t C : {768, 771}) {
      const std::string tag = shape_tag("layernorm", DType::BF16, N, C);
      const uint64_t seed = uint64_t(N * 1000 + C);
      Tensor x = randn_bf({N, C}, seed, 2.0), w = randn_bf({C}, seed + 1), b = randn_bf({C}, seed + 2);
      Tensor dy = randn_bf({N, C}, seed + 3);
      Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
      cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
      Tensor gx = on_gpu(x), gw = on_gpu(w), gb = on_gpu(b), gdy = on_gpu(dy);
      Tensor gy = poisoned({N, C}, DType::BF16), gmean = poisoned({N}, DType::F32), grstd = poisoned({N}, DType::F32);
      cuda::layernorm_forward(gx, gw, gb, gy, gmean, grstd, 1e-5);
      CHECK(gy.dtype() == DType::BF16);
      expect_close(gy, y, kBf16Tol, tag + " y");
      CHECK(max_abs_diff(gmean, mean) <= 1e-5);  // float32 statistics of exact inputs
      expect_close(grstd, rstd, 1e-5, tag + " rstd");

      // backward: bf16 dx, and dw/db accumulated into bf16 (rounded once) or into float32
      Tensor dw0 = randn_bf({C}, seed + 4), db0 = randn_bf({C}, seed + 5);
      Tensor dx = Tensor::empty({N, C}), dw = dw0.clone(), db = db0.clone();
      cpu::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db);
      Tensor gdx = poisoned({N, C}, DType::BF16), gdw = on_gpu(dw0), gdb = on_gpu(db0);
      cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, gdx, gdw, gdb);
      expect_close(gdx, dx, kBf16Tol, tag + " dx");
      expect_close(gdw, dw, kBf16Tol, tag + " dw (bf16)");
      expect_close(gdb, db, kBf16Tol, tag + " db (bf16)");
      Tensor fdw = on_gpu(dw0, DType::F32), fdb = on_gpu(db0, DType::F32);
      cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, Tensor(), fdw, fdb);  // dw/db only
      expect_close(fdw, dw, 2e-5, tag + " dw (float32)");
      expect_close(fdb, db, 2e-5, tag + " db (float32)");
      // deterministic: a second run gives the same bits
      Tensor gdx2 = poisoned({N, C}, DType::BF16), gdw2 = on_gpu(dw0), gdb2 = on_gpu(db0);
      cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, gdx2, gdw2, gdb2);
      CHECK(bit_equal(gdx2, gdx));
      CHECK(bit_equal(gdw2, gdw));
      CHECK(bit_equal(gdb2, gdb));
    }
}

TEST_CASE("CUDA add_layernorm_forward (bf16): sum is the rounded x + r, y its layernorm") {
  if (!gpu_or_skip("add_layernorm bf16")) return;
  for (int64_t N : {1, 7, 129, 1000})
    for (int64_t C : {768, 771}) {
      const std::string tag = shape_tag("add_layernorm", DType::BF16, N, C);
      const uint64_t seed = uint64_t(N * 7000 + C);
      Tensor x = randn_bf({N, C}, seed, 2.0), r = randn_bf({N, C}, seed + 1, 3.0);
      Tensor w = randn_bf({C}, seed + 2), b = randn_bf({C}, seed + 3);
      // reference: float32 sum rounded to bf16 (what the GPU stores), then a float32 layernorm of it
      Tensor sum = Tensor::empty({N, C});
      cpu::binary(int(BinaryOp::Add), x, r, sum);
      sum = testing::round_bf16(sum);
      Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
      cpu::layernorm_forward(sum, w, b, y, mean, rstd, 1e-5);
      Tensor gsum = poisoned({N, C}, DType::BF16), gy = poisoned({N, C}, DType::BF16);
      Tensor gmean = poisoned({N}, DType::F32), grstd = poisoned({N}, DType::F32);
      cuda::add_layernorm_forward(on_gpu(x), on_gpu(r), on_gpu(w), on_gpu(b), gsum, gy, gmean, grstd, 1e-5);
      CHECK(bit_equal(gsum, sum.to(DType::BF16)));
      expect_close(gy, y, kBf16Tol, tag + " y");
      CHECK(max_abs_diff(gmean, mean) <= 1e-5);
      expect_close(grstd, rstd, 1e-5, tag + " rstd");
      // the statistics are those of the stored sum: layernorm_forward of gsum gives the same bits
      Tensor gy2 = poisoned({N, C}, DType::BF16), gm2 = poisoned({N}, DType::F32), gr2 = poisoned({N}, DType::F32);
      cuda::layernorm_forward(gsum, on_gpu(w), on_gpu(b), gy2, gm2, gr2, 1e-5);
      CHECK(bit_equal(gy2, gy));
      CHECK(bit_equal(gm2, gmean));
      CHECK(bit_equal(gr2, grstd));
    }
}

TEST_CASE("CUDA layernorm_backward_residual (bf16): dx = dres + dLN, also with dres aliasing dx") {
  if (!gpu_or_skip("layernorm_backward_residual bf16")) return;
  for (int64_t N : {1, 7, 129, 1000})
    for (int64_t C : {768, 771}) {
      const std::string tag = shape_tag("layernorm_backward_residual", DType::BF16, N, C);
      const uint64_t seed = uint64_t(N * 13000 + C);
      Tensor x = randn_bf({N, C}, seed, 2.0), w = randn_bf({C}, seed + 1), b = randn_bf({C}, seed + 2);
      Tensor dy = randn_bf({N, C}, seed + 3), dres = randn_bf({N, C}, seed + 4);
      Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
      cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
      Tensor dx = Tensor::empty({N, C}), dw = Tensor::zeros({C}), db = Tensor::zeros({C});
      cpu::layernorm_backward_residual(x, w, mean, rstd, dy, dres, dx, dw, db);
      Tensor gx = on_gpu(x), gw = on_gpu(w), gdy = on_gpu(dy);
      Tensor gmean = on_gpu(mean, DType::F32), grstd = on_gpu(rstd, DType::F32);
      Tensor gdx = poisoned({N, C}, DType::BF16);
      Tensor gdw = Tensor::zeros({C}, DType::BF16, kGpu), gdb = Tensor::zeros({C}, DType::BF16, kGpu);
      cuda::layernorm_backward_residual(gx, gw, gmean, grstd, gdy, on_gpu(dres), gdx, gdw, gdb);
      expect_close(gdx, dx, kBf16Tol, tag + " dx");
      expect_close(gdw, dw, kBf16Tol, tag + " dw");
      expect_close(gdb, db, kBf16Tol, tag + " db");
      // in place: dx holds dres on entry
      Tensor gio = on_gpu(dres);
      Tensor gdw2 = Tensor::zeros({C}, DType::BF16, kGpu), gdb2 = Tensor::zeros({C}, DType::BF16, kGpu);
      cuda::layernorm_backward_residual(gx, gw, gmean, grstd, gdy, gio, gio, gdw2, gdb2);
      CHECK(bit_equal(gio, gdx));
      CHECK(bit_equal(gdw2, gdw));
      // undefined dres: plain layernorm_backward
      Tensor gplain = poisoned({N, C}, DType::BF16), gref = poisoned({N, C}, DType::BF16);
      cuda::layernorm_backward_residual(gx, gw, gmean, grstd, gdy, Tensor(), gplain, Tensor(), Tensor());
      cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, gref, Tensor(), Tensor());
      CHECK(bit_equal(gplain, gref));
    }
}

TEST_CASE("CUDA layernorm rows in float32 and float64, fused rows too, match the CPU") {
  if (!gpu_or_skip("layernorm f32/f64")) return;
  for (DType dt : {DType::F32, DType::F64})
    for (int64_t N : {7, 1000})
      for (int64_t C : {768, 771}) {
        const std::string tag = shape_tag("layernorm", dt, N, C);
        const double tight = dt == DType::F64 ? 1e-12 : 2e-6, loose = dt == DType::F64 ? 1e-12 : 2e-5;
        const uint64_t seed = uint64_t(N * 17000 + C) + (dt == DType::F64);
        Tensor x = randn({N, C}, seed, 2.0, dt), r = randn({N, C}, seed + 1, 1.0, dt);
        Tensor w = randn({C}, seed + 2, 1.0, dt), b = randn({C}, seed + 3, 1.0, dt);
        Tensor dy = randn({N, C}, seed + 4, 1.0, dt), dres = randn({N, C}, seed + 5, 1.0, dt);
        Tensor sum = Tensor::empty({N, C}, dt), y = Tensor::empty({N, C}, dt);
        Tensor mean = Tensor::empty({N}, dt), rstd = Tensor::empty({N}, dt);
        cpu::add_layernorm_forward(x, r, w, b, sum, y, mean, rstd, 1e-5);
        Tensor gsum = poisoned({N, C}, dt), gy = poisoned({N, C}, dt), gmean = poisoned({N}, dt),
               grstd = poisoned({N}, dt);
        cuda::add_layernorm_forward(on_gpu(x, dt), on_gpu(r, dt), on_gpu(w, dt), on_gpu(b, dt), gsum, gy, gmean,
                                    grstd, 1e-5);
        CHECK(bit_equal(gsum, sum));
        expect_close(gy, y, tight, tag + " add y");
        expect_close(grstd, rstd, tight, tag + " add rstd");
        CHECK(max_abs_diff(gmean, mean) <= tight);
        Tensor dx = Tensor::empty({N, C}, dt), dw = randn({C}, seed + 6, 1.0, dt), db = randn({C}, seed + 7, 1.0, dt);
        Tensor gdw = on_gpu(dw, dt), gdb = on_gpu(db, dt), gdx = poisoned({N, C}, dt);
        cpu::layernorm_backward_residual(sum, w, mean, rstd, dy, dres, dx, dw, db);
        cuda::layernorm_backward_residual(gsum, on_gpu(w, dt), gmean, grstd, on_gpu(dy, dt), on_gpu(dres, dt), gdx,
                                          gdw, gdb);
        expect_close(gdx, dx, loose, tag + " residual dx");
        expect_close(gdw, dw, loose, tag + " dw");
        expect_close(gdb, db, loose, tag + " db");
      }
}

namespace {

// One layernorm backward shape on CUDA against the CPU on the same values: dx with the residual
// gradient (then in place, which must give the same bits: also the determinism check), dx alone,
// and dw/db alone into float32 accumulators when the data is bf16. bf16 data is checked against the
// CPU in float32 on the bf16 values; float32/float64 against the CPU in the same dtype.
void check_layernorm_backward(DType dt, int64_t N, int64_t C) {
  const std::string tag = shape_tag("layernorm_backward", dt, N, C);
  const bool bf = dt == DType::BF16;
  const DType host_dt = bf ? DType::F32 : dt, stat_dt = dt == DType::F64 ? DType::F64 : DType::F32;
  const double tol = bf ? kBf16Tol : dt == DType::F64 ? 1e-12 : 2e-5;
  const uint64_t seed = uint64_t(N * 1009 + C) * 8 + uint64_t(dt);
  auto gen = [&](const Shape& s, uint64_t k, double scale) {
    return bf ? randn_bf(s, seed + k, scale) : randn(s, seed + k, scale, dt);
  };
  Tensor x = gen({N, C}, 0, 2.0), w = gen({C}, 1, 1.0), b = gen({C}, 2, 1.0), dy = gen({N, C}, 3, 1.0),
         dres = gen({N, C}, 4, 1.0), dw0 = gen({C}, 5, 1.0), db0 = gen({C}, 6, 1.0);
  Tensor y = Tensor::empty({N, C}, host_dt), mean = Tensor::empty({N}, host_dt), rstd = Tensor::empty({N}, host_dt);
  cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
  Tensor gx = on_gpu(x, dt), gw = on_gpu(w, dt), gdy = on_gpu(dy, dt);
  Tensor gmean = on_gpu(mean, stat_dt), grstd = on_gpu(rstd, stat_dt);

  Tensor dx = Tensor::empty({N, C}, host_dt), dw = dw0.clone(), db = db0.clone();
  cpu::layernorm_backward_residual(x, w, mean, rstd, dy, dres, dx, dw, db);
  Tensor gdx = poisoned({N, C}, dt), gdw = on_gpu(dw0, dt), gdb = on_gpu(db0, dt);
  cuda::layernorm_backward_residual(gx, gw, gmean, grstd, gdy, on_gpu(dres, dt), gdx, gdw, gdb);
  expect_close(gdx, dx, tol, tag + " residual dx");
  expect_close(gdw, dw, tol, tag + " dw");
  expect_close(gdb, db, tol, tag + " db");
  Tensor gio = on_gpu(dres, dt), gdw2 = on_gpu(dw0, dt), gdb2 = on_gpu(db0, dt);
  cuda::layernorm_backward_residual(gx, gw, gmean, grstd, gdy, gio, gio, gdw2, gdb2);
  CHECK_MESSAGE(bit_equal(gio, gdx), (tag + " in-place dx"));
  CHECK_MESSAGE(bit_equal(gdw2, gdw), (tag + " dw again"));
  CHECK_MESSAGE(bit_equal(gdb2, gdb), (tag + " db again"));

  Tensor pdx = Tensor::empty({N, C}, host_dt), pdw = dw0.clone(), pdb = db0.clone();
  cpu::layernorm_backward(x, w, mean, rstd, dy, pdx, pdw, pdb);
  Tensor gpdx = poisoned({N, C}, dt);
  cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, gpdx, Tensor(), Tensor());  // dx only
  expect_close(gpdx, pdx, tol, tag + " dx");
  const DType acc_dt = bf ? DType::F32 : dt;
  Tensor fdw = on_gpu(dw0, acc_dt), fdb = on_gpu(db0, acc_dt);
  cuda::layernorm_backward(gx, gw, gmean, grstd, gdy, Tensor(), fdw, fdb);  // dw/db only
  expect_close(fdw, pdw, bf ? 2e-5 : tol, tag + " dw alone");
  expect_close(fdb, pdb, bf ? 2e-5 : tol, tag + " db alone");
}

}  // namespace

// Rows of up to 4 16-byte packs per lane (32 * 4 packs) run a register-resident kernel: widths here
// give 1 to 4 packs per lane (one lane only: C = 8 / 4 / 2), a partial last group (65 packs: lane 0
// has one pack more than the others), and the first widths past it or off the pack size (the
// two-sweep kernel). N = 5001 gives every warp several rows (the column sums carried across rows).
TEST_CASE("CUDA layernorm backward across row widths (1 to 4 packs per lane, partial groups) matches the CPU") {
  if (!gpu_or_skip("layernorm backward widths")) return;
  const std::vector<std::pair<DType, std::vector<int64_t>>> widths = {
      {DType::BF16, {8, 256, 520, 768, 1024, 1032, 100}},
      {DType::F32, {4, 260, 512, 516}},
      {DType::F64, {2, 130, 256, 258}},
  };
  for (const auto& [dt, Cs] : widths)
    for (int64_t C : Cs)
      for (int64_t N : {1, 7, 131, 5001}) check_layernorm_backward(dt, N, C);
}

TEST_CASE("CUDA layernorm: misaligned rows (scalar path) and rows too wide for the fused dw/db") {
  if (!gpu_or_skip("layernorm edge layouts")) return;
  // A bf16 view one element into its buffer: 16-byte loads are impossible, the scalar path runs.
  {
    const int64_t N = 33, C = 768;
    Tensor x = randn_bf({N, C}, 90, 2.0), w = randn_bf({C}, 91), b = randn_bf({C}, 92), dy = randn_bf({N, C}, 93);
    Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
    cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
    Tensor buf = Tensor::empty({N * C + 1}, DType::BF16, kGpu);
    Tensor gx = buf.slice(0, 1, N * C + 1).reshape({N, C});
    gx.copy_from(x);
    Tensor gy = poisoned({N, C}, DType::BF16), gmean = poisoned({N}, DType::F32), grstd = poisoned({N}, DType::F32);
    cuda::layernorm_forward(gx, on_gpu(w), on_gpu(b), gy, gmean, grstd, 1e-5);
    expect_close(gy, y, kBf16Tol, "misaligned layernorm y");
    Tensor dx = Tensor::empty({N, C}), dw = Tensor::zeros({C}), db = Tensor::zeros({C});
    cpu::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db);
    Tensor gdx = poisoned({N, C}, DType::BF16);
    Tensor gdw = Tensor::zeros({C}, DType::F32, kGpu), gdb = Tensor::zeros({C}, DType::F32, kGpu);
    cuda::layernorm_backward(gx, on_gpu(w), gmean, grstd, on_gpu(dy), gdx, gdw, gdb);
    expect_close(gdx, dx, kBf16Tol, "misaligned layernorm dx");
    expect_close(gdw, dw, 2e-5, "misaligned layernorm dw");
    expect_close(gdb, db, 2e-5, "misaligned layernorm db");
  }
  // Rows of 13000: the per-warp accumulators do not fit, the column-reduction fallback runs.
  for (DType dt : {DType::F32, DType::BF16}) {
    const int64_t N = 5, C = 13000;
    Tensor x = randn_bf({N, C}, 95, 2.0), w = randn_bf({C}, 96), b = randn_bf({C}, 97), dy = randn_bf({N, C}, 98);
    Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
    cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
    Tensor dx = Tensor::empty({N, C}), dw = Tensor::zeros({C}), db = Tensor::zeros({C});
    cpu::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db);
    const double tol = dt == DType::BF16 ? kBf16Tol : 1e-5;
    Tensor gy = poisoned({N, C}, dt), gmean = poisoned({N}, DType::F32), grstd = poisoned({N}, DType::F32);
    Tensor gx = on_gpu(x, dt), gw = on_gpu(w, dt);
    cuda::layernorm_forward(gx, gw, on_gpu(b, dt), gy, gmean, grstd, 1e-5);
    expect_close(gy, y, tol, std::string("wide layernorm y ") + dtype_name(dt));
    Tensor gdx = poisoned({N, C}, dt), gdw = Tensor::zeros({C}, dt, kGpu), gdb = Tensor::zeros({C}, dt, kGpu);
    cuda::layernorm_backward(gx, gw, gmean, grstd, on_gpu(dy, dt), gdx, gdw, gdb);
    expect_close(gdx, dx, tol, std::string("wide layernorm dx ") + dtype_name(dt));
    expect_close(gdw, dw, tol, std::string("wide layernorm dw ") + dtype_name(dt));
    expect_close(gdb, db, tol, std::string("wide layernorm db ") + dtype_name(dt));
  }
}

// ---- cross-entropy -------------------------------------------------------------------------------

TEST_CASE("CUDA bf16 cross-entropy forward/backward and the fused classifier match the CPU float32") {
  if (!gpu_or_skip("cross-entropy bf16")) return;
  for (int64_t V : {50257, 50304, 7})
    for (int64_t N : {1, 7, 129, 1000}) {
      if (N == 1000 && V == 50257) continue;  // one large case is enough for the CPU reference
      const std::string tag = shape_tag("cross_entropy", DType::BF16, N, V);
      const uint64_t seed = uint64_t(N * 60000 + V);
      Tensor logits = randn_bf({N, V}, seed, 4.0);
      Tensor t = targets_for(N, V, seed + 1);
      Tensor dl = Tensor::empty({N});
      Rng(seed + 2).fill_normal(dl, 0, 1);
      // CPU float32 reference
      Tensor loss = Tensor::empty({N}), lse = Tensor::empty({N}), grad = Tensor::empty({N, V});
      cpu::cross_entropy_forward(logits, t, loss, lse, -100);
      cpu::cross_entropy_backward(logits, t, lse, dl, grad, -100);
      Tensor fused = logits.clone(), floss = Tensor::empty({N});
      cpu::cross_entropy_fused(fused, t, floss, -100);
      // GPU
      Tensor gl = on_gpu(logits), gt = t.to(kGpu);
      Tensor gloss = poisoned({N}, DType::F32), glse = poisoned({N}, DType::F32);
      cuda::cross_entropy_forward(gl, gt, gloss, glse, -100);
      expect_close(gloss, loss, 2e-5, tag + " losses");
      expect_close(glse, lse, 2e-5, tag + " lse");
      Tensor ggrad = poisoned({N, V}, DType::BF16);
      cuda::cross_entropy_backward(gl, gt, glse, on_gpu(dl, DType::F32), ggrad, -100);
      expect_close(ggrad, grad, kBf16Tol, tag + " dlogits");
      CHECK(off_target_rel_l2(ggrad, grad, t, V) <= kBf16Tol);
      Tensor gf = gl.clone(), gfloss = poisoned({N}, DType::F32);
      cuda::cross_entropy_fused(gf, gt, gfloss, -100);
      expect_close(gfloss, floss, 2e-5, tag + " fused losses");
      expect_close(gf, fused, kBf16Tol, tag + " fused gradient");
      CHECK(off_target_rel_l2(gf, fused, t, V) <= kBf16Tol);
      // The fused kernel equals forward + backward with dlosses = 1 up to summation order (its block
      // reduction differs from the separate forward's): the same losses to fp32 rounding, the same
      // gradient to a bf16 ulp here and there.
      expect_close(gfloss, gloss, 1e-6, tag + " fused vs separate losses");
      Tensor gref = poisoned({N, V}, DType::BF16);
      cuda::cross_entropy_backward(gl, gt, glse, Tensor::full({N}, 1.0, DType::F32, kGpu), gref, -100);
      expect_close(gf, gref, 1e-3, tag + " fused vs separate gradient");
      // ignored rows: zero gradient, zero loss
      auto tv = t.to_ints();
      auto fl = gfloss.to_floats();
      for (int64_t n = 0; n < N; ++n) {
        if (tv[size_t(n)] != -100) continue;
        CHECK(fl[size_t(n)] == 0.0f);
        CHECK(testing::max_abs(gf.slice(0, n, n + 1)) == 0.0);
      }
    }
}

TEST_CASE("CUDA cross-entropy: float32 fused classifier, misaligned rows, float64 refused") {
  if (!gpu_or_skip("cross-entropy layouts")) return;
  const int64_t N = 37, V = 50257;
  Tensor logits = randn({N, V}, 70, 4.0, DType::F32);
  Tensor t = targets_for(N, V, 71);
  Tensor fused = logits.clone(), floss = Tensor::empty({N});
  cpu::cross_entropy_fused(fused, t, floss, -100);
  Tensor gf = logits.to(kGpu), gfloss = poisoned({N}, DType::F32);
  cuda::cross_entropy_fused(gf, t.to(kGpu), gfloss, -100);
  expect_close(gfloss, floss, 2e-6, "fused float32 losses");
  expect_close(gf, fused, 1e-5, "fused float32 gradient");
  CHECK(off_target_rel_l2(gf, fused, t, V) <= 1e-5);
  // bf16 logits one element into their buffer, dlogits aligned: the scalar (VW = 1) backward runs;
  // the in-place fused kernel still uses 16-byte packs after a short head.
  Tensor lb = testing::round_bf16(logits);
  Tensor loss = Tensor::empty({N}), lse = Tensor::empty({N}), grad = Tensor::empty({N, V});
  cpu::cross_entropy_forward(lb, t, loss, lse, -100);
  Tensor dl = Tensor::full({N}, 0.5);
  cpu::cross_entropy_backward(lb, t, lse, dl, grad, -100);
  Tensor buf = Tensor::empty({N * V + 1}, DType::BF16, kGpu);
  Tensor gl = buf.slice(0, 1, N * V + 1).reshape({N, V});
  gl.copy_from(lb);
  Tensor gloss = poisoned({N}, DType::F32), glse = poisoned({N}, DType::F32);
  cuda::cross_entropy_forward(gl, t.to(kGpu), gloss, glse, -100);
  expect_close(gloss, loss, 2e-5, "misaligned losses");
  Tensor gd = poisoned({N, V}, DType::BF16);
  cuda::cross_entropy_backward(gl, t.to(kGpu), glse, dl.to(kGpu), gd, -100);
  expect_close(gd, grad, kBf16Tol, "misaligned dlogits");
  CHECK(off_target_rel_l2(gd, grad, t, V) <= kBf16Tol);
  Tensor ones = Tensor::full({N}, 1.0), gref = Tensor::empty({N, V});
  cpu::cross_entropy_backward(lb, t, lse, ones, gref, -100);
  Tensor gfl = poisoned({N}, DType::F32);
  cuda::cross_entropy_fused(gl, t.to(kGpu), gfl, -100);
  expect_close(gl, gref, kBf16Tol, "misaligned fused gradient");
  CHECK(off_target_rel_l2(gl, gref, t, V) <= kBf16Tol);
  CHECK(bit_equal(gfl, gloss));
  // float64 logits are the CPU's business
  Tensor l64 = Tensor::zeros({2, 3}, DType::F64, kGpu);
  CHECK_THROWS_AS(cuda::cross_entropy_fused(l64, Tensor::zeros({2}, DType::I32, kGpu),
                                            Tensor::empty({2}, DType::F32, kGpu), -100),
                  Error);
}

TEST_CASE("CUDA masked_mean matches the CPU, stays deterministic, and handles all-ignored targets") {
  if (!gpu_or_skip("masked_mean")) return;
  for (int64_t N : {1, 7, 129, 1000, 16384}) {
    CAPTURE(N);
    Tensor losses = Tensor::empty({N});
    Rng(80 + uint64_t(N)).fill_uniform(losses, 0, 12);
    Tensor t = targets_for(N, 50257, 81);
    Tensor out = Tensor::empty({1}), count = Tensor::empty({1});
    cpu::masked_mean(losses, t, out, count, -100);
    Tensor gl = losses.to(kGpu), gt = t.to(kGpu);
    Tensor gout = poisoned({1}, DType::F32), gcount = poisoned({1}, DType::F32);
    cuda::masked_mean(gl, gt, gout, gcount, -100);
    CHECK(gcount.item() == count.item());
    CHECK(gout.item() == doctest::Approx(out.item()).epsilon(1e-6));
    Tensor gout2 = poisoned({1}, DType::F32), gcount2 = poisoned({1}, DType::F32);
    cuda::masked_mean(gl, gt, gout2, gcount2, -100);
    CHECK(bit_equal(gout2, gout));
    // bf16 losses are read as their float values
    Tensor lb = losses.to(DType::BF16);
    Tensor out_b = Tensor::empty({1}), count_b = Tensor::empty({1});
    cpu::masked_mean(lb.to(DType::F32), t, out_b, count_b, -100);
    cuda::masked_mean(lb.to(kGpu), gt, gout, gcount, -100);
    CHECK(gout.item() == doctest::Approx(out_b.item()).epsilon(1e-6));
  }
  Tensor z = Tensor::zeros({9}, DType::F32, kGpu);
  Tensor all_ignored = Tensor::from_ints(std::vector<int32_t>(9, -100), {9}).to(kGpu);
  Tensor gout = poisoned({1}, DType::F32), gcount = poisoned({1}, DType::F32);
  cuda::masked_mean(z, all_ignored, gout, gcount, -100);
  CHECK(gout.item() == 0.0);
  CHECK(gcount.item() == 0.0);
}

// ---- optimizer -----------------------------------------------------------------------------------

TEST_CASE("CUDA adamw_update with float32 masters: 10 bf16 steps match the CPU, param = bf16(master)") {
  if (!gpu_or_skip("adamw master")) return;
  const std::vector<int64_t> sizes = {1, 16385, 100003, 0, 777};
  struct State {
    Tensor param, master, m, v;
  };
  std::vector<State> cs, gs;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = sizes[i];
    const Tensor p0 = randn({n}, 200 + i, 1.0, DType::F32);
    const bool master = i != 4;  // the last item is a plain float32 one, mixed into the same call
    State c{master ? p0.to(DType::BF16) : p0.clone(), master ? p0.clone() : Tensor(), Tensor::zeros({n}),
            Tensor::zeros({n})};
    State g{c.param.to(kGpu), master ? p0.to(kGpu) : Tensor(), Tensor::zeros({n}, DType::F32, kGpu),
            Tensor::zeros({n}, DType::F32, kGpu)};
    cs.push_back(c);
    gs.push_back(g);
  }
  for (int step = 1; step <= 10; ++step) {
    std::vector<AdamWItem> ci, gi;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const Tensor grad = randn_bf({sizes[i]}, 300 + 10 * uint64_t(step) + i);
      const bool master = cs[i].master.defined();
      const DType gd = master ? DType::BF16 : DType::F32;
      const float lr = 1e-3f * float(i + 1), wd = i % 2 ? 0.1f : 0.f;
      AdamWItem c = adamw_item(cs[i].param, grad.to(gd), cs[i].m, cs[i].v, step, lr, wd, kGradScale);
      AdamWItem g = adamw_item(gs[i].param, grad.to(gd).to(kGpu), gs[i].m, gs[i].v, step, lr, wd, kGradScale);
      c.master = cs[i].master;
      g.master = gs[i].master;
      ci.push_back(c);
      gi.push_back(g);
    }
    cpu::adamw_update(views_of(ci));
    cuda::adamw_update(views_of(gi));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) continue;
    const std::string tag = "adamw item " + std::to_string(i);
    if (cs[i].master.defined()) {
      expect_close(gs[i].master, cs[i].master, 1e-5, tag + " master");
      CHECK(gs[i].param.dtype() == DType::BF16);
      // rounded to nearest even from the master (the host's conversion is the reference)
      CHECK(bit_equal(gs[i].param, gs[i].master.to(kCpu).to(DType::BF16)));
      expect_close(gs[i].param, cs[i].param, kBf16Tol, tag + " param");
    } else {
      expect_close(gs[i].param, cs[i].param, 1e-5, tag + " param");
    }
    expect_close(gs[i].m, cs[i].m, 1e-5, tag + " m");
    expect_close(gs[i].v, cs[i].v, 1e-5, tag + " v");
  }
}

TEST_CASE("CUDA adamw_update: the master path equals the plain float32 update of the same values") {
  if (!gpu_or_skip("adamw master equality")) return;
  const int64_t n = 50001;
  const Tensor p0 = randn({n}, 400, 1.0, DType::F32);
  Tensor pf = p0.to(kGpu), mf = Tensor::zeros({n}, DType::F32, kGpu), vf = Tensor::zeros({n}, DType::F32, kGpu);
  Tensor master = p0.to(kGpu), pb = p0.to(DType::BF16).to(kGpu);
  Tensor mb = Tensor::zeros({n}, DType::F32, kGpu), vb = Tensor::zeros({n}, DType::F32, kGpu);
  Tensor master2 = p0.to(kGpu), pb2 = p0.to(DType::BF16).to(kGpu);
  Tensor mb2 = Tensor::zeros({n}, DType::F32, kGpu), vb2 = Tensor::zeros({n}, DType::F32, kGpu);
  for (int step = 1; step <= 5; ++step) {
    const Tensor g = randn_bf({n}, 410 + uint64_t(step));
    AdamWItem plain = adamw_item(pf, g.to(kGpu), mf, vf, step, 2e-3f, 0.1f, kGradScale);
    AdamWItem with_master = adamw_item(pb, g.to(kGpu), mb, vb, step, 2e-3f, 0.1f, kGradScale);  // float32 grad
    with_master.master = master;
    AdamWItem bf16_grad = adamw_item(pb2, g.to(DType::BF16).to(kGpu), mb2, vb2, step, 2e-3f, 0.1f, kGradScale);
    bf16_grad.master = master2;
    cuda::adamw_update({with_master, plain, bf16_grad});
  }
  CHECK(bit_equal(master, pf));
  CHECK(bit_equal(mb, mf));
  CHECK(bit_equal(vb, vf));
  CHECK(bit_equal(master2, pf));
  CHECK(bit_equal(pb, pf.to(kCpu).to(DType::BF16)));
  CHECK(bit_equal(pb2, pb));
  CHECK(relative_l2(master, p0) > 1e-3);  // it moved
}

TEST_CASE("CUDA sum_squares and square_accumulate read bf16 inputs") {
  if (!gpu_or_skip("bf16 statistics")) return;
  std::vector<Tensor> xs = {randn_bf({1}, 500), randn_bf({16385}, 501), randn_bf({1000003}, 502),
                            randn({77}, 503, 1.0, DType::F64)};
  std::vector<Tensor> gxs;
  for (size_t i = 0; i < xs.size(); ++i) gxs.push_back(on_gpu(xs[i], i == 3 ? DType::F64 : DType::BF16));
  Tensor c = Tensor::full({1}, 2.0, DType::F32), g = Tensor::full({1}, 2.0, DType::F32, kGpu);
  cpu::sum_squares(views_of(xs), c);
  cuda::sum_squares(views_of(gxs), g);
  CHECK(g.item() == doctest::Approx(c.item()).epsilon(1e-6));
  Tensor acc = randn({1000}, 504, 1.0, DType::F32), samples = randn_bf({3, 1000}, 505);
  Tensor gacc = acc.to(kGpu);
  cpu::square_accumulate(acc, samples, 0.25);
  cuda::square_accumulate(gacc, on_gpu(samples), 0.25);
  expect_close(gacc, acc, 1e-6, "square_accumulate bf16 samples");
}

// ---- timings ------------------------------------------------------------------------------------

namespace {

// Median-free but warm: average milliseconds of `iters` calls after `warm` untimed ones.
double time_ms(const std::function<void()>& fn, int warm = 3, int iters = 20) {
  for (int i = 0; i < warm; ++i) fn();
  cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  cuda::synchronize();
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(t1 - t0).count() / iters;
}

void report(const std::string& line) {
  std::printf("BENCH %s\n", line.c_str());
  const std::string msg = "BENCH " + line;
  MESSAGE(msg);
}

}  // namespace

TEST_CASE("bf16 nn kernel timings (ARIA_BF16_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_BF16_BENCH")) return;
  if (!gpu_or_skip("bf16 nn timings")) return;
  char buf[256];
  {  // layernorm [16384, 768] (GPT-2 124M's rows), also bf16 [16384, 1024] (GPT-2 medium's)
    const int64_t N = 16384;
    const std::pair<DType, int64_t> cases[] = {{DType::BF16, 768}, {DType::F32, 768}, {DType::BF16, 1024}};
    for (const auto& [dt, C] : cases) {
      const std::string shape = "[" + std::to_string(N) + ", " + std::to_string(C) + "]";
      const double es = double(dtype_size(dt));
      Tensor x = on_gpu(randn_bf({N, C}, 600), dt), w = on_gpu(randn_bf({C}, 601), dt),
             b = on_gpu(randn_bf({C}, 602), dt), dy = on_gpu(randn_bf({N, C}, 603), dt);
      Tensor y = Tensor::empty({N, C}, dt, kGpu), mean = Tensor::empty({N}, DType::F32, kGpu),
             rstd = Tensor::empty({N}, DType::F32, kGpu), dx = Tensor::empty({N, C}, dt, kGpu),
             dw = Tensor::zeros({C}, dt, kGpu), db = Tensor::zeros({C}, dt, kGpu);
      const double fwd = time_ms([&] { cuda::layernorm_forward(x, w, b, y, mean, rstd, 1e-5); });
      const double fwd_bytes = 2.0 * double(N * C) * es + 8.0 * double(N);
      std::snprintf(buf, sizeof buf, "layernorm_forward %s %s: %.1f us, %.0f GB/s", dtype_name(dt), shape.c_str(),
                    fwd * 1e3, fwd_bytes / (fwd * 1e-3) / 1e9);
      report(buf);
      const double bwd = time_ms([&] { cuda::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db); });
      const double bwd_bytes = 3.0 * double(N * C) * es + 8.0 * double(N);
      std::snprintf(buf, sizeof buf, "layernorm_backward (dx, dw, db) %s %s: %.1f us, %.0f GB/s",
                    dtype_name(dt), shape.c_str(), bwd * 1e3, bwd_bytes / (bwd * 1e-3) / 1e9);
      report(buf);
      Tensor dres = on_gpu(randn_bf({N, C}, 605), dt);
      const double res = time_ms([&] { cuda::layernorm_backward_residual(x, w, mean, rstd, dy, dres, dx, dw, db); });
      const double res_bytes = 4.0 * double(N * C) * es + 8.0 * double(N);  // read x, dy, dres; write dx
      std::snprintf(buf, sizeof buf, "layernorm_backward_residual (dx, dw, db) %s %s: %.1f us, %.0f GB/s",
                    dtype_name(dt), shape.c_str(), res * 1e3, res_bytes / (res * 1e-3) / 1e9);
      report(buf);
      Tensor r = on_gpu(randn_bf({N, C}, 604), dt), sum = Tensor::empty({N, C}, dt, kGpu);
      const double add = time_ms([&] { cuda::add_layernorm_forward(x, r, w, b, sum, y, mean, rstd, 1e-5); });
      const double add_bytes = 4.0 * double(N * C) * es + 8.0 * double(N);
      std::snprintf(buf, sizeof buf, "add_layernorm_forward %s %s: %.1f us, %.0f GB/s", dtype_name(dt), shape.c_str(),
                    add * 1e3, add_bytes / (add * 1e-3) / 1e9);
      report(buf);
    }
  }
  {  // fused classifier [16384, 50304]
    const int64_t N = 16384, V = 50304;
    // One random row broadcast to every row (a stride-0 view copied on the device): drawing 824M
    // normals on the host would take longer than the timing.
    Tensor row = on_gpu(randn_bf({1, V}, 610, 2.0));
    auto spread = std::make_shared<TensorImpl>(*row.impl_ptr());
    spread->shape = {N, V};
    spread->strides = {0, 1};
    Tensor logits = Tensor::empty({N, V}, DType::BF16, kGpu);
    cuda::copy_cast(Tensor(spread), logits);
    Tensor t = targets_for(N, V, 611).to(kGpu), losses = Tensor::empty({N}, DType::F32, kGpu);
    Tensor lse = Tensor::empty({N}, DType::F32, kGpu);
    // The fused kernel rewrites the logits each call; later calls see gradient values, which cost the
    // same (no data-dependent work).
    const double fused = time_ms([&] { cuda::cross_entropy_fused(logits, t, losses, -100); }, 2, 10);
    const double bytes = 2.0 * double(N * V) * 2.0;
    std::snprintf(buf, sizeof buf, "cross_entropy_fused bf16 [16384, 50304]: %.3f ms (%.0f GB/s of 1 read + 1 write)",
                  fused, bytes / (fused * 1e-3) / 1e9);
    report(buf);
    {  // The same rows one element off 16-byte alignment: the unstaged kernel (two sweeps through L2).
      Tensor storage = Tensor::empty({N * V + 1}, DType::BF16, kGpu);
      Tensor off = storage.slice(0, 1, N * V + 1).reshape({N, V});
      cuda::copy_cast(logits, off);
      const double unstaged = time_ms([&] { cuda::cross_entropy_fused(off, t, losses, -100); }, 2, 10);
      std::snprintf(buf, sizeof buf,
                    "cross_entropy_fused bf16 [16384, 50304], rows off 16-byte alignment (unstaged kernel): %.3f ms "
                    "(%.0f GB/s)",
                    unstaged, bytes / (unstaged * 1e-3) / 1e9);
      report(buf);
    }
    const double fwd = time_ms([&] { cuda::cross_entropy_forward(logits, t, losses, lse, -100); }, 2, 10);
    std::snprintf(buf, sizeof buf, "cross_entropy_forward bf16 [16384, 50304]: %.3f ms", fwd);
    report(buf);
    Tensor out = Tensor::empty({1}, DType::F32, kGpu), count = Tensor::empty({1}, DType::F32, kGpu);
    const double mm = time_ms([&] { cuda::masked_mean(losses, t, out, count, -100); });
    std::snprintf(buf, sizeof buf, "masked_mean [16384]: %.1f us", mm * 1e3);
    report(buf);
  }
  {  // AdamW over GPT-2 124M's parameter list, bf16 params + float32 masters, bf16 grads
    std::vector<int64_t> sizes = {50257 * 768, 1024 * 768};
    for (int l = 0; l < 12; ++l)
      for (int64_t s : {768, 768, 768 * 2304, 2304, 768 * 768, 768, 768, 768, 768 * 3072, 3072, 3072 * 768, 768})
        sizes.push_back(s);
    sizes.push_back(768);
    sizes.push_back(768);
    int64_t total = 0;
    std::vector<AdamWItem> items;
    for (int64_t n : sizes) {
      total += n;
      AdamWItem it = adamw_item(Tensor::zeros({n}, DType::BF16, kGpu), Tensor::zeros({n}, DType::BF16, kGpu),
                                Tensor::zeros({n}, DType::F32, kGpu), Tensor::zeros({n}, DType::F32, kGpu), 1, 1e-4f,
                                0.1f, kGradScale);
      it.master = Tensor::zeros({n}, DType::F32, kGpu);
      items.push_back(it);
    }
    const std::vector<AdamWItemView> views = views_of(items);
    const double ms = time_ms([&] { cuda::adamw_update(views); }, 2, 10);
    const double bytes = double(total) * (2 + 4 + 4 + 4 + 4 + 4 + 4 + 2);  // read g m v master, write m v master p
    std::snprintf(buf, sizeof buf, "adamw_update bf16 params + fp32 masters, %lld params (%zu tensors): %.3f ms, %.0f GB/s",
                  (long long)total, sizes.size(), ms, bytes / (ms * 1e-3) / 1e9);
    report(buf);
  }
}
