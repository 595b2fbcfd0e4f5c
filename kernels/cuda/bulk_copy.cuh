// Hopper's bulk asynchronous copy (the TMA unit's one-dimensional form) and the shared-memory
// barrier that counts its bytes: one thread asks for a whole contiguous block of global memory to land
// in shared memory; every thread waits on the barrier. The copy engine keeps the bytes in flight, so a
// block needs no registers and no unrolled loads to cover DRAM latency.
// Device code only for sm_90 and later: on older targets these trap, and the host must not launch a
// kernel that uses them there (bulk_copy_compiled() checks what a kernel was compiled for).
#pragma once
#include <cstdint>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

__device__ __forceinline__ uint32_t shared_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// A barrier that completes once one thread has arrived and `bytes` have landed.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(shared_addr(bar)) : "memory");
  // The copy engine (the async proxy) must see the initialised barrier.
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#else
  __trap();
#endif
}

// The calling thread's arrival, announcing `bytes` of copies to complete the phase.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint64_t* bar, uint32_t bytes) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_addr(bar)), "r"(bytes)
               : "memory");
#else
  __trap();
#endif
}

// global [src, src + bytes) -> shared dst; both 16-byte aligned, bytes a multiple of 16. Completes
// its bytes on bar.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   shared_addr(dst)),
               "l"(src), "r"(bytes), "r"(shared_addr(bar))
               : "memory");
#else
  __trap();
#endif
}

// Blocks until the barrier's phase `parity` (0 for its first use) has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#if __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(shared_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
#else
  __trap();
#endif
}

// Whether `kernel` was compiled to a binary for sm_90 or later (so the bulk copies above are real),
// on a device that runs it.
template <typename Kernel>
bool bulk_copy_compiled(Kernel kernel) {
  cudaFuncAttributes a{};
  return cudaFuncGetAttributes(&a, kernel) == cudaSuccess && a.binaryVersion >= 90 && a.ptxVersion >= 90;
}

}  // namespace aria::cuda
