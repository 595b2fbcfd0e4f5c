// Specific behaviour of the elementwise, reduction, shape and matmul ops: known values, broadcasting
// shapes, error messages, views, and the autograd contract (accumulation, no_grad, retain_graph).
// Gradients of every op against finite differences live in the op-case table (tests/support/cases_*.cpp).
#include <doctest/doctest.h>

#include <cmath>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/kernels/backend.h"

using namespace aria;

namespace {

Tensor vec(std::vector<double> v, Shape s, DType t = DType::F64) { return Tensor::from_vector(v, s, t); }

void check_close(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  auto got = t.to_doubles();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("unary ops: known values") {
  for (DType t : {DType::F32, DType::F64}) {
    CAPTURE(dtype_name(t));
    const double tol = t == DType::F32 ? 1e-6 : 1e-14;
    Tensor x = vec({1.0, -0.5, 0.0}, {3}, t);
    check_close(ops::gelu(x), {0.8411919906082768, -0.15428599017485606, 0.0}, tol);
    check_close(ops::sigmoid(x), {1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(0.5)), 0.5}, tol);
    check_close(ops::relu(x), {1.0, 0.0, 0.0}, tol);
    check_close(ops::exp(x), {std::exp(1.0), std::exp(-0.5), 1.0}, tol);
    check_close(ops::tanh(x), {std::tanh(1.0), std::tanh(-0.5), 0.0}, tol);
    check_close(ops::square(x), {1.0, 0.25, 0.0}, tol);
    check_close(ops::affine(x, 2.0, 1.0), {3.0, 0.0, 1.0}, tol);
    check_close(ops::scale(x, -3.0), {-3.0, 1.5, 0.0}, tol);
    check_close(ops::log(vec({1.0, std::exp(2.0)}, {2}, t)), {0.0, 2.0}, tol);
  }
}

TEST_CASE("binary ops broadcast with NumPy rules") {
  Tensor a = vec({1, 2, 3}, {3, 1});
  Tensor b = vec({10, 20, 30, 40, 50}, {1, 5});
  Tensor c = ops::add(a, b);
  CHECK(c.shape() == Shape{3, 5});
  check_close(c, {11, 21, 31, 41, 51, 12, 22, 32, 42, 52, 13, 23, 33, 43, 53});
  CHECK(ops::mul(vec({1, 2, 3, 4}, {4}), Tensor::full({2, 3, 4}, 2.0, DType::F64)).shape() == Shape{2, 3, 4});
  CHECK(ops::sub(Tensor::zeros({2, 3, 4}, DType::F64), Tensor::zeros({1}, DType::F64)).shape() == Shape{2, 3, 4});
  check_close(ops::div(vec({1, 2, 3, 4}, {2, 2}), vec({2, 4}, {2})), {0.5, 0.5, 1.5, 1.0});
  check_close(ops::sub(vec({5, 7}, {2}), vec({1}, {1})), {4, 6});
  // transposed (strided) operands
  Tensor m = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  check_close(ops::add(m.transpose(0, 1), vec({100, 200}, {2})), {101, 204, 102, 205, 103, 206});
}

TEST_CASE("reductions: known values") {
  Tensor x = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(ops::sum(x).shape() == Shape{});
  CHECK(ops::sum(x).item() == 21);
  CHECK(ops::mean(x).item() == 3.5);
  check_close(ops::sum_dim(x, 0), {5, 7, 9});
  check_close(ops::sum_dim(x, -1), {6, 15});
  CHECK(ops::sum_dim(x, 1, true).shape() == Shape{2, 1});
  CHECK(ops::sum_dim(x, 1).shape() == Shape{2});
  check_close(ops::mean_dim(x, 1), {2, 5});
  check_close(ops::sum_to_shape(x, {3}), {5, 7, 9});
  check_close(ops::sum_to_shape(x, {2, 1}), {6, 15});
  check_close(ops::sum(x.transpose(0, 1)), {21});
  check_close(ops::broadcast_to(vec({7}, {}), {}), {7});
  check_close(ops::broadcast_to(vec({1, 2}, {2, 1}), {2, 2, 3}), {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
}

TEST_CASE("sum_to kernel matches a direct sum for every pattern of reduced dims") {
  const Shape shape{2, 3, 4, 5};
  std::vector<double> v(120);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i % 17) - 3.0;
  Tensor x = vec(v, shape);
  for (int mask = 0; mask < 16; ++mask) {
    Shape os = shape;
    for (int d = 0; d < 4; ++d)
      if (mask & (1 << d)) os[size_t(d)] = 1;
    CAPTURE(shape_str(os));
    Tensor out = Tensor::empty(os, DType::F64);
    cpu::sum_to(x, out);
    std::vector<double> want(size_t(shape_numel(os)), 0.0);
    const Shape ost = contiguous_strides(os);
    for (int64_t i = 0; i < 120; ++i) {
      int64_t rem = i, o = 0;
      for (int d = 3; d >= 0; --d) {
        const int64_t k = rem % shape[size_t(d)];
        rem /= shape[size_t(d)];
        if (os[size_t(d)] != 1) o += k * ost[size_t(d)];
      }
      want[size_t(o)] += v[size_t(i)];
    }
    check_close(out, want);
  }
}

TEST_CASE("matmul: small integer matrices, batches, transposes") {
  Tensor a = vec({1, 2, 3, 4}, {2, 2});
  Tensor b = vec({5, 6, 7, 8}, {2, 2});
  check_close(ops::matmul(a, b), {19, 22, 43, 50});
  check_close(ops::matmul(a, b, true, false), {26, 30, 38, 44});
  check_close(ops::matmul(a, b, false, true), {17, 23, 39, 53});
  check_close(ops::matmul(a, b, true, true), {23, 31, 34, 46});
  // [2,1,3] x [3,2] (shared b) and x [2,3,2] (batched b)
  Tensor x = vec({1, 0, 2, -1, 3, 1}, {2, 1, 3});
  Tensor w = vec({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor y = ops::matmul(x, w);
  CHECK(y.shape() == Shape{2, 1, 2});
  check_close(y, {11, 14, 13, 16});
  Tensor wb = vec({1, 2, 3, 4, 5, 6, 1, 0, 0, 1, 1, 1}, {2, 3, 2});
  check_close(ops::matmul(x, wb), {11, 14, 0, 4});
  // float32 agrees
  check_close(ops::matmul(a.to(DType::F32), b.to(DType::F32)), {19, 22, 43, 50}, 1e-7);
}

TEST_CASE("matmul of a transposed view equals the explicit product") {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3});  // a^T = [[1,4],[2,5],[3,6]]
  Tensor b = vec({1, 0, -1, 2}, {2, 2});
  Tensor at = a.transpose(0, 1);
  CHECK_FALSE(at.is_contiguous());
  Tensor explicit_at = vec({1, 4, 2, 5, 3, 6}, {3, 2});
  Tensor want = ops::matmul(explicit_at, b);
  check_close(ops::matmul(at, b), want.to_doubles());
  check_close(ops::matmul(at.contiguous(), b), want.to_doubles());
  check_close(ops::matmul(a, b, true, false), want.to_doubles());
}

TEST_CASE("linear and bias_add: known values") {
  Tensor x = vec({1, 2, 3, 4, 5, 6}, {1, 2, 3});
  Tensor w = vec({1, 0, 0, 1, 1, 1}, {3, 2});
  Tensor b = vec({10, 20}, {2});
  Tensor y = ops::linear(x, w, b);
  CHECK(y.shape() == Shape{1, 2, 2});
  check_close(y, {14, 25, 20, 31});
  check_close(ops::linear(x, w, Tensor()), {4, 5, 10, 11});
  check_close(ops::bias_add(vec({1, 2, 3, 4}, {2, 2}), b), {11, 22, 13, 24});
}

TEST_CASE("concat and split") {
  Tensor a = vec({1, 2, 3, 4}, {2, 2});
  Tensor b = vec({5, 6}, {2, 1});
  Tensor c = ops::concat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 3});
  check_close(c, {1, 2, 5, 3, 4, 6});
  auto parts = ops::split(c, {1, 2}, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].shape() == Shape{2, 1});
  check_close(parts[1].contiguous(), {2, 5, 4, 6});
  CHECK(parts[1].impl().storage == c.impl().storage);  // a view
  check_close(ops::concat({a, a}, 0), {1, 2, 3, 4, 1, 2, 3, 4});
}

