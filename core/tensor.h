// Tensor: a shared handle to (storage, offset, shape, strides, dtype) plus autograd state.
// Copying a Tensor copies the handle, not the data (like torch.Tensor). Views (reshape of a
// contiguous tensor, transpose, slice) share storage; contiguous() copies only when it must.
// Differentiable operations live in core/ops.h; this header is the data structure itself.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "aria/core/allocator.h"
#include "aria/core/dtype.h"
#include "aria/core/tensor_view.h"

namespace aria {

class Tensor;
struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::F32;

  // autograd
  bool requires_grad = false;
  bool is_leaf = true;                   // created by the user, not by a recorded op
  std::shared_ptr<TensorImpl> grad;      // accumulated gradient (same shape, contiguous)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (uninitialised, constant, from host data) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  // Host values converted to dtype (any floating or integer dtype), then copied to device.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::F32,
                            Device device = Device::cpu());
  static Tensor from_floats(const std::vector<float>& values, const Shape& shape, Device device = Device::cpu());
  static Tensor from_ints(const std::vector<int32_t>& values, const Shape& shape, Device device = Device::cpu());

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int dim() const { return int(impl().shape.size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "float32[2, 3] cpu"

  // Pointer to the first element (storage + offset). T must match dtype (checked).
  template <typename T>
  T* data() const {
    ARIA_CHECK(dtype_of<T>() == dtype(), "tensor holds ", dtype_name(dtype()), ", asked for ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  // The host's summary of an int32 tensor's values (see IntValueSummary), or null when unknown.
  const IntValueSummary* int_summary() const;
  // What a kernel sees of this tensor (core/tensor_view.h): pointer, shape, strides, dtype, device;
  // valid while this tensor's storage and metadata live. An undefined tensor gives an undefined view.
  TensorView view_for_kernel() const {
    if (!impl_) return TensorView();
    return TensorView(raw_data(), &impl_->shape, &impl_->strides, impl_->dtype, impl_->storage->device);
  }
  operator TensorView() const { return view_for_kernel(); }  // kernels take views; tensors pass as they are

  // ---- copies and conversions (not recorded by autograd unless noted) ----
  Tensor contiguous() const;           // differentiable; returns *this when already contiguous
  Tensor to(Device d) const;           // differentiable device copy
  Tensor to(DType t) const;            // differentiable between float dtypes
  Tensor clone() const;                // contiguous copy with no autograd history
  Tensor detach() const;               // same storage, no autograd history
  void copy_from(const Tensor& src) const;  // same shape; any device/dtype pair; not recorded
  void fill_(double value) const;      // not recorded

  // ---- views (differentiable) ----
  Tensor reshape(const Shape& shape) const;  // a view when contiguous, else a copy; one -1 allowed
  Tensor transpose(int a, int b) const;
  Tensor slice(int dim, int64_t start, int64_t end) const;  // [start, end) along dim
  Tensor select(int dim, int64_t index) const;               // slice + drop the dim

  // ---- host access ----
  std::vector<float> to_floats() const;   // any float dtype, any device
  std::vector<double> to_doubles() const;
  std::vector<int32_t> to_ints() const;
  double item() const;  // numel() must be 1

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r);  // only on leaves
  bool is_leaf() const { return impl().is_leaf; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  void zero_grad() const { impl().grad.reset(); }
  // Backward from this scalar through the recorded tape; leaves accumulate into grad().
  // retain_graph keeps the tape (and the activations it saved) for another backward.
  void backward(bool retain_graph = false) const;

  TensorImpl& impl() const {
    ARIA_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_as(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// The kernel views of a list of tensors (kernels taking lists: sum_squares, spc_penalty_grad).
std::vector<TensorView> views_of(const std::vector<Tensor>& ts);

}  // namespace aria
