// bfloat16 CUDA kernels of the elementwise / data-movement / softmax / embedding rows against the CPU.
// Every input is rounded to bf16 first; the GPU runs on those bf16 values and the CPU reference
// (aria::cpu, float32) on the very same values widened to float32. The only differences left are
// the bf16 rounding of the GPU's outputs (relative 2^-8 at most) and fp32 math noise, so each
// element must satisfy |gpu - cpu| <= 2^-7 |cpu| + atol (atol a few ulps of fp32 noise, scaled by the
// number of terms for sums) and the whole tensor a relative L2 error <= 1e-2. GPU outputs are
// poisoned with NaN first, so an unwritten element fails. Sizes are awkward on purpose: 1 and 7
// (shorter than one 16-byte pack), 1000, 129x771 (rows that are no multiple of 8), 16x1024x768, views
// whose data pointer is not 16-byte aligned (the scalar fallbacks), broadcasting strides.
// gelu_backward_bias_grad is checked against the CPU's unfused rows in bf16, float32 and float64.
// ARIA_BF16_BENCH=1 adds a timing case (GB/s of the block's elementwise kernels, the fused GELU
// backward + bias gradient against the unfused pair).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::bit_equal;
using testing::expand;
using testing::expect_close;
using testing::gpu_or_skip;
using testing::misaligned_gpu;
using testing::poisoned;
using testing::randn;
using testing::relative_l2;

namespace {

const Device kGpu = Device::cuda(0);

// A test input: bf16 values on the CPU (rounded from float32) and their exact float32 widening.
struct In {
  Tensor bf;   // BF16, CPU
  Tensor f32;  // F32, CPU, the same values
  Tensor gpu() const { return bf.to(kGpu); }
};

In from_f32(const Tensor& x) {
  In in;
  in.bf = x.to(DType::BF16);
  in.f32 = in.bf.to(DType::F32);
  return in;
}

In rand_in(const Shape& s, uint64_t seed, double scale = 1.0) { return from_f32(randn(s, seed, scale)); }

// The bf16 bound of the file comment, element by element, plus relative L2.
void expect_bf16_close(const Tensor& got, const Tensor& want, double atol, const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.numel() == want.numel());
  const std::vector<float> a = got.to_floats(), b = want.to_floats();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= 0x1p-7 * std::fabs(double(b[i])) + atol)) {  // NaN fails too
      if (first < 0) first = int64_t(i);
      ++bad;
    }
  }
  if (first >= 0) {
    const double ga = a[size_t(first)], wb = b[size_t(first)];
    CAPTURE(first);
    CAPTURE(ga);
    CAPTURE(wb);
    CHECK(bad == 0);
  }
  const double e = relative_l2(got, want);
  CAPTURE(e);
  CHECK(e <= 1e-2);
}


const std::vector<Shape> kSizes = {{1}, {7}, {1000}, {129, 771}};

}  // namespace

TEST_CASE("bf16 CUDA copy_cast, fill and axpy match the CPU") {
  if (!gpu_or_skip("bf16 copy_cast / fill / axpy")) return;
  // casts bf16 <-> f32 / f64 / bf16, contiguous (vector path and tails), misaligned and transposed
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{1000}, Shape{129, 771}, Shape{16, 1024, 768}}) {
    const Tensor x32 = randn(s, 1, 3.0);
    for (DType from : {DType::F32, DType::F64, DType::BF16}) {
      const Tensor src = x32.to(from);
      for (DType to : {DType::F32, DType::F64, DType::BF16}) {
        if (from != DType::BF16 && to != DType::BF16) continue;
        Tensor c = Tensor::empty(s, to), g = poisoned(s, to);
        cpu::copy_cast(src, c);
        cuda::copy_cast(src.to(kGpu), g);
        CAPTURE(shape_str(s));
        CAPTURE(dtype_name(from));
        CAPTURE(dtype_name(to));
        CHECK(bit_equal(g, c));  // conversions are exact or round to nearest even on both sides
      }
    }
  }
  {  // misaligned source (f32 -> bf16 and back through a misaligned bf16)
    const In x = rand_in({1001}, 2);
    Tensor gm = misaligned_gpu(x.bf);
    Tensor g32 = poisoned({1001}, DType::F32);
    cuda::copy_cast(gm, g32);
    CHECK(bit_equal(g32, x.f32));
    Tensor base = Tensor::empty({1002}, DType::BF16, kGpu);
    Tensor dst = base.slice(0, 1, 1002);
    cuda::copy_cast(x.f32.to(kGpu), dst);
    CHECK(bit_equal(dst, x.bf));
  }
  {  // transposed (strided) bf16 -> f32 and f32 -> bf16
    const Tensor x = randn({37, 65, 3}, 3);
    const Tensor xt = x.transpose(0, 2);
    for (DType to : {DType::F32, DType::BF16}) {
      const DType from = to == DType::BF16 ? DType::F32 : DType::BF16;
      const Tensor src = x.to(from);
      Tensor c = Tensor::empty(xt.shape(), to), g = poisoned(xt.shape(), to);
      cpu::copy_cast(src.transpose(0, 2), c);
      cuda::copy_cast(src.to(kGpu).transpose(0, 2), g);
      CHECK(bit_equal(g, c));
    }
  }
  // fill: bf16 round-to-nearest-even of the value, every element, aligned or not
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(100003)}) {
    for (double v : {0.1, -3.0, 0.0}) {
      Tensor g = poisoned({n}, DType::BF16);
      cuda::fill(g, v);
      const float want = bf16_to_float(float_to_bf16(float(v)));
      CHECK(g.to_floats() == std::vector<float>(size_t(n), want));
      Tensor base = poisoned({n + 1}, DType::BF16);
      Tensor m = base.slice(0, 1, n + 1);
      cuda::fill(m, v);
      CHECK(m.to_floats() == std::vector<float>(size_t(n), want));
      CHECK(std::isnan(base.slice(0, 0, 1).item()));  // nothing written before the view
    }
  }
  // axpy: y += alpha x in fp32, one rounding
  for (const Shape& s : kSizes) {
    const In y = rand_in(s, 4), x = rand_in(s, 5);
    Tensor c = y.f32.clone(), g = y.gpu();
    cpu::axpy(c, x.f32, -0.75);
    cuda::axpy(g, x.gpu(), -0.75);
    expect_bf16_close(g, c, 1e-6, "axpy " + shape_str(s));
  }
  {
    const In y = rand_in({1001}, 6), x = rand_in({1001}, 7);
    Tensor c = y.f32.clone(), g = misaligned_gpu(y.bf);
    cpu::axpy(c, x.f32, 2.5);
    cuda::axpy(g, x.gpu(), 2.5);
    expect_bf16_close(g, c, 1e-6, "axpy misaligned");
  }
}

