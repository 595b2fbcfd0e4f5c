// Behaviour of the neural-network ops (core/ops_nn.cpp) against plain-loop references; the float64
// gradients are checked by tests/test_gradcheck.cpp through the rows in tests/support/cases_nn.cpp,
// float32 against float64 by tests/test_kernel_coverage.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/rng.h"

using namespace aria;

namespace {

Tensor randn(const Shape& s, DType dt, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(size_t(shape_numel(s)));
  for (auto& x : v) x = scale * rng.normal();
  return Tensor::from_vector(v, s, dt);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Runs f and returns the aria::Error message ("" when nothing was thrown).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// GPT-2 attention with materialised scores, mask and softmax, in double.
std::vector<double> reference_attention(const std::vector<double>& qkv, int64_t B, int64_t T, int64_t C, int64_t H) {
  const int64_t hd = C / H;
  std::vector<double> out(size_t(B * T * C), 0.0);
  auto at = [&](int64_t b, int64_t t, int64_t col) { return qkv[size_t((b * T + t) * 3 * C + col)]; };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(static_cast<size_t>(T));
        for (int64_t j = 0; j < T; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += at(b, i, h * hd + d) * at(b, j, C + h * hd + d);
          s[size_t(j)] = j <= i ? dot / std::sqrt(double(hd)) : -INFINITY;
        }
        double m = -INFINITY, z = 0;
        for (double v : s) m = std::max(m, v);
        for (double& v : s) z += (v = std::exp(v - m));
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < T; ++j) acc += s[size_t(j)] / z * at(b, j, 2 * C + h * hd + d);
          out[size_t((b * T + i) * C + h * hd + d)] = acc;
        }
      }
  return out;
}

}  // namespace

TEST_CASE("causal_attention equals the materialised-scores reference") {
  struct Cfg { int64_t B, T, C, H; };
  for (Cfg c : {Cfg{2, 5, 12, 3}, Cfg{1, 1, 8, 2}, Cfg{2, 37, 32, 2}, Cfg{1, 70, 48, 4}}) {
    for (DType dt : {DType::F64, DType::F32}) {
      CAPTURE(c.T);
      CAPTURE(dtype_name(dt));
      Tensor qkv = randn({c.B, c.T, 3 * c.C}, dt, 7);
      auto ref = reference_attention(qkv.to_doubles(), c.B, c.T, c.C, c.H);
      Tensor out = ops::causal_attention(qkv, int(c.H));
      CHECK(out.shape() == Shape{c.B, c.T, c.C});
      CHECK(max_abs_diff(out.to_doubles(), ref) < (dt == DType::F64 ? 1e-12 : 2e-5));
    }
  }
}

TEST_CASE("causal_attention: token t never affects outputs before t, in values or gradients") {
  const int64_t B = 2, T = 6, C = 12;
  Tensor qkv = randn({B, T, 3 * C}, DType::F64, 3);
  auto base = ops::causal_attention(qkv, 3).to_doubles();
  const int64_t t = 3;
  Tensor changed = qkv.clone();
  double* p = changed.data<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < 3 * C; ++k) p[(b * T + t) * 3 * C + k] += 1.5;
  auto moved = ops::causal_attention(changed, 3).to_doubles();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < T; ++s) {
      double diff = 0;
      for (int64_t k = 0; k < C; ++k) diff += std::abs(moved[size_t((b * T + s) * C + k)] - base[size_t((b * T + s) * C + k)]);
      if (s < t)
        CHECK(diff == 0.0);
      else
        CHECK(diff > 0.0);
    }
  // The gradient of output row s reaches only qkv rows <= s.
  const int64_t s = 2;
  Tensor x = qkv.clone().set_requires_grad(true);
  Tensor out = ops::causal_attention(x, 3);
  Tensor g = Tensor::zeros(out.shape(), DType::F64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < C; ++k) g.data<double>()[(b * T + s) * C + k] = 1.0;
  out.set_grad(g);
  tape().backward(out, false);
  auto dx = x.grad().to_doubles();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < T; ++r) {
      double mag = 0;
      for (int64_t k = 0; k < 3 * C; ++k) mag += std::abs(dx[size_t((b * T + r) * 3 * C + k)]);
      if (r > s)
        CHECK(mag == 0.0);
      else
        CHECK(mag > 0.0);
    }
}

