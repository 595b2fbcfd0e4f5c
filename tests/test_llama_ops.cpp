// The Llama-family ops (core/ops_llama.h) on the CPU where the op-case table cannot say it: known
// values, Hugging Face's rope formulas, strided and aliased kernel calls, rope against its rotate_half
// composition (tables built per call), and refusals of bad input. The rows of
// tests/support/cases_llama.cpp check gradients in float64, CUDA vs CPU, and rmsnorm, add_rmsnorm,
// swiglu, swiglu_packed and gqa_attention against their plain definitions (the rows' references).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "tests/support/test_util.h"
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tests/support/op_cases.h"

using namespace aria;
using testing::relative_l2;

namespace {

Tensor randn64(const Shape& s, uint64_t seed, bool grad = true) {
  Tensor t = Tensor::empty(s, DType::F64);
  Rng(seed).fill_normal(t, 0.0, 1.0);
  t.set_requires_grad(grad);
  return t;
}

using testing::value_and_grads;

void check_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double tol = 1e-12) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a[i].defined());
    REQUIRE(b[i].defined());
    CHECK(relative_l2(a[i], b[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("rmsnorm saves float32 statistics for float32 input, like layernorm") {
  Tensor x = Tensor::from_vector({3, 4, 0, 0}, {2, 2}), w = Tensor::from_vector({1, 2}, {2});
  Tensor y = Tensor::empty({2, 2}), rstd = Tensor::empty({2});
  cpu::rmsnorm_forward(x, w, y, rstd, 0.0);
  // row 0: mean(x^2) = 12.5, rstd = 1 / sqrt(12.5); row 1: all zero with eps 0 gives inf * 0 -> NaN,
  // so use eps below; here only row 0 is checked.
  CHECK(rstd.to_doubles()[0] == doctest::Approx(1.0 / std::sqrt(12.5)).epsilon(1e-7));
  CHECK(y.to_doubles()[1] == doctest::Approx(4.0 * 2.0 / std::sqrt(12.5)).epsilon(1e-6));
  Tensor y2 = Tensor::empty({2, 2}), rstd2 = Tensor::empty({2});
  cpu::rmsnorm_forward(x, w, y2, rstd2, 1e-6);
  CHECK(rstd2.to_doubles()[1] == doctest::Approx(1e3).epsilon(1e-6));  // zero row: 1 / sqrt(eps)
  CHECK(y2.to_doubles()[2] == 0.0);
}

TEST_CASE("add_rmsnorm with only the sum used: w gets no gradient, x and r the upstream one") {
  Tensor x = randn64({2, 5, 12}, 3), r = randn64({2, 5, 12}, 4), w = randn64({12}, 5);
  Tensor s = ops::add_rmsnorm(x, r, w, 1e-6).first;
  ops::sum(s).backward();
  CHECK(!w.grad().defined());
  CHECK(relative_l2(x.grad(), Tensor::full(x.shape(), 1.0, DType::F64)) == 0.0);
}

TEST_CASE("rmsnorm_backward: dres added to dx, also aliased, and dw alone") {
  const int64_t N = 6, C = 9;
  Tensor x = randn64({N, C}, 6, false), w = randn64({C}, 7, false), dy = randn64({N, C}, 8, false);
  Tensor dres = randn64({N, C}, 9, false);
  Tensor y = Tensor::empty({N, C}, DType::F64), rstd = Tensor::empty({N}, DType::F64);
  cpu::rmsnorm_forward(x, w, y, rstd, 1e-5);
  Tensor dx = Tensor::empty({N, C}, DType::F64), dw = Tensor::zeros({C}, DType::F64);
  cpu::rmsnorm_backward(x, w, rstd, dy, Tensor(), dx, dw);
  Tensor dx_res = Tensor::empty({N, C}, DType::F64), dw2 = Tensor::zeros({C}, DType::F64);
  cpu::rmsnorm_backward(x, w, rstd, dy, dres, dx_res, dw2);
  CHECK(relative_l2(dx_res, ops::add(dx, dres)) <= 1e-15);
  Tensor io = dres.clone();
  cpu::rmsnorm_backward(x, w, rstd, dy, io, io, Tensor());
  CHECK(relative_l2(io, dx_res) == 0.0);
  Tensor dw3 = Tensor::full({C}, 1.0, DType::F64);  // accumulates
  cpu::rmsnorm_backward(x, w, rstd, dy, Tensor(), Tensor(), dw3);
  CHECK(relative_l2(dw3, ops::affine(dw, 1.0, 1.0)) <= 1e-15);
}

TEST_CASE("rmsnorm ops and kernels refuse bad input with a clear error") {
  Tensor x = Tensor::zeros({2, 4}), w = Tensor::zeros({4});
  CHECK_THROWS_WITH_AS(ops::rmsnorm(x, Tensor::zeros({3}), 1e-5), doctest::Contains("w must be [4]"), Error);
  CHECK_THROWS_WITH_AS(ops::rmsnorm(x, Tensor::zeros({4}, DType::F64), 1e-5), doctest::Contains("dtypes differ"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::rmsnorm(Tensor::zeros({2, 0}), Tensor::zeros({0}), 1e-5),
                       doctest::Contains("non-empty last dimension"), Error);
  CHECK_THROWS_WITH_AS(ops::rmsnorm(Tensor::zeros({2, 4}, DType::BF16), Tensor::zeros({4}, DType::BF16), 1e-5),
                       doctest::Contains("bfloat16 on the CPU"), Error);
  CHECK_THROWS_WITH_AS(ops::rmsnorm(x, w, -1.0), doctest::Contains("eps must be finite"), Error);
  CHECK_THROWS_WITH_AS(ops::add_rmsnorm(x, Tensor::zeros({4, 2}), w, 1e-5), doctest::Contains("same shape"), Error);
  CHECK_THROWS_WITH_AS(ops::add_rmsnorm(x, Tensor::zeros({2, 4}, DType::F64), w, 1e-5),
                       doctest::Contains("dtypes differ"), Error);
  Tensor y = Tensor::empty({2, 4}), rstd = Tensor::empty({2});
  CHECK_THROWS_WITH_AS(cpu::rmsnorm_forward(x, w, y, Tensor::empty({3}), 1e-5), doctest::Contains("rstd must be"),
                       Error);
  CHECK_THROWS_WITH_AS(cpu::add_rmsnorm_forward(x, Tensor(), w, Tensor(), y, rstd, 1e-5),
                       doctest::Contains("r and sum must be defined"), Error);
  CHECK_THROWS_WITH_AS(cpu::rmsnorm_backward(x, w, rstd, x, x, Tensor(), Tensor()),
                       doctest::Contains("dres given without dx"), Error);
  CHECK_THROWS_WITH_AS(cpu::rmsnorm_backward(x, w, rstd, Tensor::zeros({2, 3}), Tensor(), y, Tensor()),
                       doctest::Contains("dy must be"), Error);
}

// ---- SwiGLU ----

TEST_CASE("swiglu kernels take strided rows and may write the gradients over their inputs") {
  const int64_t N = 5, H = 7;
  Tensor buf = randn64({N, 2 * H}, 14, false), dout = randn64({N, H}, 15, false);
  Tensor gate = buf.slice(1, 0, H), up = buf.slice(1, H, 2 * H);
  Tensor out = Tensor::empty({N, H}, DType::F64);
  cpu::swiglu_forward(gate, up, out);
  Tensor want = ops::swiglu(gate.contiguous(), up.contiguous());
  CHECK(relative_l2(out, want) == 0.0);
  Tensor dg = Tensor::empty({N, H}, DType::F64), du = Tensor::empty({N, H}, DType::F64);
  cpu::swiglu_backward(gate, up, dout, dg, du);
  Tensor inplace = buf.clone();
  cpu::swiglu_backward(inplace.slice(1, 0, H), inplace.slice(1, H, 2 * H), dout, inplace.slice(1, 0, H),
                       inplace.slice(1, H, 2 * H));
  CHECK(relative_l2(inplace.slice(1, 0, H).contiguous(), dg) == 0.0);
  CHECK(relative_l2(inplace.slice(1, H, 2 * H).contiguous(), du) == 0.0);
}

TEST_CASE("swiglu refuses bad input with a clear error") {
  CHECK_THROWS_WITH_AS(ops::swiglu(Tensor::zeros({2, 4}), Tensor::zeros({2, 3})), doctest::Contains("same shape"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::swiglu(Tensor::zeros({2, 4}), Tensor::zeros({2, 4}, DType::F64)),
                       doctest::Contains("dtypes differ"), Error);
  CHECK_THROWS_WITH_AS(ops::swiglu_packed(Tensor::zeros({2, 5})), doctest::Contains("even last dimension"), Error);
  CHECK_THROWS_WITH_AS(ops::swiglu(Tensor::zeros({2}, DType::I32), Tensor::zeros({2}, DType::I32)),
                       doctest::Contains("must be float32 or float64"), Error);
  Tensor buf = Tensor::zeros({4, 8});
  CHECK_THROWS_WITH_AS(cpu::swiglu_forward(buf.slice(1, 0, 4), buf.slice(1, 4, 8), Tensor::zeros({4, 3})),
                       doctest::Contains("out must be"), Error);
  CHECK_THROWS_WITH_AS(cpu::swiglu_forward(buf.transpose(0, 1), buf.transpose(0, 1), Tensor::zeros({8, 4})),
                       doctest::Contains("unit column stride"), Error);
}

// ---- rotary embeddings ----

namespace {

// Hugging Face's formula in double, written independently of core/ops_llama.cpp: the default inverse
// frequency 1 / theta^(2i/D), then llama3's piecewise map on the wavelength.
std::vector<double> inv_freq_reference(int D, double theta, const ops::RopeScaling& s) {
  std::vector<double> out;
  for (int i = 0; i < D / 2; ++i) {
    double f = 1.0 / std::pow(theta, 2.0 * i / D);
    if (s.type == "llama3") {
      const double wavelen = 2 * M_PI / f;
      const double lo = s.original_max_position_embeddings / s.low_freq_factor;
      const double hi = s.original_max_position_embeddings / s.high_freq_factor;
      if (wavelen > lo) f /= s.factor;
      else if (wavelen >= hi) {
        const double t = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                         (s.high_freq_factor - s.low_freq_factor);
        f = (1 - t) * f / s.factor + t * f;
      }
    }
    out.push_back(f);
  }
  return out;
}

ops::RopeScaling llama31() {  // Llama 3.1 / 3.2's config.json rope_scaling
  ops::RopeScaling s;
  s.type = "llama3";
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_position_embeddings = 8192;
  return s;
}

// rotate_half with plain ops on x [R, n*D + rest]: the first n heads rotated, the rest passed.
Tensor rope_plain(const Tensor& x, const Tensor& cos, const Tensor& sin, int n, int D) {
  std::vector<Tensor> parts;
  const Tensor c = ops::concat({cos, cos}, -1), s = ops::concat({sin, sin}, -1);
  for (int h = 0; h < n; ++h) {
    Tensor xh = x.slice(1, int64_t(h) * D, int64_t(h + 1) * D);
    Tensor x1 = xh.slice(1, 0, D / 2), x2 = xh.slice(1, D / 2, D);
    Tensor rot = ops::concat({ops::scale(x2, -1.0), x1}, -1);
    parts.push_back(ops::add(ops::mul(xh, c), ops::mul(rot, s)));
  }
  if (x.size(1) > int64_t(n) * D) parts.push_back(x.slice(1, int64_t(n) * D, x.size(1)));
  return ops::concat(parts, -1);
}

}  // namespace

TEST_CASE("rope_inv_freq: default and llama3 frequencies follow Hugging Face's formula") {
  for (int D : {64, 128}) {
    CAPTURE(D);
    auto def = ops::rope_inv_freq(D, 500000.0);
    auto want = inv_freq_reference(D, 500000.0, {});
    REQUIRE(def.size() == size_t(D / 2));
    CHECK(def[0] == 1.0f);
    for (size_t i = 0; i < def.size(); ++i) CHECK(def[i] == doctest::Approx(want[i]).epsilon(3e-7));
    auto l3 = ops::rope_inv_freq(D, 500000.0, llama31());
    auto want3 = inv_freq_reference(D, 500000.0, llama31());
    int kept = 0, divided = 0, blended = 0;
    for (size_t i = 0; i < l3.size(); ++i) {
      CAPTURE(i);
      CHECK(l3[i] == doctest::Approx(want3[i]).epsilon(1e-6));
      if (l3[i] == def[i]) ++kept;
      else if (l3[i] == def[i] / 8.0f) ++divided;
      else {
        ++blended;
        CHECK(l3[i] < def[i]);
        CHECK(l3[i] > def[i] / 8.0f);
      }
    }
    CHECK(kept > 0);  // the three regimes all occur for Llama 3.1's head
    CHECK(divided > 0);
    CHECK(blended > 0);
  }
  // frequencies are monotone after scaling as before
  auto l3 = ops::rope_inv_freq(128, 500000.0, llama31());
  for (size_t i = 1; i < l3.size(); ++i) CHECK(l3[i] < l3[i - 1]);
}

TEST_CASE("rope_tables: cos and sin of the float32 angle, evaluated in double") {
  const std::vector<int32_t> pos{0, 1, 7, 8191, 131071};
  auto f = ops::rope_inv_freq(8, 10000.0);
  Tensor inv = Tensor::from_floats(f, {4});
  auto [cos, sin] = ops::rope_tables(Tensor::from_ints(pos, {5}), inv);
  REQUIRE(cos.shape() == Shape{5, 4});
  CHECK(cos.dtype() == DType::F32);
  auto c = cos.to_floats(), s = sin.to_floats();
  for (size_t p = 0; p < pos.size(); ++p)
    for (size_t j = 0; j < 4; ++j) {
      const float angle = float(pos[p]) * f[j];
      CHECK(c[p * 4 + j] == float(std::cos(double(angle))));
      CHECK(s[p * 4 + j] == float(std::sin(double(angle))));
    }
}

TEST_CASE("rope equals the rotate_half composition, and its backward is the inverse rotation") {
  const int D = 6, n = 3, W = n * D + 4;  // q (2 heads) and k (1 head) rotated, 4 columns of v passed
  std::vector<double> f;
  for (float v : ops::rope_inv_freq(D, 10000.0)) f.push_back(v);
  auto [cos, sin] = ops::rope_tables(Tensor::from_ints({4, 0, 9}, {3}), Tensor::from_vector(f, {3}, DType::F64));
  Tensor x = randn64({2, 3, W}, 21);
  auto fused = value_and_grads([&] { return ops::rope(x, cos, sin, n, D); }, {x});
  auto plain = value_and_grads(
      [&] {
        // row (b, t) at table row t: repeat the tables over the batch
        Tensor c = ops::concat({cos, cos}, 0), s = ops::concat({sin, sin}, 0);
        return rope_plain(x.reshape({6, W}), c, s, n, D).reshape({2, 3, W});
      },
      {x});
  check_equal(fused, plain);
  // a rotation preserves each pair's norm, and rotating back recovers x
  Tensor y = ops::rope(x.detach(), cos, sin, n, D);
  Tensor back = Tensor::empty({6, W}, DType::F64);
  cpu::rope_apply(y.reshape({6, W}), cos, sin, back, n, D, true);
  CHECK(relative_l2(back, x.detach().reshape({6, W})) <= 1e-15);
  // in place
  Tensor io = x.detach().clone().reshape({6, W});
  cpu::rope_apply(io, cos, sin, io, n, D, false);
  CHECK(relative_l2(io, y.reshape({6, W})) == 0.0);
}

TEST_CASE("rope refuses bad input with a clear error") {
  auto [cos, sin] = ops::rope_tables(Tensor::from_ints({0, 1}, {2}), Tensor::from_floats({1.f, 0.1f}, {2}));
  Tensor x = Tensor::zeros({2, 2, 8});
  CHECK_THROWS_WITH_AS(ops::rope(x, cos, sin, 3, 4), doctest::Contains("do not fit rows of 8"), Error);
  CHECK_THROWS_WITH_AS(ops::rope(x, cos, sin, 1, 3), doctest::Contains("head_dim must be even"), Error);
  CHECK_THROWS_WITH_AS(ops::rope(x, cos, sin, 1, 8), doctest::Contains("cos must be [P, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::rope(Tensor::zeros({3, 8}), cos, sin, 2, 4), doctest::Contains("not a multiple"), Error);
  CHECK_THROWS_WITH_AS(ops::rope(Tensor::zeros({2, 8}, DType::F64), cos, sin, 2, 4),
                       doctest::Contains("cos and sin must be float64"), Error);
  CHECK_THROWS_WITH_AS(ops::rope_tables(Tensor::from_ints({0, -3}, {2}), Tensor::from_floats({1.f}, {1})),
                       doctest::Contains("negative"), Error);
  CHECK_THROWS_WITH_AS(ops::rope_tables(Tensor::from_ints({0}, {1}), Tensor::from_ints({1}, {1})),
                       doctest::Contains("inv_freq must be float32 or float64"), Error);
  ops::RopeScaling yarn;
  yarn.type = "yarn";
  CHECK_THROWS_WITH_AS(ops::rope_inv_freq(64, 10000.0, yarn), doctest::Contains("\"yarn\" is not supported"), Error);
  CHECK_THROWS_WITH_AS(ops::rope_inv_freq(63, 10000.0), doctest::Contains("head_dim must be even"), Error);
  CHECK_THROWS_WITH_AS(ops::rope_inv_freq(64, 0.0), doctest::Contains("rope_theta must be positive"), Error);
  ops::RopeScaling bad = llama31();
  bad.high_freq_factor = 1;
  CHECK_THROWS_WITH_AS(ops::rope_inv_freq(64, 10000.0, bad), doctest::Contains("low_freq_factor < high_freq_factor"),
                       Error);
}

// ---- grouped-query attention ----

TEST_CASE("gqa_attention refuses bad input with a clear error") {
  Tensor qkv = Tensor::zeros({1, 3, 16});
  CHECK_THROWS_WITH_AS(ops::gqa_attention(qkv, 3, 2), doctest::Contains("must divide n_head"), Error);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(qkv, 4, 0), doctest::Contains("must divide n_head"), Error);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(qkv, 4, 2, -1), doctest::Contains("window must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(Tensor::zeros({1, 3, 14}), 4, 2), doctest::Contains("is not n_head + 2"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::gqa_attention(Tensor::zeros({3, 16}), 2, 1), doctest::Contains("qkv must be [B, T"),
                       Error);
  Tensor out = Tensor::empty({1, 3, 6}), lse = Tensor::empty({1, 4, 3});
  CHECK_THROWS_WITH_AS(cpu::attention_gqa_forward(qkv, out, lse, 4, 2, 0), doctest::Contains("out must be"), Error);
  Tensor out2 = Tensor::empty({1, 3, 8});
  CHECK_THROWS_WITH_AS(cpu::attention_gqa_forward(qkv, out2, Tensor::empty({1, 3, 3}), 2, 1, 0),
                       doctest::Contains("lse must be"), Error);
}