TEST_CASE("bf16 CUDA binary matches the CPU: contiguous, in place, broadcast, strided, misaligned") {
  if (!gpu_or_skip("bf16 binary")) return;
  auto run = [](int op, const Tensor& ga, const Tensor& gb, const Tensor& ca, const Tensor& cb, const Shape& os,
                const std::string& what) {
    Tensor c = Tensor::empty(os), g = poisoned(os, DType::BF16);
    cpu::binary(op, ca, cb, c);
    cuda::binary(op, ga, gb, g);
    expect_bf16_close(g, c, 1e-6, what + " op " + std::to_string(op));
  };
  for (const Shape& s : std::vector<Shape>{{1}, {7}, {1000}, {129, 771}, {16, 1024, 768}}) {
    const In a = rand_in(s, 10), b = rand_in(s, 11);
    for (int op = 0; op < 4; ++op) {
      if (s.size() == 3 && op > 0) break;  // the residual add at full size; the others at small sizes
      run(op, a.gpu(), b.gpu(), a.f32, b.f32, s, "contiguous " + shape_str(s));
    }
  }
  {  // in place: out aliases a (x += r)
    const In a = rand_in({16, 1024, 768}, 12), b = rand_in({16, 1024, 768}, 13);
    Tensor c = Tensor::empty(a.f32.shape()), g = a.gpu();
    cpu::binary(0, a.f32, b.f32, c);
    cuda::binary(0, g, b.gpu(), g);
    expect_bf16_close(g, c, 1e-6, "in-place residual add");
  }
  {  // stride-0 broadcasting: [37,1,65] x [1,29,65]; a row [1,771] over [129,771]; a scalar over [1000]
    const In a = rand_in({37, 1, 65}, 14), b = rand_in({1, 29, 65}, 15);
    const Shape os = {37, 29, 65};
    for (int op = 0; op < 4; ++op)
      run(op, expand(a.gpu(), os), expand(b.gpu(), os), expand(a.f32, os), expand(b.f32, os), os, "broadcast 3d");
    const In m = rand_in({129, 771}, 16), r = rand_in({1, 771}, 17), sc = rand_in({1}, 18);
    for (int op = 0; op < 4; ++op) {
      run(op, m.gpu(), expand(r.gpu(), {129, 771}), m.f32, expand(r.f32, {129, 771}), {129, 771}, "row broadcast");
      const In v = rand_in({1000}, 19);
      run(op, expand(sc.gpu(), {1000}), v.gpu(), expand(sc.f32, {1000}), v.f32, {1000}, "scalar broadcast");
    }
  }
  {  // transposed a (strided), misaligned flat operands
    const In a = rand_in({65, 129}, 20), b = rand_in({129, 65}, 21);
    run(2, a.gpu().transpose(0, 1), b.gpu(), a.f32.transpose(0, 1), b.f32, {129, 65}, "transposed");
    const In x = rand_in({1001}, 22), y = rand_in({1001}, 23);
    for (int op = 0; op < 4; ++op) run(op, misaligned_gpu(x.bf), y.gpu(), x.f32, y.f32, {1001}, "misaligned");
  }
}

