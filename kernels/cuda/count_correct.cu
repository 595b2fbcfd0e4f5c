// Classification accuracy on the GPU (see kernels/kernel_list.h): out[0] += #{n : argmax(logits[n])
// == labels[n]}, argmax as std::max_element with operator< (the first index of the maximum; a row
// starting with NaN has argmax 0, later NaNs are skipped).
//
// One warp per row (grid-stride over rows). Each lane scans its columns c = lane, lane + 32, ... in
// increasing order, keeping the first index of its largest non-NaN value; a butterfly of shuffles
// then merges the lanes' (value, index) pairs, the larger value winning and the smaller index on a
// tie: the first index of the row's maximum, in every lane. Values are compared as order-preserving
// integer keys (bit patterns), not as floats: --use_fast_math flushes subnormals to zero in float
// comparisons, which would tie subnormals the CPU tells apart; -0 and +0 share a key (they tie under
// operator< too).
//
// Counting is exact and deterministic: warps add their row counts into a shared integer, and each
// block with a non-zero count adds it to out[0] with one atomicAdd(double) of an integer value: sums
// of integers below 2^53 are exact in any order. No host sync and no allocation: the launch is
// queued on aria's stream and nothing is read back.
//
// Labels are not validated here (that needs a read on the host): the caller guarantees them (the
// trainer's batches are built from validated task data). A label outside [0, C) never equals an
// argmax, so such a row counts as wrong; only labels[n] for n < N and logits inside the row are read.
#include <climits>

#include "aria/kernels/count_correct_check.h"
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;  // rows in flight per block of 256 threads

// Keys with key(a) < key(b) exactly when a < b, for non-NaN a, b (infinities included); -0 and +0
// share a key; every key is > 0 (the smallest, -inf's, is 0x007fffff), so 0 means "nothing yet".
// `nan` tells whether x is a NaN (its key is then meaningless).
__device__ __forceinline__ uint32_t order_key(float x, bool& nan) {
  uint32_t u = __float_as_uint(x);
  const uint32_t mag = u & 0x7fffffffu;
  nan = mag > 0x7f800000u;
  if (mag == 0) u = 0;  // -0 -> +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ unsigned long long order_key(double x, bool& nan) {
  unsigned long long u = static_cast<unsigned long long>(__double_as_longlong(x));
  const unsigned long long mag = u & 0x7fffffffffffffffull;
  nan = mag > 0x7ff0000000000000ull;
  if (mag == 0) u = 0;  // -0 -> +0
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// The key type of storage type T (bfloat16 is converted exactly to float by load()).
template <typename T> struct KeyOf { using type = uint32_t; };
template <> struct KeyOf<double> { using type = unsigned long long; };

template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    count_correct_kernel(const T* __restrict__ logits, const int32_t* __restrict__ labels, int64_t N, int C,
                         double* __restrict__ out) {
  using K = typename KeyOf<T>::type;
  __shared__ unsigned long long block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = int64_t(gridDim.x) * kWarpsPerBlock;
  unsigned long long mine = 0;  // rows of this warp counted correct (lane 0's copy)
  // n is the same in every lane of the warp: the shuffles below always run with the full warp.
  for (int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); n < N; n += nwarps) {
    const T* row = logits + n * int64_t(C);
    K best = 0;         // no non-NaN value seen yet
    int best_i = INT_MAX;
    for (int64_t c = lane; c < C; c += 32) {  // 64-bit: c + 32 may pass INT_MAX
      bool nan;
      const K k = order_key(load(row + c), nan);
      if (!nan && k > best) {  // strictly greater: the first index of this lane's maximum stays
        best = k;
        best_i = int(c);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const K other = __shfl_xor_sync(0xffffffffu, best, o);
      const int other_i = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (other > best || (other == best && other_i < best_i)) {
        best = other;
        best_i = other_i;
      }
    }
    if (lane == 0) {
      bool nan0;
      (void)order_key(load(row), nan0);
      // A leading NaN is never replaced under operator<; otherwise best_i is a real index in [0, C)
      // (row[0] itself is a non-NaN candidate), so an out-of-range label never matches.
      const int pred = nan0 ? 0 : best_i;
      mine += labels[n] == pred ? 1ull : 0ull;
    }
  }
  if (lane == 0 && mine) atomicAdd(&block_count, mine);
  __syncthreads();
  if (threadIdx.x == 0 && block_count) atomicAdd(out, double(block_count));
}

}  // namespace

void count_correct(const TensorView& logits, const TensorView& labels, const TensorView& out) {
  check_count_correct_args(logits, labels, out);
  ARIA_CHECK(logits.device().is_cuda(), "count_correct: the CUDA kernel needs CUDA tensors, got ", logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  if (N == 0) return;
  dispatch_float(logits.dtype(), "count_correct", [&](auto tag) {
    using T = decltype(tag);
    count_correct_kernel<T><<<grid_for(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream()>>>(
        dptr<T>(logits), dptr<int32_t>(labels), N, int(C), dptr<double>(out));
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
