// Shared state of the CUDA backend (kernels/cuda/runtime.cu): the one stream every kernel, copy and
// cuBLASLt call is issued on, the cuBLAS/cuBLASLt handles and workspace, device properties, and a few
// switches. Host-side header: safe to include from plain C++ (tests, aria-bench) in CUDA builds.
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

// float32 GEMMs: exact fp32 (CUBLAS_COMPUTE_32F) by default; TF32 tensor cores when ARIA_TF32=1 in
// the environment at first use, or after set_tf32(true).
bool tf32_enabled();
void set_tf32(bool on);

// GEMM autotuning (kernels/cuda/matmul.cu): when on, the first beta = 0 launch of each cached GEMM
// plan (a shape, dtype, alignment and epilogue) times cuBLASLt's top candidates on its own operands
// and keeps the fastest. Off by default, because the choice depends on timing: two processes may pick
// different algorithms for a shape and round differently, while by default every run gives the same
// bits. On with ARIA_GEMM_AUTOTUNE=1 in the environment at first use, or set_gemm_autotune(true)
// (plans made while it was off keep their algorithm).
bool gemm_autotune_enabled();
void set_gemm_autotune(bool on);

// Caching allocator extras (kernels/cuda/allocator.cu): returns every cached, unused block to the
// driver (cudaFree). Synchronizes the device first.
void empty_cache();

// Host bytes that an async host->device copy will read. Outside a graph recording: src itself (the
// copy is issued at once). While capture_graph() records: a pinned copy of the bytes owned by the
// graph, because the recorded copy reads its source at every replay, long after src is gone.
const void* host_source_for_copy(const void* src, size_t n);

}  // namespace aria::cuda