namespace {

// Inputs for a unary op: positive for Log, else normal(0, 2).
In unary_input(int op, const Shape& s, uint64_t seed) {
  if (op == int(UnaryOp::Log)) {
    Tensor x = randn(s, seed, 0.7), e = Tensor::empty(s);
    cpu::unary(int(UnaryOp::Exp), x, e, 1, 0);
    return from_f32(e);
  }
  return rand_in(s, seed, 2.0);
}

bool needs_y(int op) { return op == int(UnaryOp::Sigmoid) || op == int(UnaryOp::Exp) || op == int(UnaryOp::Tanh); }

// unary(op) forward, then (op != Affine) unary_backward in write and accumulate modes, bf16 GPU vs
// float32 CPU on the same rounded values. y for the backward is the bf16-rounded forward output.
void check_unary(int op, const Shape& s, uint64_t seed, bool misaligned = false) {
  const In x = unary_input(op, s, seed);
  const std::string name = "op " + std::to_string(op) + " " + shape_str(s) + (misaligned ? " misaligned" : "");
  Tensor c = Tensor::empty(s), g = poisoned(s, DType::BF16);
  const Tensor gx = misaligned ? misaligned_gpu(x.bf) : x.gpu();
  cpu::unary(op, x.f32, c, 1.5, -0.25);
  cuda::unary(op, gx, g, 1.5, -0.25);
  expect_bf16_close(g, c, 1e-5, "unary " + name);
  if (op == int(UnaryOp::Affine)) return;
  const In y = from_f32(c), dy = rand_in(s, seed + 1);
  for (double alpha : {0.0, 1.0}) {
    const In dx0 = rand_in(s, seed + 2);
    Tensor cd = dx0.f32.clone(), gd = alpha == 0 ? poisoned(s, DType::BF16) : dx0.gpu();
    cpu::unary_backward(op, x.f32, y.f32, dy.f32, cd, alpha);
    // only the operand the derivative reads is passed to the GPU; the other is undefined
    const Tensor gxx = needs_y(op) ? Tensor() : gx, gyy = needs_y(op) ? y.gpu() : Tensor();
    cuda::unary_backward(op, gxx, gyy, dy.gpu(), gd, alpha);
    expect_bf16_close(gd, cd, 1e-5, "unary_backward " + name + " alpha " + std::to_string(alpha));
  }
}

}  // namespace

TEST_CASE("bf16 CUDA unary and unary_backward match the CPU for every op") {
  if (!gpu_or_skip("bf16 unary")) return;
  for (int op = 0; op <= int(UnaryOp::Square); ++op) {
    uint64_t seed = 100 + 10 * uint64_t(op);
    for (const Shape& s : kSizes) check_unary(op, s, seed++);
    check_unary(op, {1001}, seed++, true);
  }
  check_unary(int(UnaryOp::Gelu), {16, 1024, 768}, 200);  // the MLP activation at full size
  // both x and y passed (as the op layer may): the derivative still reads the right one
  const In x = rand_in({1000}, 210, 2.0), dy = rand_in({1000}, 211);
  for (int op : {int(UnaryOp::Gelu), int(UnaryOp::Sigmoid), int(UnaryOp::Tanh)}) {
    Tensor y = Tensor::empty({1000});
    cpu::unary(op, x.f32, y, 1, 0);
    const In yb = from_f32(y);
    Tensor cd = Tensor::empty({1000}), gd = poisoned({1000}, DType::BF16);
    cpu::unary_backward(op, x.f32, yb.f32, dy.f32, cd, 0);
    cuda::unary_backward(op, x.gpu(), yb.gpu(), dy.gpu(), gd, 0);
    expect_bf16_close(gd, cd, 1e-5, "unary_backward x and y op " + std::to_string(op));
  }
}

TEST_CASE("bf16 CUDA sum_to matches the CPU and is deterministic, add_bias matches the CPU") {
  if (!gpu_or_skip("bf16 sum_to / add_bias")) return;
  auto check_sum = [](const In& x, const Shape& to, const std::string& what) {
    const int64_t R = x.f32.numel() / shape_numel(to);
    Tensor c = Tensor::empty(to), g1 = poisoned(to, DType::BF16), g2 = poisoned(to, DType::BF16);
    cpu::sum_to(x.f32, c);
    cuda::sum_to(x.gpu(), g1);
    cuda::sum_to(x.gpu(), g2);
    // fp32 partial sums of R terms against the CPU's double sums, then one bf16 rounding
    expect_bf16_close(g1, c, 1e-6 * double(R) + 1e-6, "sum_to " + what + " -> " + shape_str(to));
    CHECK(bit_equal(g1, g2));
  };
  const In x = rand_in({37, 29, 65}, 300);
  for (const Shape& to : {Shape{1, 29, 1}, Shape{37, 1, 65}, Shape{1, 1, 1}, Shape{37, 29, 1}, Shape{1, 29, 65},
                          Shape{37, 29, 65}})
    check_sum(x, to, "[37, 29, 65]");
  const In b = rand_in({16384, 768}, 301);  // a bias gradient of GPT-2 at B*T = 16384
  for (const Shape& to : {Shape{1, 768}, Shape{16384, 1}, Shape{1, 1}}) check_sum(b, to, "[16384, 768]");
  const In small = rand_in({7, 1}, 302);
  check_sum(small, {1, 1}, "[7, 1]");
  check_sum(rand_in({1, 1}, 303), {1, 1}, "[1, 1]");
  // accumulation in bf16 would stall near 256: 65536 copies of 1 + 2^-7 (exact in bf16) sum to
  // 66048 exactly in fp32, and 66048 = 2^16 (1 + 2^-7) is exact in bf16 too
  const In ones = from_f32(Tensor::full({65536, 1}, 1.0 + 1.0 / 128));
  Tensor g = poisoned({1, 1}, DType::BF16);
  cuda::sum_to(ones.gpu(), g);
  CHECK(g.item() == 66048.0);

  // add_bias: rows that are and are not a multiple of a 16-byte pack, tiny, misaligned, large
  for (const Shape& s : {Shape{1, 1}, Shape{7, 1}, Shape{129, 771}, Shape{1000, 768}, Shape{16384, 3072}}) {
    const In y = rand_in(s, 310), bias = rand_in({s[1]}, 311);
    Tensor c = y.f32.clone(), gy = y.gpu();
    cpu::add_bias(c, bias.f32);
    cuda::add_bias(gy, bias.gpu());
    expect_bf16_close(gy, c, 1e-6, "add_bias " + shape_str(s));
  }
  {
    const In y = rand_in({33, 768}, 312), bias = rand_in({768}, 313);
    Tensor c = y.f32.clone(), gy = misaligned_gpu(y.bf);
    cpu::add_bias(c, bias.f32);
    cuda::add_bias(gy, bias.gpu());
    expect_bf16_close(gy, c, 1e-6, "add_bias misaligned");
  }
}

