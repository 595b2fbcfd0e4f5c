// The backend interface: the one kernels/ header that core/ includes (tests/check_layers.py checks
// it), in two parts.
//  1. Runtime services of the CUDA backend (kernels/cuda/runtime.cu, allocator.cu, copy.cu): the
//     allocator, device count and selection, synchronisation, copies between devices, graph
//     capture, profiler ranges. The CPU backend needs none (core/allocator.cpp holds its allocator).
//  2. The kernel table: one declaration per row of kernels/kernel_list.h for each backend (cpu::,
//     cuda::), the op codes the rows take, and ARIA_DISPATCH, which picks the backend of a device.
//     Kernels take plain views (TensorView, core/tensor_view.h), never autograd tensors: this header
//     does not include core/tensor.h (a Tensor converts to its view where a kernel is called).
//  3. KernelBuffer: the temporaries kernels allocate for themselves.
// Without CUDA, kernels/cuda_stub.cpp answers every cuda:: call with a clear error.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "aria/core/adamw_item.h"
#include "aria/core/allocator.h"
#include "aria/core/tensor_view.h"

namespace aria {

// ---- 1. runtime services -------------------------------------------------------------------------
namespace cuda {
Allocator& device_allocator();  // caching allocator (kernels/cuda/allocator.cu)
int device_count();             // 0 when no GPU or no CUDA build
// The GPU of this process. The backend drives one GPU per process (one stream, one set of cuBLAS
// handles, one memory cache): the first of use_device(N), a tensor on cuda:N or any other CUDA work
// (which means cuda:0) binds the process to that GPU, and every host thread then works on it. A later
// request for another index throws, as does an index with no GPU (kernels/cuda/runtime.cu).
void use_device(int index);
int bound_device();  // -1 until bound
void synchronize();
// Brackets work for an external profiler started with --profile-from-start off (ncu, nsys).
void profiler_range(bool start);
// Copies n bytes between any two devices (host<->device, device<->device). When it returns, src may
// be reused and (for a copy to the host) dst holds the bytes. Copies to the device of up to 16 MiB
// return at once: the bytes are staged in pinned memory and copied in stream order (later kernels
// see them); larger ones and every copy to the host wait for the GPU.
void memcpy_between(void* dst, Device dst_device, const void* src, Device src_device, size_t n);
// How many memcpy_between calls so far had to wait for the GPU's queue (every copy to the host and
// large uploads): a training step that makes none lets the host run ahead of the GPU. Tests read it.
uint64_t blocking_copies();
// The GPU work that fn() queues, recorded once into a CUDA graph and replayed by replay_graph():
// kernels then start back to back without one launch each. fn must not wait for the GPU (no host
// reads; capturing fails with CUDA's error otherwise). The graph keeps the device addresses fn used:
// replay it only while those tensors are alive and nothing else writes them.
struct CapturedGraph;
std::shared_ptr<CapturedGraph> capture_graph(const std::function<void()>& fn);
void replay_graph(const CapturedGraph& g);
}  // namespace cuda

// ---- 2. the kernel table -------------------------------------------------------------------------
enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };
enum class GemmEpilogue : int { None = 0, Bias = 1, Gelu = 2, DGelu = 3, BGrad = 4 };
enum class UnaryOp : int { Affine = 0, Gelu = 1, Sigmoid = 2, Relu = 3, Exp = 4, Log = 5, Tanh = 6, Square = 7 };

// AdamWItemView (one parameter's AdamW step, the adamw_update row's argument): core/adamw_item.h.

#define ARIA_KERNEL(name, params, args) void name params;
namespace cpu {
#include "aria/kernels/kernel_list.h"
}
namespace cuda {
#include "aria/kernels/kernel_list.h"
}
#undef ARIA_KERNEL

// ---- 3. kernels' temporaries ---------------------------------------------------------------------
// A contiguous temporary of a kernel (workspaces, partial sums, staging copies, uploaded argument
// tables): a TensorView that owns its bytes, from the device's allocator as a tensor's are (on CUDA
// the caching allocator: freed blocks are reused in stream order), and its shape. Movable, not
// copyable; a default one is undefined. reshaped() views the bytes of a contiguous view under
// another shape of the same size (it owns only that shape; the bytes stay the view's owner's).
class KernelBuffer : public TensorView {
 public:
  KernelBuffer() = default;
  KernelBuffer(const Shape& shape, DType dtype, Device device) : shape_store_(shape) {
    for (int64_t d : shape) ARIA_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    storage_ = std::make_unique<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
    strides_store_ = contiguous_strides(shape);
    ptr_ = storage_->data;
    dtype_ = dtype;
    device_ = device;
    point_here();
  }
  static KernelBuffer reshaped(const TensorView& t, const Shape& shape) {
    ARIA_CHECK(t.is_contiguous() && shape_numel(shape) == t.numel(), "cannot view ", t.str(), " as ", shape_str(shape));
    KernelBuffer r;
    r.shape_store_ = shape;
    r.strides_store_ = contiguous_strides(shape);
    r.ptr_ = t.raw_data();
    r.dtype_ = t.dtype();
    r.device_ = t.device();
    r.point_here();
    return r;
  }
  KernelBuffer(KernelBuffer&& o) noexcept { take(o); }
  KernelBuffer& operator=(KernelBuffer&& o) noexcept {
    if (this != &o) take(o);
    return *this;
  }
  KernelBuffer(const KernelBuffer&) = delete;
  KernelBuffer& operator=(const KernelBuffer&) = delete;

 private:
  void point_here() {
    shape_ = &shape_store_;
    strides_ = &strides_store_;
  }
  void take(KernelBuffer& o) noexcept {
    storage_ = std::move(o.storage_);
    shape_store_ = std::move(o.shape_store_);
    strides_store_ = std::move(o.strides_store_);
    ptr_ = o.ptr_;
    dtype_ = o.dtype_;
    device_ = o.device_;
    shape_ = strides_ = nullptr;
    if (o.defined()) point_here();
    o.ptr_ = nullptr;
    o.shape_ = o.strides_ = nullptr;
  }
  std::unique_ptr<Storage> storage_;
  Shape shape_store_, strides_store_;
};

}  // namespace aria

// Calls cpu::name or cuda::name according to `device`.
#define ARIA_DISPATCH(device, name, ...) \
  ((device).is_cuda() ? ::aria::cuda::name(__VA_ARGS__) : ::aria::cpu::name(__VA_ARGS__))