TEST_CASE("shape mismatches are errors that name the op and shapes") {
  Tensor a = Tensor::zeros({2, 3}, DType::F64), b = Tensor::zeros({4}, DType::F64);
  CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("add: shapes [2, 3] and [4] cannot be broadcast"), Error);
  CHECK_THROWS_WITH_AS(ops::div(a, b), doctest::Contains("div: shapes"), Error);
  CHECK_THROWS_WITH_AS(ops::mul(a, Tensor::zeros({2, 3}, DType::F32)), doctest::Contains("mul: dtypes differ"), Error);
  CHECK_THROWS_WITH_AS(ops::add(a, Tensor::zeros({2, 3}, DType::I32)), doctest::Contains("must be float32 or float64"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::matmul(a, Tensor::zeros({4, 5}, DType::F64)),
                       doctest::Contains("matmul: inner dimensions differ"), Error);
  CHECK_THROWS_WITH_AS(ops::matmul(Tensor::zeros({2, 3, 4}, DType::F64), Tensor::zeros({3, 4, 5}, DType::F64)),
                       doctest::Contains("b must be 2-D or have a's batch dims"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(a, Tensor::zeros({4, 5}, DType::F64), Tensor()),
                       doctest::Contains("linear: x float64[2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(a, Tensor::zeros({3, 5}, DType::F64), b), doctest::Contains("linear: bias must be [5]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::bias_add(a, b), doctest::Contains("bias_add: bias float64[4]"), Error);
  CHECK_THROWS_WITH_AS(ops::concat({a, b}, 0), doctest::Contains("concat: along dim 0"), Error);
  CHECK_THROWS_WITH_AS(ops::split(a, {1, 1}, 1), doctest::Contains("split: sizes add up to 2"), Error);
  CHECK_THROWS_WITH_AS(ops::sum_to_shape(a, {3, 3}), doctest::Contains("sum_to_shape: cannot reduce"), Error);
  CHECK_THROWS_WITH_AS(ops::sum_dim(a, 2), doctest::Contains("sum_dim: dim 2 out of range"), Error);
  CHECK_THROWS_WITH_AS(ops::broadcast_to(a, {3, 3}), doctest::Contains("broadcast_to: cannot broadcast"), Error);
}

TEST_CASE("a leaf used twice accumulates both gradients: y = x*x + x gives 2x + 1") {
  tape().clear();
  Tensor x = vec({1.5, -2.0, 0.25}, {3});
  x.set_requires_grad(true);
  Tensor y = ops::sum(ops::add(ops::mul(x, x), x));
  y.backward();
  check_close(x.grad(), {4.0, -3.0, 1.5});
  CHECK(tape().size() == 0);
}

TEST_CASE("gradients through broadcasting reduce to the input's shape") {
  tape().clear();
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = vec({10, 20, 30}, {3});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  ops::sum(ops::mul(a, b)).backward();
  CHECK(b.grad().shape() == Shape{3});
  check_close(b.grad(), {5, 7, 9});
  check_close(a.grad(), {10, 20, 30, 10, 20, 30});
}

TEST_CASE("no_grad scope records nothing") {
  tape().clear();
  Tensor x = vec({1, 2, 3, 4}, {2, 2});
  x.set_requires_grad(true);
  {
    NoGradGuard ng;
    Tensor y = ops::sum(ops::linear(ops::gelu(ops::matmul(x, x)), x, Tensor()));
    CHECK_FALSE(y.requires_grad());
    CHECK(tape().size() == 0);
  }
  Tensor z = ops::square(x);
  CHECK(z.requires_grad());
  CHECK(tape().size() == 1);
  tape().clear();
}

TEST_CASE("retain_graph lets backward run twice, doubling leaf gradients") {
  tape().clear();
  Tensor x = vec({0.5, -1.0}, {2});
  x.set_requires_grad(true);
  Tensor y = ops::sum(ops::square(ops::tanh(x)));
  y.backward(true);
  const auto once = x.grad().to_doubles();
  CHECK(tape().size() > 0);
  y.backward(false);
  const auto twice = x.grad().to_doubles();
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]).epsilon(1e-14));
  CHECK(tape().size() == 0);
}

TEST_CASE("matmul of a frozen operand records gradients only for the trainable one") {
  tape().clear();
  Tensor a = vec({1, 2, 3, 4}, {2, 2});
  Tensor b = vec({5, 6, 7, 8}, {2, 2});
  a.set_requires_grad(true);
  ops::sum(ops::matmul(a, b)).backward();
  check_close(a.grad(), {11, 15, 11, 15});  // row sums of b, repeated
  CHECK_FALSE(b.grad().defined());
}