TEST_CASE("bf16 CUDA sum_to column sums ([R, C] -> [1, C], contiguous) match the CPU and are deterministic") {
  if (!gpu_or_skip("bf16 sum_to column sums")) return;
  // gx: x's values on the GPU (maybe a misaligned view); make_out: a NaN-poisoned bf16 output
  auto check = [](const In& x, const Tensor& gx, const Shape& to, auto&& make_out, const std::string& what) {
    const int64_t R = x.f32.numel() / shape_numel(to);
    Tensor c = Tensor::empty(to), g1 = make_out(), g2 = make_out();
    cpu::sum_to(x.f32, c);
    cuda::sum_to(gx, g1);
    cuda::sum_to(gx, g2);
    // fp32 partial sums of R terms against the CPU's double sums, then one bf16 rounding
    expect_bf16_close(g1, c, 1e-6 * double(R) + 1e-6, "sum_to " + what + " -> " + shape_str(to));
    CHECK(bit_equal(g1, g2));  // no atomics, a fixed order
  };
  // the shared shapes, and GPT-2's own at B*T = 16384
  std::vector<testing::ColumnSumCase> cases = testing::column_sum_cases();
  cases.push_back({{16, 1024, 768}, {1, 1024, 768}, "the position-embedding gradient: wide and short, one chunk"});
  cases.push_back({{16384, 3072}, {1, 3072}, "the MLP bias gradient of GPT-2 at B*T = 16384"});
  uint64_t seed = 320;
  for (const testing::ColumnSumCase& k : cases) {
    const In x = rand_in(k.from, ++seed);
    check(x, x.gpu(), k.to, [&] { return poisoned(k.to, DType::BF16); }, shape_str(k.from) + " (" + k.why + ")");
  }
  {  // views whose data pointer is not 16-byte aligned take the one-column-per-thread kernel
    const In x = rand_in({513, 1024}, ++seed);
    check(x, misaligned_gpu(x.bf), {1, 1024}, [] { return poisoned({1, 1024}, DType::BF16); }, "misaligned x");
    check(x, x.gpu(), {1, 1024}, [] { return misaligned_gpu(Tensor::full({1, 1024}, NAN, DType::BF16)); },
          "misaligned out");
  }
  {  // every row counted once, sums in fp32, one rounding: small integers (exact in bf16) add up
     // exactly in fp32 in any order, so the result must be the bf16 rounding of the exact sums
    const int64_t R = 70000, C = 24;
    const std::vector<float> u = randn({R * C}, ++seed).to_floats();
    std::vector<double> v(u.size());
    for (size_t i = 0; i < u.size(); ++i) v[i] = std::round(2.0 * u[i]);
    const In x = from_f32(Tensor::from_vector(v, {R, C}));
    Tensor c = Tensor::empty({1, C}), g = poisoned({1, C}, DType::BF16);
    cpu::sum_to(x.f32, c);  // exact: integers below 2^24
    cuda::sum_to(x.gpu(), g);
    CHECK(bit_equal(g, c.to(DType::BF16)));
  }
}

