// Shared state of the CUDA backend (kernels/cuda/runtime.cu): the one stream every kernel, copy and
// cuBLASLt call is issued on, the cuBLAS/cuBLASLt handles and workspace, and device properties (its
// switches are in core/context.h). Host-side header: safe to include from plain C++ (tests,
// aria-bench) in CUDA builds.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace aria::cuda {

// The stream all work goes to. Created once (blocking with respect to the legacy default stream, so
// stray work on stream 0 is still ordered with ours). Never destroyed (outlives static destructors).
cudaStream_t stream();

const cudaDeviceProp& device_props();  // of the current device (index 0 today)
int num_sms();

// cuBLASLt handle and its workspace (32 MiB, allocated once), cuBLAS handle (float64 GEMMs).
cublasLtHandle_t lt_handle();
void* lt_workspace();
size_t lt_workspace_size();
cublasHandle_t blas_handle();

// Caching allocator extras (kernels/cuda/allocator.cu): returns every cached, unused block to the
// driver (cudaFree). Synchronizes the device first.
void empty_cache();

// Host bytes that an async host->device copy will read. Outside a graph recording: src itself (the
// copy is issued at once). While capture_graph() records: a pinned copy of the bytes owned by the
// graph, because the recorded copy reads its source at every replay, long after src is gone.
const void* host_source_for_copy(const void* src, size_t n);

}  // namespace aria::cuda
