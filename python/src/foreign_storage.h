// Tensors over memory that another library owns (a numpy array, a DLPack producer): the storage
// calls `release` instead of freeing, when the last aria view of it goes away.
#pragma once
#include <functional>
#include <memory>

#include "aria/core/tensor.h"

namespace aria::python {

// A storage of `nbytes` at `data` (non-null) on `device`; release() runs once, when it is destroyed.
std::shared_ptr<Storage> foreign_storage(void* data, size_t nbytes, Device device, std::function<void()> release);

// A tensor viewing `storage` (offset and strides in elements).
Tensor tensor_over(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape, const Shape& strides,
                   int64_t offset);

// Bytes from the first to one past the last element of a view (non-negative strides, numel > 0).
size_t view_extent_bytes(const Shape& shape, const Shape& strides, DType dtype);

// "float32", "float64", "float16", "bfloat16", "int32", "int64"; anything else is an InputError.
DType dtype_arg(const std::string& name);

}  // namespace aria::python