namespace {

// The values of t (any device and float dtype) as doubles.
std::vector<double> doubles(const Tensor& t) {
  const Tensor d = t.to(Device::cpu()).to(DType::F64).contiguous();
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

// max over i of |got[i] - want[i]| / scale[i] (NaN when got holds a NaN). For float32/float64 GELU
// gradients scale = |dh|: an error relative to |dpre| would blow up where gelu'(pre) crosses zero.
double max_scaled_error(const Tensor& got, const Tensor& want, const std::vector<double>& scale) {
  const std::vector<double> g = doubles(got), w = doubles(want);
  REQUIRE(g.size() == w.size());
  REQUIRE(g.size() == scale.size());
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = std::fabs(g[i] - w[i]) / std::max(scale[i], 1e-300);
    if (std::isnan(e)) return e;  // an unwritten (poisoned) element
    worst = std::max(worst, e);
  }
  return worst;
}

// gelu_backward_bias_grad on the GPU against the CPU's unfused rows (unary_backward(Gelu) then
// sum_to) on the same values: pre, dh [R, C] (float64 CPU tensors holding values of dtype t; for
// bf16 the CPU computes in float32 on them). gpre, gdh, gdpre, gdb: the GPU operands of dtype t
// (fresh, or views that are not 16-byte aligned); gdpre and gdb NaN-poisoned. Checks dpre and db
// against the CPU, and dpre bit for bit against cuda::unary_backward (the same derivative).
void check_gelu_bias_grad(DType t, const Tensor& pre_cpu, const Tensor& dh_cpu, const Tensor& gpre, const Tensor& gdh,
                          const Tensor& gdpre, const Tensor& gdb, const std::string& what) {
  CAPTURE(what);
  const int64_t C = pre_cpu.size(-1), R = pre_cpu.numel() / C;
  const DType ct = t == DType::BF16 ? DType::F32 : t;
  const Tensor pre = pre_cpu.to(ct), dh = dh_cpu.to(ct);
  Tensor cd = Tensor::empty({R, C}, ct), cb = Tensor::empty({1, C}, ct);
  cpu::unary_backward(int(UnaryOp::Gelu), pre, Tensor(), dh, cd, 0);
  cpu::sum_to(cd, cb);
  cuda::gelu_backward_bias_grad(gpre, gdh, gdpre, gdb);
  if (t == DType::BF16) {
    expect_bf16_close(gdpre, cd, 1e-5, "dpre " + what);
    // fp32 sums of R fp32 products against the CPU's double sums, then one bf16 rounding
    expect_bf16_close(gdb, cb, 1e-6 * double(R) + 1e-5, "db " + what);
  } else {
    // errors relative to the size of the terms: |dh| for dpre, sum_r |dh[r, c]| for db[c]
    const bool f64 = t == DType::F64;
    const std::vector<double> h = doubles(dh_cpu);
    std::vector<double> hs(size_t(C), 0.0), ah(h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      ah[i] = std::fabs(h[i]);
      hs[i % size_t(C)] += ah[i];
    }
    const double ed = max_scaled_error(gdpre, cd, ah), eb = max_scaled_error(gdb, cb, hs);
    CAPTURE(ed);
    CAPTURE(eb);
    // fp32: the GPU's GELU derivative (tanh under fast math, then products) is good to a few 1e-6
    // of |dh|: 2.1e-6 measured on the H100 against the CPU's double-free float path.
    CHECK(ed <= (f64 ? 1e-14 : 5e-6));
    CHECK(eb <= (f64 ? 1e-13 : 2e-5));  // plus fp32 partial sums against the CPU's double sums
  }
  Tensor gu = poisoned({R, C}, t);
  cuda::unary_backward(int(UnaryOp::Gelu), gpre, Tensor(), gdh, gu, 0);
  CHECK(bit_equal(gdpre, gu));
}


}  // namespace

TEST_CASE("CUDA gelu_backward_bias_grad matches the CPU (bf16, f32, f64), is deterministic, works in place") {
  if (!gpu_or_skip("gelu_backward_bias_grad")) return;
  uint64_t seed = 800;
  for (DType t : {DType::BF16, DType::F32, DType::F64}) {
    for (int64_t R : {int64_t(1), int64_t(5000)}) {
      // 3072, 768: 16-byte packs (one row chunk for R = 1, partial sums for R = 5000); 771, 1: one
      // column per thread
      for (int64_t C : {int64_t(3072), int64_t(768), int64_t(771), int64_t(1)}) {
        const std::string what = std::string(dtype_name(t)) + " " + shape_str({R, C});
        // pre and dh rounded to t first, so that the CPU and the GPU see the same values
        const Tensor pre = randn({R, C}, ++seed, 2.0).to(t).to(DType::F64);
        const Tensor dh = randn({R, C}, ++seed).to(t).to(DType::F64);
        const Tensor gpre = pre.to(t).to(kGpu), gdh = dh.to(t).to(kGpu);
        Tensor d1 = poisoned({R, C}, t), b1 = poisoned({C}, t);
        check_gelu_bias_grad(t, pre, dh, gpre, gdh, d1, b1, what);
        // determinism: a second run gives the same bits
        Tensor d2 = poisoned({R, C}, t), b2 = poisoned({C}, t);
        cuda::gelu_backward_bias_grad(gpre, gdh, d2, b2);
        CHECK(bit_equal(d1, d2));
        CHECK(bit_equal(b1, b2));
        // dpre aliasing dh, as the MLP backward calls it: the same bits
        Tensor x = gdh.clone(), b3 = poisoned({C}, t);
        cuda::gelu_backward_bias_grad(gpre, x, x, b3);
        CHECK(bit_equal(x, d1));
        CHECK(bit_equal(b3, b1));
      }
    }
  }
  // GPT-2 124M's MLP at B*T = 16384 in bf16
  const Tensor pre = randn({16384, 3072}, ++seed, 2.0).to(DType::BF16).to(DType::F64);
  const Tensor dh = randn({16384, 3072}, ++seed).to(DType::BF16).to(DType::F64);
  check_gelu_bias_grad(DType::BF16, pre, dh, pre.to(DType::BF16).to(kGpu), dh.to(DType::BF16).to(kGpu),
                       poisoned({16384, 3072}, DType::BF16), poisoned({3072}, DType::BF16), "[16384, 3072]");
}

