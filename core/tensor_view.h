// TensorView: what a kernel sees of a tensor (kernels/kernel_list.h): a data pointer, shape, strides,
// dtype and device. Plain and non-owning: no storage handle, no autograd. A Tensor (core/tensor.h)
// converts to one implicitly, so ops and tests call kernels with tensors; the view is valid while the
// tensor it came from is alive (for a kernel call: until the end of the calling expression).
// The shape and strides are borrowed too (pointers to the owner's vectors): making a view copies
// no vector and allocates nothing, so a kernel call costs what it cost with a Tensor argument.
// Kernels' own temporaries are KernelBuffer (kernels/backend.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aria/core/device.h"
#include "aria/core/dtype.h"
#include "aria/core/error.h"

namespace aria {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class TensorView {
 public:
  TensorView() = default;  // undefined: defined() is false, as for an undefined Tensor
  // shape and strides must outlive the view (they are not copied).
  TensorView(void* ptr, const Shape* shape, const Shape* strides, DType dtype, Device device)
      : ptr_(ptr), shape_(shape), strides_(strides), dtype_(dtype), device_(device) {}

  bool defined() const { return shape_ != nullptr; }
  const Shape& shape() const { return *checked().shape_; }
  const Shape& strides() const { return *checked().strides_; }
  int dim() const { return int(shape().size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t stride(int d) const;
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype_; }
  Device device() const { return checked().device_; }
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "float32[2, 3] cpu", or "undefined"

  // Pointer to the first element. T must match dtype (checked).
  template <typename T>
  T* data() const {
    ARIA_CHECK(dtype_of<T>() == dtype(), "tensor holds ", dtype_name(dtype()), ", asked for ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(checked().ptr_);
  }
  void* raw_data() const { return checked().ptr_; }
  void* data_ptr() const { return raw_data(); }

 protected:
  const TensorView& checked() const {
    ARIA_CHECK(shape_ != nullptr, "use of an undefined tensor");
    return *this;
  }
  void* ptr_ = nullptr;
  const Shape* shape_ = nullptr;
  const Shape* strides_ = nullptr;
  DType dtype_ = DType::F32;
  Device device_;
};

// Throw with a readable message unless a and b have equal shapes / devices.
void check_same_shape(const TensorView& a, const TensorView& b, const char* what);
void check_same_device(const TensorView& a, const TensorView& b, const char* what);

}  // namespace aria
