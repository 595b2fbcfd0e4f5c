// The Llama-family ops (core/ops_llama.h) on the CPU against their definitions written with plain ops,
// forward and gradients in float64, and their refusals of bad input. The generic rows (gradient checks,
// CUDA vs CPU) are in tests/support/cases_llama.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "aria/core/rng.h"
#include "aria/kernels/kernels.h"
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

// Forward value and the gradients of sum(out * w) (w seeded) for each input.
std::vector<Tensor> value_and_grads(const std::function<Tensor()>& f, const std::vector<Tensor>& inputs) {
  for (const Tensor& t : inputs) t.zero_grad();
  Tensor out = f();
  Tensor w = Tensor::empty(out.shape(), DType::F64);
  Rng(99).fill_normal(w, 0, 1);
  ops::sum(ops::mul(out, w)).backward();
  std::vector<Tensor> r{out.detach()};
  for (const Tensor& t : inputs) r.push_back(t.grad());
  return r;
}

void check_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double tol = 1e-12) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a[i].defined());
    REQUIRE(b[i].defined());
    CHECK(relative_l2(a[i], b[i]) <= tol);
  }
}

// (x / sqrt(mean(x^2) + eps)) * w with plain ops.
Tensor rmsnorm_plain(const Tensor& x, const Tensor& w, double eps) {
  Tensor ms = ops::affine(ops::mean_dim(ops::square(x), -1, true), 1.0, eps);
  Tensor rstd = ops::exp(ops::scale(ops::log(ms), -0.5));
  return ops::mul(ops::mul(x, rstd), w);
}

}  // namespace

TEST_CASE("rmsnorm equals x / sqrt(mean(x^2) + eps) * w, forward and gradients") {
  Tensor x = randn64({3, 4, 10}, 1), w = randn64({10}, 2);
  auto fused = value_and_grads([&] { return ops::rmsnorm(x, w, 1e-5); }, {x, w});
  auto plain = value_and_grads([&] { return rmsnorm_plain(x, w, 1e-5); }, {x, w});
  check_equal(fused, plain);
}

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

TEST_CASE("add_rmsnorm equals add then rmsnorm, both outputs and either alone") {
  Tensor x = randn64({2, 5, 12}, 3), r = randn64({2, 5, 12}, 4), w = randn64({12}, 5);
  auto both = value_and_grads(
      [&] {
        auto [s, y] = ops::add_rmsnorm(x, r, w, 1e-6);
        return ops::concat({s, y}, -1);
      },
      {x, r, w});
  auto plain_both = value_and_grads(
      [&] {
        Tensor s = ops::add(x, r);
        return ops::concat({s, rmsnorm_plain(s, w, 1e-6)}, -1);
      },
      {x, r, w});
  check_equal(both, plain_both);
  auto y_only = value_and_grads([&] { return ops::add_rmsnorm(x, r, w, 1e-6).second; }, {x, r, w});
  auto plain_y = value_and_grads([&] { return rmsnorm_plain(ops::add(x, r), w, 1e-6); }, {x, r, w});
  check_equal(y_only, plain_y);
  // Only the sum used: w gets no gradient, x and r get the upstream one.
  x.zero_grad();
  r.zero_grad();
  w.zero_grad();
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

TEST_CASE("swiglu equals gate * sigmoid(gate) * up, forward and gradients") {
  Tensor g = randn64({3, 5, 11}, 11), u = randn64({3, 5, 11}, 12);
  auto fused = value_and_grads([&] { return ops::swiglu(g, u); }, {g, u});
  auto plain = value_and_grads([&] { return ops::mul(ops::mul(g, ops::sigmoid(g)), u); }, {g, u});
  check_equal(fused, plain);
}

TEST_CASE("swiglu_packed equals swiglu of the two halves, gradient into one tensor") {
  Tensor gu = randn64({4, 3, 18}, 13);
  auto packed = value_and_grads([&] { return ops::swiglu_packed(gu); }, {gu});
  auto halves = value_and_grads(
      [&] {
        auto parts = ops::split(gu, {9, 9}, -1);
        return ops::swiglu(parts[0], parts[1]);
      },
      {gu});
  check_equal(packed, halves);
}

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