TEST_CASE("CUDA gelu_backward_bias_grad on views that are not 16-byte aligned (one column per thread)") {
  if (!gpu_or_skip("gelu_backward_bias_grad misaligned")) return;
  uint64_t seed = 850;
  for (DType t : {DType::BF16, DType::F32}) {
    const int64_t R = 513, C = 1024;
    const Tensor pre = randn({R, C}, ++seed, 2.0).to(t).to(DType::F64);
    const Tensor dh = randn({R, C}, ++seed).to(t).to(DType::F64);
    const Tensor gpre = pre.to(t).to(kGpu), gdh = dh.to(t).to(kGpu);
    const Tensor nan_rc = Tensor::full({R, C}, NAN, DType::F64), nan_c = Tensor::full({C}, NAN, DType::F64);
    const std::string name = std::string(dtype_name(t)) + " " + shape_str({R, C}) + " misaligned ";
    check_gelu_bias_grad(t, pre, dh, misaligned_gpu(pre, t), gdh, poisoned({R, C}, t), poisoned({C}, t),
                         name + "pre");
    check_gelu_bias_grad(t, pre, dh, gpre, misaligned_gpu(dh, t), poisoned({R, C}, t), poisoned({C}, t),
                         name + "dh");
    check_gelu_bias_grad(t, pre, dh, gpre, gdh, misaligned_gpu(nan_rc, t), poisoned({C}, t), name + "dpre");
    check_gelu_bias_grad(t, pre, dh, gpre, gdh, poisoned({R, C}, t), misaligned_gpu(nan_c, t), name + "db");
  }
  {  // no rows: db is zero; the argument checks are the CPU's
    Tensor none = Tensor::empty({0, 8}, DType::BF16, kGpu), b = poisoned({8}, DType::BF16);
    cuda::gelu_backward_bias_grad(none, none, none, b);
    CHECK(bit_equal(b, Tensor::zeros({8}, DType::BF16)));
    const Tensor p = Tensor::empty({4, 8}, DType::BF16, kGpu);
    CHECK_THROWS_WITH_AS(cuda::gelu_backward_bias_grad(p, p, p, Tensor::empty({4}, DType::BF16, kGpu)),
                         doctest::Contains("db must be 8"), Error);
    CHECK_THROWS_AS(cuda::gelu_backward_bias_grad(p, p, p, Tensor::empty({8}, DType::BF16)), Error);  // db on the CPU
  }
}

TEST_CASE("bf16 and float64 CUDA softmax forward/backward match the CPU") {
  if (!gpu_or_skip("bf16 and f64 softmax")) return;
  for (const Shape& s : {Shape{1, 1}, Shape{3, 7}, Shape{129, 771}, Shape{37, 1000}, Shape{5, 50257}}) {
    const In x = rand_in(s, 400, 3.0), dy = rand_in(s, 401);
    Tensor c = Tensor::empty(s), g = poisoned(s, DType::BF16);
    cpu::softmax_forward(x.f32, c);
    cuda::softmax_forward(x.gpu(), g);
    expect_bf16_close(g, c, 1e-6, "softmax " + shape_str(s));
    const In y = from_f32(c);
    Tensor cd = Tensor::empty(s), gd = poisoned(s, DType::BF16);
    cpu::softmax_backward(y.f32, dy.f32, cd);
    cuda::softmax_backward(y.gpu(), dy.gpu(), gd);
    expect_bf16_close(gd, cd, 1e-6, "softmax backward " + shape_str(s));
  }
  for (const Shape& s : {Shape{37, 1000}, Shape{3, 5000}}) {
    const Tensor x = randn(s, 402, 3.0).to(DType::F64), dy = randn(s, 403).to(DType::F64);
    Tensor c = Tensor::empty(s, DType::F64), g = poisoned(s, DType::F64);
    cpu::softmax_forward(x, c);
    cuda::softmax_forward(x.to(kGpu), g);
    expect_close(g, c, 1e-12, "softmax f64 " + shape_str(s));
    Tensor cd = Tensor::empty(s, DType::F64), gd = poisoned(s, DType::F64);
    cpu::softmax_backward(c, dy, cd);
    cuda::softmax_backward(c.to(kGpu), dy.to(kGpu), gd);
    expect_close(gd, cd, 1e-12, "softmax backward f64 " + shape_str(s));
  }
}

namespace {

// Mostly a few popular ids (long runs of repeats), every third spread over the vocabulary, both ends.
Tensor repeated_ids(int64_t n, int64_t V, uint64_t seed) {
  std::vector<int32_t> few = testing::random_ids({n}, std::min<int64_t>(V, 97), seed).to_ints();
  const std::vector<int32_t> many = testing::random_ids({n}, V, seed + 1).to_ints();
  for (size_t i = 0; i < few.size(); i += 3) few[i] = many[i];
  few[0] = 0;
  if (n > 1) few[1] = int32_t(V - 1);
  return Tensor::from_ints(few, {n});
}

}  // namespace

