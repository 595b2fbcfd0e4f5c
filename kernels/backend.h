// The backend interface: the one kernels/ header that core/ includes (tests/check_layers.py checks
// it), in two parts.
//  1. Runtime services of the CUDA backend (kernels/cuda/runtime.cu, allocator.cu, copy.cu): the
//     allocator, device count and selection, synchronisation, copies between devices, graph
//     capture, profiler ranges. The CPU backend needs none (core/allocator.cpp holds its allocator).
//  2. The kernel table: one declaration per row of kernels/kernel_list.h for each backend (cpu::,
//     cuda::), the op codes the rows take, and ARIA_DISPATCH, which picks the backend of a device.
// Without CUDA, kernels/cuda_stub.cpp answers every cuda:: call with a clear error.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "aria/core/adamw_item.h"
#include "aria/core/tensor.h"

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

// AdamWItem (one parameter's AdamW step, the adamw_update row's argument): core/adamw_item.h.

#define ARIA_KERNEL(name, params, args) void name params;
namespace cpu {
#include "aria/kernels/kernel_list.h"
}
namespace cuda {
#include "aria/kernels/kernel_list.h"
}
#undef ARIA_KERNEL

}  // namespace aria

// Calls cpu::name or cuda::name according to `device`.
#define ARIA_DISPATCH(device, name, ...) \
  ((device).is_cuda() ? ::aria::cuda::name(__VA_ARGS__) : ::aria::cpu::name(__VA_ARGS__))
