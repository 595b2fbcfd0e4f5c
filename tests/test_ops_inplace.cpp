// The non-differentiable in-place ops train/ reaches the kernels through (core/ops_inplace.h): each
// writes exactly what its kernel row writes (bit for bit, on the CPU), records nothing on the tape,
// and refuses malformed arguments with an error naming the op.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/ops_inplace.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::bit_equal;
using testing::randn;

namespace {

Tensor copy_of(const Tensor& t) { return t.clone(); }

}  // namespace

TEST_CASE("in-place ops write what their kernel rows write") {
  for (DType dt : {DType::F32, DType::F64}) {
    CAPTURE(std::string(dtype_name(dt)));
    const Tensor x = randn({3, 4}, 1, 1.0, dt), y0 = randn({3, 4}, 2, 1.0, dt);
    {
      Tensor a = copy_of(y0), b = copy_of(y0);
      ops::add_scaled_(a, x, -0.25);
      cpu::axpy(b, x, -0.25);
      CHECK(bit_equal(a, b));
      ops::add_scaled_(a, a, 0.5);  // y may be x
      cpu::axpy(b, b, 0.5);
      CHECK(bit_equal(a, b));
    }
    {
      const Tensor s = Tensor::from_vector({0.75}, {1}, DType::F64);
      Tensor a = copy_of(y0), b = copy_of(y0);
      ops::scale_by_(a, s);
      cpu::scale_by(b, s, b);
      CHECK(bit_equal(a, b));
    }
    {
      Tensor a = copy_of(y0), b = copy_of(y0);
      const Tensor g = randn({5, 3, 4}, 3, 1.0, dt);
      ops::add_squares_(a, g, 0.5);  // [S, ...acc]
      cpu::square_accumulate(b, g, 0.5);
      ops::add_squares_(a, x, 2.0);  // acc's shape
      cpu::square_accumulate(b, x, 2.0);
      CHECK(bit_equal(a, b));
    }
    {
      Tensor a = Tensor::zeros({1}, DType::F64), b = Tensor::zeros({1}, DType::F64);
      ops::add_sum_squares_({x, y0}, a);
      cpu::sum_squares({x, y0}, b);
      CHECK(bit_equal(a, b));
      CHECK(a.item() > 0);
    }
    {
      Tensor a = Tensor::empty({3, 4}, dt), b = Tensor::empty({3, 4}, dt);
      ops::mul_into(x, y0, a);
      cpu::binary(int(BinaryOp::Mul), x, y0, b);
      CHECK(bit_equal(a, b));
    }
    {
      const Tensor p = randn({2, 3, 5}, 4, 1.0, dt), q = randn({2, 3, 4}, 5, 1.0, dt);
      Tensor a = Tensor::empty({2, 5, 4}, dt), b = Tensor::empty({2, 5, 4}, dt);
      ops::matmul_into(p, q, a, true, false);
      cpu::matmul(p, q, b, true, false, 1.0, 0.0);
      CHECK(bit_equal(a, b));
    }
    {
      const Tensor p = randn({2, 3, 5}, 6, 1.0, dt);
      Tensor a = Tensor::empty({2, 1, 5}, dt), b = Tensor::empty({2, 1, 5}, dt);
      ops::sum_to_into(p, a);
      cpu::sum_to(p, b);
      CHECK(bit_equal(a, b));
    }
    {
      const Tensor ids = Tensor::from_ints({2, 0, 2}, {3}), src = randn({3, 4}, 7, 1.0, dt);
      Tensor a = copy_of(y0), b = copy_of(y0);
      ops::index_add_rows_(a, ids, src);
      cpu::embedding_backward(ids, src, b);
      CHECK(bit_equal(a, b));
    }
    {
      const Tensor A = randn({3, 4}, 8, 1.0, dt), p = randn({3, 4}, 9, 1.0, dt), B = randn({3, 4}, 10, 1.0, dt);
      Tensor a = copy_of(y0), b = copy_of(y0);
      ops::add_spc_penalty_grad_({a}, {A}, {p}, {B}, 0.3);
      cpu::spc_penalty_grad({b}, {A}, {p}, {B}, 0.3);
      CHECK(bit_equal(a, b));
    }
    {
      Tensor p1 = copy_of(y0), p2 = copy_of(y0);
      Tensor m1 = Tensor::zeros({3, 4}, dt), v1 = Tensor::zeros({3, 4}, dt);
      Tensor m2 = Tensor::zeros({3, 4}, dt), v2 = Tensor::zeros({3, 4}, dt);
      ops::adamw_update_({testing::adamw_item(p1, x, m1, v1, 1, 1e-2f, 0.1f)});
      cpu::adamw_update({testing::adamw_item(p2, x, m2, v2, 1, 1e-2f, 0.1f)});
      CHECK(bit_equal(p1, p2));
      CHECK(bit_equal(m1, m2));
      CHECK(bit_equal(v1, v2));
      ops::adamw_update_({});  // no items: nothing to do
    }
  }
}