TEST_CASE("bf16 CUDA embedding forward/backward match the CPU, backward is bitwise deterministic") {
  if (!gpu_or_skip("bf16 embedding")) return;
  struct Case {
    int64_t V, D, N;
  };
  for (Case k : {Case{50257, 768, 4099}, Case{11, 5, 1}, Case{11, 5, 300}, Case{1000, 771, 129}}) {
    const std::string name = "V" + std::to_string(k.V) + " D" + std::to_string(k.D) + " N" + std::to_string(k.N);
    const In w = rand_in({k.V, k.D}, 500);
    const Tensor id = repeated_ids(k.N, k.V, 501), gid = id.to(kGpu);
    Tensor c = Tensor::empty({k.N, k.D}), g = poisoned({k.N, k.D}, DType::BF16);
    cpu::embedding_forward(w.f32, id, c);
    cuda::embedding_forward(w.gpu(), gid, g);
    CHECK(bit_equal(g, c.to(DType::BF16)));  // a gather: exact
    const In dout = rand_in({k.N, k.D}, 502), dw0 = rand_in({k.V, k.D}, 503, 0.1);  // backward accumulates
    Tensor cw = dw0.f32.clone(), g1 = dw0.gpu(), g2 = dw0.gpu();
    cpu::embedding_backward(id, dout.f32, cw);
    cuda::embedding_backward(gid, dout.gpu(), g1);
    cuda::embedding_backward(gid, dout.gpu(), g2);
    // fp32 sums over a run of repeats (the CPU adds in the same order), one bf16 rounding per element
    expect_bf16_close(g1, cw, 1e-5, "embedding_backward " + name);
    CHECK(bit_equal(g1, g2));
  }
  {  // misaligned weight rows fall back to element copies
    const In w = rand_in({64, 24}, 510);
    const Tensor id = repeated_ids(50, 64, 511);
    Tensor c = Tensor::empty({50, 24}), g = poisoned({50, 24}, DType::BF16);
    cpu::embedding_forward(w.f32, id, c);
    cuda::embedding_forward(misaligned_gpu(w.bf), id.to(kGpu), g);
    CHECK(bit_equal(g, c.to(DType::BF16)));
  }
  {  // float64 on the GPU
    const Tensor w = randn({300, 17}, 520).to(DType::F64), dout = randn({77, 17}, 521).to(DType::F64);
    const Tensor id = repeated_ids(77, 300, 522);
    Tensor c = Tensor::empty({77, 17}, DType::F64), g = poisoned({77, 17}, DType::F64);
    cpu::embedding_forward(w, id, c);
    cuda::embedding_forward(w.to(kGpu), id.to(kGpu), g);
    expect_close(g, c, 0, "embedding f64");
    Tensor cw = Tensor::zeros({300, 17}, DType::F64), gw = Tensor::zeros({300, 17}, DType::F64, kGpu);
    cpu::embedding_backward(id, dout, cw);
    cuda::embedding_backward(id.to(kGpu), dout.to(kGpu), gw);
    expect_close(gw, cw, 1e-13, "embedding_backward f64");
  }
}

TEST_CASE("float32 / float64 CUDA elementwise still match the CPU on the new paths (tails, misaligned)") {
  if (!gpu_or_skip("f32/f64 elementwise")) return;
  for (DType t : {DType::F32, DType::F64}) {
    const double tol = t == DType::F32 ? 2e-6 : 1e-14;
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1001)}) {
      const Tensor a = randn({n}, 600).to(t), b = randn({n}, 601).to(t);
      for (bool mis : {false, true}) {
        if (mis && n == 1) continue;
        // misaligned: views starting one element into the buffer
        auto dev = [&](const Tensor& x) {
          if (!mis) return x.to(kGpu);
          Tensor base = Tensor::empty({n + 1}, t, kGpu);
          Tensor v = base.slice(0, 1, n + 1);
          v.copy_from(x);
          return v;
        };
        const std::string name = std::string(dtype_name(t)) + " n" + std::to_string(n) + (mis ? " misaligned" : "");
        for (int op = 0; op < 4; ++op) {
          Tensor c = Tensor::empty({n}, t), g = poisoned({n}, t);
          cpu::binary(op, a, b, c);
          cuda::binary(op, dev(a), dev(b), g);
          expect_close(g, c, tol, "binary " + name);
        }
        Tensor c = Tensor::empty({n}, t), g = poisoned({n}, t);
        cpu::unary(int(UnaryOp::Gelu), a, c, 1, 0);
        cuda::unary(int(UnaryOp::Gelu), dev(a), g, 1, 0);
        expect_close(g, c, tol, "gelu " + name);
        Tensor cd = b.clone(), gd = dev(b);
        cpu::unary_backward(int(UnaryOp::Gelu), a, c, a, cd, 1);
        cuda::unary_backward(int(UnaryOp::Gelu), dev(a), g, dev(a), gd, 1);
        expect_close(gd, cd, tol, "gelu backward " + name);
        Tensor cy = a.clone(), gy = dev(a);
        cpu::axpy(cy, b, 0.5);
        cuda::axpy(gy, dev(b), 0.5);
        expect_close(gy, cy, tol, "axpy " + name);
      }
    }
  }
}

#ifdef ARIA_WITH_CUDA