TEST_CASE("layernorm normalises each row and applies w, b") {
  const int64_t N = 4, C = 16;
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Tensor x = randn({N, C}, dt, 5, 3.0);
    auto xv = x.to_doubles();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) xv[size_t(n * C + c)] += 10.0 * double(n);  // rows with real means
    x = Tensor::from_vector(xv, {N, C}, dt);
    auto y = ops::layernorm(x, Tensor::full({C}, 1.0, dt), Tensor::zeros({C}, dt), 1e-5).to_doubles();
    for (int64_t n = 0; n < N; ++n) {
      double m = 0, v = 0;
      for (int64_t c = 0; c < C; ++c) m += y[size_t(n * C + c)] / double(C);
      for (int64_t c = 0; c < C; ++c) v += (y[size_t(n * C + c)] - m) * (y[size_t(n * C + c)] - m) / double(C);
      CHECK(std::abs(m) < 1e-5);
      CHECK(std::abs(v - 1.0) < 1e-4);
    }
    // With w and b: y = (x - mean) / sqrt(var + eps) * w + b, biased variance, as torch.
    Tensor w = randn({C}, dt, 8), b = randn({C}, dt, 9);
    auto yw = ops::layernorm(x, w, b, 1e-5).to_doubles();
    auto wv = w.to_doubles(), bv = b.to_doubles();
    double worst = 0;
    for (int64_t n = 0; n < N; ++n) {
      double m = 0, v = 0;
      for (int64_t c = 0; c < C; ++c) m += xv[size_t(n * C + c)] / double(C);
      for (int64_t c = 0; c < C; ++c) v += (xv[size_t(n * C + c)] - m) * (xv[size_t(n * C + c)] - m) / double(C);
      for (int64_t c = 0; c < C; ++c) {
        double ref = (xv[size_t(n * C + c)] - m) / std::sqrt(v + 1e-5) * wv[size_t(c)] + bv[size_t(c)];
        worst = std::max(worst, std::abs(yw[size_t(n * C + c)] - ref));
      }
    }
    CHECK(worst < (dt == DType::F64 ? 1e-12 : 1e-5));
  }
}

TEST_CASE("softmax rows sum to one and survive large inputs") {
  Tensor x = Tensor::from_vector({1000, 1001, 1002, -5, 0, 5}, {2, 3}, DType::F32);
  auto y = ops::softmax(x).to_doubles();
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), z = 1 + e1 + e2;
  CHECK(y[0] == doctest::Approx(e2 / z).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(1 / z).epsilon(1e-6));
  for (int r = 0; r < 2; ++r) CHECK(y[size_t(3 * r)] + y[size_t(3 * r + 1)] + y[size_t(3 * r + 2)] == doctest::Approx(1.0));
}

TEST_CASE("cross_entropy equals -log softmax by hand, with ignore_index") {
  const int64_t N = 5, V = 9;
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Tensor logits = randn({N, V}, dt, 21, 2.0);
    std::vector<int32_t> tv = {3, -100, 0, 8, 4};
    Tensor targets = Tensor::from_ints(tv, {N});
    auto lv = logits.to_doubles();
    std::vector<double> ref(size_t(N), 0.0);
    double total = 0;
    for (int64_t n = 0; n < N; ++n) {
      if (tv[size_t(n)] == -100) continue;
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(lv[size_t(n * V + v)]);
      ref[size_t(n)] = -std::log(std::exp(lv[size_t(n * V + tv[size_t(n)])]) / z);
      total += ref[size_t(n)];
    }
    const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
    CHECK(max_abs_diff(ops::cross_entropy_rows(logits, targets).to_doubles(), ref) < tol);
    Tensor leaf = logits.clone().set_requires_grad(true);
    Tensor loss = ops::cross_entropy(leaf, targets);
    CHECK(loss.dim() == 0);
    CHECK(std::abs(loss.item() - total / 4.0) < tol);
    loss.backward();
    auto g = leaf.grad().to_doubles();
    for (int64_t v = 0; v < V; ++v) CHECK(g[size_t(V + v)] == 0.0);  // ignored row
    double row0 = 0;
    for (int64_t v = 0; v < V; ++v) row0 += g[size_t(v)];
    CHECK(std::abs(row0) < tol);  // softmax - onehot sums to zero
    // A custom ignore_index inside the class range.
    auto rows = ops::cross_entropy_rows(logits, Tensor::from_ints({3, 1, 0, 8, 4}, {N}), 0).to_doubles();
    CHECK(rows[2] == 0.0);
    CHECK(std::abs(rows[0] - ref[0]) < tol);
  }
}