TEST_CASE("in-place ops record nothing on the tape, even for tensors that require grad") {
  Tensor y = randn({2, 2}, 1);
  y.set_requires_grad(true);
  const Tensor x = randn({2, 2}, 2);
  tape().clear();
  ops::add_scaled_(y.detach(), x, 1.0);
  ops::add_squares_(y.detach(), x, 1.0);
  CHECK(tape().size() == 0);
}

TEST_CASE("in-place ops refuse malformed arguments naming the op") {
  const Tensor a = randn({2, 3}, 1), b = randn({3, 2}, 2), s2 = Tensor::zeros({2}, DType::F64);
  CHECK_THROWS_WITH_AS(ops::add_scaled_(a, b, 1.0), doctest::Contains("add_scaled_: shapes differ"), Error);
  CHECK_THROWS_WITH_AS(ops::add_scaled_(Tensor(), b, 1.0), doctest::Contains("add_scaled_: y is undefined"), Error);
  CHECK_THROWS_WITH_AS(ops::scale_by_(a, s2), doctest::Contains("scale_by_: the scale must hold one value"), Error);
  CHECK_THROWS_WITH_AS(ops::scale_by_(a.transpose(0, 1), Tensor::zeros({1}, DType::F64)),
                       doctest::Contains("scale_by_: x must be contiguous"), Error);
  CHECK_THROWS_WITH_AS(ops::add_squares_(a, b, 1.0), doctest::Contains("add_squares_: g"), Error);
  CHECK_THROWS_WITH_AS(ops::add_sum_squares_({a}, s2), doctest::Contains("add_sum_squares_: out must hold one value"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::add_sum_squares_({a, Tensor()}, Tensor::zeros({1}, DType::F64)),
                       doctest::Contains("add_sum_squares_: tensor 1 is undefined"), Error);
  CHECK_THROWS_WITH_AS(ops::mul_into(a, b, a), doctest::Contains("mul_into: shapes differ"), Error);
  CHECK_THROWS_WITH_AS(ops::matmul_into(randn({1, 2, 3}, 3), randn({1, 2, 3}, 4), randn({1, 2, 3}, 5), false, false),
                       doctest::Contains("matmul_into: shapes do not multiply"), Error);
  CHECK_THROWS_WITH_AS(ops::matmul_into(a, b, a, false, false), doctest::Contains("matmul_into: a, b and c must be 3-D"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::sum_to_into(a, Tensor::zeros({2, 2})),
                       doctest::Contains("sum_to_into: out float32[2, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::index_add_rows_(a, Tensor::from_ints({0}, {1}), randn({2, 3}, 6)),
                       doctest::Contains("index_add_rows_: dst must be [V, D] and src [N, D]"), Error);
  CHECK_THROWS_WITH_AS(ops::index_add_rows_(a, Tensor::zeros({1}), randn({1, 3}, 6)),
                       doctest::Contains("index_add_rows_: ids must be int32"), Error);
  CHECK_THROWS_WITH_AS(ops::add_spc_penalty_grad_({a}, {a}, {a}, {}, 1.0),
                       doctest::Contains("add_spc_penalty_grad_: lists of different lengths"), Error);
  CHECK_THROWS_WITH_AS(ops::add_spc_penalty_grad_({a}, {b}, {a}, {a}, 1.0),
                       doctest::Contains("is not the gradient's shape"), Error);
  AdamWItem bad;
  bad.param = a;
  CHECK_THROWS_WITH_AS(ops::adamw_update_({bad}), doctest::Contains("adamw_update_: item 0 has an undefined"), Error);
}
