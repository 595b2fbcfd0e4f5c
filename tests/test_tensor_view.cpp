// TensorView (core/tensor_view.h), what kernels take, and KernelBuffer (kernels/backend.h), their
// temporaries: a Tensor's view shows its bytes and metadata, misuse is refused with a clear error, and
// the backend interface compiles without the autograd tensor.
#include "aria/kernels/backend.h"

#include <type_traits>

namespace aria {
class Tensor;
}
namespace {
template <typename T, typename = void>
struct is_complete : std::false_type {};
template <typename T>
struct is_complete<T, std::void_t<decltype(sizeof(T))>> : std::true_type {};
// Checked before anything else is included: the kernel layer does not see the autograd tensor.
static_assert(!is_complete<aria::Tensor>::value, "kernels/backend.h must not include core/tensor.h");
}  // namespace

#include <doctest/doctest.h>

#include <vector>

#include "aria/core/tensor.h"

using namespace aria;

TEST_CASE("a tensor's kernel view shows its pointer, shape, strides, dtype and device") {
  const Tensor t = Tensor::from_floats({0, 1, 2, 3, 4, 5}, {2, 3});
  const Tensor tt = t.transpose(0, 1);  // [3, 2], strides [1, 3]: not contiguous
  const TensorView v = tt;
  CHECK(v.defined());
  CHECK(v.raw_data() == tt.raw_data());
  CHECK(v.data_ptr() == tt.raw_data());
  CHECK(v.shape() == Shape{3, 2});
  CHECK(v.strides() == Shape{1, 3});
  CHECK(v.dim() == 2);
  CHECK(v.size(-1) == 2);
  CHECK(v.stride(1) == 3);
  CHECK(v.numel() == 6);
  CHECK(v.nbytes() == 24);
  CHECK(v.dtype() == DType::F32);
  CHECK(v.device() == Device::cpu());
  CHECK_FALSE(v.is_contiguous());
  CHECK(TensorView(t).is_contiguous());
  CHECK(v.str() == tt.str());
  CHECK(v.str() == "float32[3, 2] cpu");
  const TensorView s = t.slice(1, 1, 3);  // offset 1 element
  CHECK(s.data<float>() == t.data<float>() + 1);
  CHECK(s.data<float>()[0] == 1.0f);

  const TensorView undefined = Tensor();
  CHECK_FALSE(undefined.defined());
  CHECK(undefined.str() == "undefined");

  const std::vector<Tensor> ts = {t, Tensor(), tt};
  const std::vector<TensorView> vs = views_of(ts);
  REQUIRE(vs.size() == 3);
  CHECK(vs[0].raw_data() == t.raw_data());
  CHECK_FALSE(vs[1].defined());
  CHECK(vs[2].strides() == Shape{1, 3});
}

TEST_CASE("misusing a view is refused with a clear error") {
  const TensorView undefined;
  CHECK_THROWS_WITH_AS(undefined.shape(), doctest::Contains("use of an undefined tensor"), Error);
  CHECK_THROWS_WITH_AS(undefined.raw_data(), doctest::Contains("use of an undefined tensor"), Error);
  CHECK_THROWS_WITH_AS(undefined.dtype(), doctest::Contains("use of an undefined tensor"), Error);
  const Tensor t = Tensor::zeros({2, 3});
  const TensorView v = t;
  CHECK_THROWS_WITH_AS(v.size(2), doctest::Contains("dimension 2 out of range for float32[2, 3] cpu"), Error);
  CHECK_THROWS_WITH_AS(v.stride(-3), doctest::Contains("dimension -3 out of range"), Error);
  CHECK_THROWS_WITH_AS(v.data<double>(), doctest::Contains("tensor holds float32, asked for float64"), Error);
  CHECK_THROWS_WITH_AS(check_same_shape(v, Tensor::zeros({3, 2}), "op"),
                       doctest::Contains("op: shapes differ: float32[2, 3] cpu vs float32[3, 2] cpu"), Error);
}

TEST_CASE("KernelBuffer owns a contiguous temporary and keeps its view valid when moved") {
  KernelBuffer b({2, 3}, DType::F64, Device::cpu());
  CHECK(b.shape() == Shape{2, 3});
  CHECK(b.strides() == Shape{3, 1});
  CHECK(b.is_contiguous());
  CHECK(b.dtype() == DType::F64);
  for (int i = 0; i < 6; ++i) b.data<double>()[i] = i;
  void* bytes = b.raw_data();

  KernelBuffer moved = std::move(b);
  CHECK(moved.raw_data() == bytes);
  CHECK(moved.shape() == Shape{2, 3});  // its own shape, not the moved-from object's
  CHECK_FALSE(b.defined());
  CHECK(moved.data<double>()[5] == 5.0);

  KernelBuffer later;
  CHECK_FALSE(later.defined());
  later = std::move(moved);
  CHECK(later.shape() == Shape{2, 3});
  CHECK(later.data<double>()[4] == 4.0);

  // reshaped: the same bytes under another shape of the same size
  const KernelBuffer r = KernelBuffer::reshaped(later, {3, 2});
  CHECK(r.raw_data() == bytes);
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.strides() == Shape{2, 1});

  // a kernel writes into one like into any view
  const Tensor x = Tensor::full({2, 3}, 1.0, DType::F64);
  cpu::axpy(later, x, 2.0);
  CHECK(later.data<double>()[0] == 2.0);
  CHECK(later.data<double>()[5] == 7.0);
}

TEST_CASE("KernelBuffer refuses a negative dimension and a reshape it cannot make") {
  CHECK_THROWS_WITH_AS(KernelBuffer({2, -1}, DType::F32, Device::cpu()),
                       doctest::Contains("negative dimension in shape [2, -1]"), Error);
  const Tensor t = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(KernelBuffer::reshaped(t.transpose(0, 1), {6}),
                       doctest::Contains("cannot view float32[3, 2] cpu as [6]"), Error);
  CHECK_THROWS_WITH_AS(KernelBuffer::reshaped(t, {4}), doctest::Contains("cannot view float32[2, 3] cpu as [4]"),
                       Error);
  CHECK_THROWS_WITH_AS(KernelBuffer::reshaped(TensorView(), {1}), doctest::Contains("use of an undefined tensor"),
                       Error);
}

TEST_CASE("an AdamW item converts to the view the adamw_update kernel takes") {
  AdamWItem it;
  it.param = Tensor::zeros({4});
  it.grad = Tensor::full({4}, 1.0);
  it.m = Tensor::zeros({4});
  it.v = Tensor::zeros({4});
  it.lr = 0.5f;
  it.weight_decay = 0.25f;
  it.clip_max_norm = 3.0f;
  const std::vector<AdamWItemView> vs = views_of(std::vector<AdamWItem>{it});
  REQUIRE(vs.size() == 1);
  CHECK(vs[0].param.raw_data() == it.param.raw_data());
  CHECK(vs[0].grad.raw_data() == it.grad.raw_data());
  CHECK_FALSE(vs[0].master.defined());
  CHECK_FALSE(vs[0].clip_sumsq.defined());
  CHECK(vs[0].lr == 0.5f);
  CHECK(vs[0].weight_decay == 0.25f);
  CHECK(vs[0].clip_max_norm == 3.0f);
  cpu::adamw_update({it});  // an item passes where its view is expected
  CHECK(it.param.to_floats()[0] < 0.0f);
}