TEST_CASE("bf16 elementwise bandwidth (ARIA_BF16_BENCH=1)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_BF16_BENCH")) return;
  if (!gpu_or_skip("bf16 bandwidth timing")) return;
  for (DType t : {DType::BF16, DType::F32}) {
    for (int64_t C : {int64_t(768), int64_t(3072)}) {
      const int64_t N = 16384, n = N * C;
      const double es = double(dtype_size(t));
      Tensor a = Tensor::empty({N, C}, t, kGpu), b = Tensor::empty({N, C}, t, kGpu);
      Tensor o = Tensor::empty({N, C}, t, kGpu), bias = Tensor::empty({C}, t, kGpu);
      Rng(700).fill_normal(a, 0, 1);
      Rng(701).fill_normal(b, 0, 1);
      Rng(702).fill_normal(bias, 0, 1);
      auto report = [&](const char* what, double ms, double bytes) {
        std::printf("%-5s [%lld, %lld] %-14s %8.1f us  %7.0f GB/s\n", dtype_name(t), (long long)N, (long long)C, what,
                    ms * 1e3, bytes / (ms * 1e-3) / 1e9);
      };
      report("add", testing::cuda_mean_ms([&] { cuda::binary(0, a, b, o); }), 3 * n * es);
      report("gelu fwd", testing::cuda_mean_ms([&] { cuda::unary(int(UnaryOp::Gelu), a, o, 1, 0); }), 2 * n * es);
      report("gelu bwd", testing::cuda_mean_ms([&] { cuda::unary_backward(int(UnaryOp::Gelu), a, Tensor(), b, o, 0); }),
             3 * n * es);
      report("gelu bwd acc", testing::cuda_mean_ms([&] { cuda::unary_backward(int(UnaryOp::Gelu), a, Tensor(), b, o, 1); }),
             4 * n * es);
      report("add_bias", testing::cuda_mean_ms([&] { cuda::add_bias(o, bias); }), 2 * n * es + C * es);
      Tensor f = Tensor::empty({N, C}, t == DType::BF16 ? DType::F32 : DType::BF16, kGpu);
      report("cast", testing::cuda_mean_ms([&] { cuda::copy_cast(a, f); }), n * (es + double(dtype_size(f.dtype()))));
      Tensor s = Tensor::empty({1, C}, t, kGpu);
      report("sum_to [1, C]", testing::cuda_mean_ms([&] { cuda::sum_to(a, s); }), n * es);
    }
  }
  // sum_to's column sums at the bias-gradient shapes of GPT-2 124M (B*T = 16384) and the
  // position-embedding gradient [16, 1024*768], against the floor of reading x once at 3.0 TB/s.
  // "cold": x rotates over copies filling 4x the 50 MB L2, as in training, where x was written
  // long before; "warm": one x, summed again and again (smaller ones then partly stay in L2).
  std::printf("bf16 sum_to column sums (floor: bytes read / 3.0 TB/s)\n");
  for (const Shape& s : {Shape{16384, 3072}, Shape{16384, 2304}, Shape{16384, 768}, Shape{16, 786432}}) {
    const int64_t n = shape_numel(s);
    const double bytes = 2.0 * double(n), floor_us = bytes / 3.0e12 * 1e6;
    std::vector<Tensor> xs(size_t(std::max(2.0, std::ceil(200e6 / bytes))));
    for (size_t i = 0; i < xs.size(); ++i) {
      xs[i] = Tensor::empty(s, DType::BF16, kGpu);
      Rng(710 + i).fill_normal(xs[i], 0, 1);
    }
    Tensor o = Tensor::empty({1, s[1]}, DType::BF16, kGpu);
    size_t next = 0;
    const double cold = testing::cuda_mean_ms([&] { cuda::sum_to(xs[next++ % xs.size()], o); }) * 1e3;
    const double warm = testing::cuda_mean_ms([&] { cuda::sum_to(xs[0], o); }) * 1e3;
    std::printf("  [%6lld, %6lld] -> [%6lld]  cold %7.1f us (%.2fx floor)  warm %7.1f us  floor %5.1f us\n",
                (long long)s[0], (long long)s[1], (long long)s[1], cold, cold / floor_us, warm, floor_us);
  }
  // GELU's backward with the bias gradient at GPT-2 124M's MLP ([16384, 3072]): the fused row against
  // the unfused pair it replaces. Floor of the fused row: read pre and dh, write dpre (3 x 100.7 MB at
  // 3.0 TB/s); the pair also reads dpre back for the column sums. Each call moves 300 MB, 6x the L2.
  {
    const int64_t R = 16384, C = 3072;
    const double floor_us = 3.0 * 2.0 * double(R * C) / 3.0e12 * 1e6;
    Tensor pre = Tensor::empty({R, C}, DType::BF16, kGpu), dh = Tensor::empty({R, C}, DType::BF16, kGpu);
    Tensor dpre = Tensor::empty({R, C}, DType::BF16, kGpu), db = Tensor::empty({C}, DType::BF16, kGpu);
    Rng(720).fill_normal(pre, 0, 2);
    Rng(721).fill_normal(dh, 0, 1);
    const int gelu = int(UnaryOp::Gelu);
    const double bwd = testing::cuda_mean_ms([&] { cuda::unary_backward(gelu, pre, Tensor(), dh, dpre, 0); }) * 1e3;
    const double sum = testing::cuda_mean_ms([&] { cuda::sum_to(dpre, db.reshape({1, C})); }) * 1e3;
    const double fused = testing::cuda_mean_ms([&] { cuda::gelu_backward_bias_grad(pre, dh, dpre, db); }) * 1e3;
    std::printf("bf16 gelu_backward_bias_grad [%lld, %lld] (floor: read pre + dh, write dpre / 3.0 TB/s = %.1f us)\n",
                (long long)R, (long long)C, floor_us);
    std::printf("  unary_backward + sum_to  %7.1f us (%5.1f + %5.1f, %.2fx floor)\n", bwd + sum, bwd, sum,
                (bwd + sum) / floor_us);
    std::printf("  gelu_backward_bias_grad  %7.1f us (%.2fx floor)\n", fused, fused / floor_us);
  }
  CHECK(true);
}

#endif
