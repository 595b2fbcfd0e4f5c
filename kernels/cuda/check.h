// Error checking for every CUDA runtime and cuBLAS call: a failure throws aria::Error whose message
// names the call, the error and the source position ("kernels/cuda/copy.cu:42: cudaMemcpyAsync(...)
// failed: invalid argument (cudaErrorInvalidValue)"). Launches are checked with ARIA_CUDA_LAUNCH_CHECK()
// right after the <<<...>>>, which catches bad configurations (grid too large, too much shared memory).
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "aria/core/error.h"

namespace aria::cuda {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
  ARIA_FAIL(file, ":", line, ": ", expr, " failed: ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")");
}

[[noreturn]] inline void cublas_fail(cublasStatus_t s, const char* expr, const char* file, int line) {
  ARIA_FAIL(file, ":", line, ": ", expr, " failed: ", cublasGetStatusString(s), " (", cublasGetStatusName(s), ")");
}

}  // namespace aria::cuda

#define ARIA_CUDA_CHECK(expr)                                                           \
  do {                                                                                  \
    cudaError_t aria_err_ = (expr);                                                     \
    if (aria_err_ != cudaSuccess) ::aria::cuda::cuda_fail(aria_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define ARIA_CUBLAS_CHECK(expr)                                                            \
  do {                                                                                     \
    cublasStatus_t aria_st_ = (expr);                                                      \
    if (aria_st_ != CUBLAS_STATUS_SUCCESS) ::aria::cuda::cublas_fail(aria_st_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors (and earlier asynchronous faults).
#define ARIA_CUDA_LAUNCH_CHECK() ARIA_CUDA_CHECK(cudaGetLastError())