TEST_CASE("cross_entropy with every target ignored is 0 with zero gradient") {
  Tensor logits = randn({3, 4}, DType::F64, 2).set_requires_grad(true);
  Tensor targets = Tensor::from_ints({-100, -100, -100}, {3});
  Tensor loss = ops::cross_entropy(logits, targets);
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (double v : logits.grad().to_doubles()) CHECK(v == 0.0);
}

TEST_CASE("embedding gathers rows and sums gradients of repeated ids") {
  Tensor w = randn({7, 5}, DType::F64, 4).set_requires_grad(true);
  Tensor ids = Tensor::from_ints({6, 2, 6, 0, 6, 2}, {2, 3});
  Tensor out = ops::embedding(w, ids);
  CHECK(out.shape() == Shape{2, 3, 5});
  auto wv = w.to_doubles(), ov = out.to_doubles();
  CHECK(ov[0] == wv[30]);
  CHECK(ov[5 * 5 + 4] == wv[2 * 5 + 4]);
  out.set_grad(Tensor::full(out.shape(), 1.0, DType::F64));
  tape().backward(out, false);
  auto g = w.grad().to_doubles();
  CHECK(g[6 * 5] == 3.0);
  CHECK(g[2 * 5 + 1] == 2.0);
  CHECK(g[0] == 1.0);
  CHECK(g[1 * 5] == 0.0);
}

TEST_CASE("nn ops reject bad ids, dtypes and shapes with aria::Error") {
  Tensor w = randn({7, 5}, DType::F32, 1);
  std::string msg = error_of([&] { ops::embedding(w, Tensor::from_ints({1, 9, 2}, {3})); });
  CHECK(msg.find("9") != std::string::npos);
  CHECK(msg.find("7") != std::string::npos);
  CHECK(error_of([&] { ops::embedding(w, Tensor::from_ints({-1}, {1})); }).find("-1") != std::string::npos);
  CHECK(error_of([&] { ops::embedding(w, Tensor::zeros({3}, DType::F32)); }).find("int32") != std::string::npos);
  CHECK_THROWS_AS(ops::embedding(Tensor::zeros({7}), Tensor::from_ints({1}, {1})), Error);

  Tensor x = randn({3, 8}, DType::F32, 2);
  CHECK_THROWS_AS(ops::layernorm(x, Tensor::zeros({7}), Tensor::zeros({8}), 1e-5), Error);
  CHECK_THROWS_AS(ops::layernorm(x, Tensor::zeros({8}, DType::F64), Tensor::zeros({8}), 1e-5), Error);
  CHECK_THROWS_AS(ops::softmax(Tensor::from_ints({1, 2}, {2})), Error);

  CHECK(error_of([&] { ops::causal_attention(randn({1, 4, 10}, DType::F32, 3), 2); }).find("divisible by 3") !=
        std::string::npos);
  CHECK(error_of([&] { ops::causal_attention(randn({1, 4, 24}, DType::F32, 3), 3); }).find("n_head") !=
        std::string::npos);
  CHECK_THROWS_AS(ops::causal_attention(randn({4, 24}, DType::F32, 3), 2), Error);

  Tensor logits = randn({4, 6}, DType::F32, 4);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Tensor::from_ints({1, 2, 3}, {3})), Error);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Tensor::zeros({4}, DType::F32)), Error);
  CHECK(error_of([&] { ops::cross_entropy(logits, Tensor::from_ints({1, 6, 0, 0}, {4})); }).find("6") !=
        std::string::npos);
}
