// Helpers shared by the CUDA kernel files: launch sizing, N-d strided indexing, warp/block
// reductions, and precise-enough math under --use_fast_math.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aria/kernels/backend.h"
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"

namespace aria::cuda {

constexpr int kMaxDims = 8;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, at least 1.
inline unsigned grid_for(int64_t n, int block) {
  int64_t g = (n + block - 1) / block;
  int64_t cap = int64_t(num_sms()) * 32;
  if (g > cap) g = cap;
  if (g < 1) g = 1;
  return unsigned(g);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// for (i in [0, n)) over every thread of a grid_for() launch, one stride of the whole grid per step.
#define ARIA_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Splits a reduction of length R into chunks for grid.y: enough blocks (bx per chunk) to fill the GPU,
// each chunk at least min_len long, at most 4096 chunks. Returns the chunk length (the last may be short).
inline int64_t reduction_chunk_len(int64_t R, int64_t bx, int64_t min_len) {
  int64_t nchunks = std::max<int64_t>(1, ceil_div(int64_t(num_sms()) * 4, std::max<int64_t>(bx, 1)));
  nchunks = std::min<int64_t>({nchunks, ceil_div(R, min_len), 4096});
  nchunks = std::max<int64_t>(nchunks, 1);
  return std::max<int64_t>(1, ceil_div(R, nchunks));
}

// ---- N-d strided indexing for up to K operands ------------------------------------------------
// Row-major walk over `shape`; operand k's element offset is the dot product of the index with its
// strides. Built on the host by make_indexer, which drops extent-1 dimensions and merges adjacent
// dimensions that are contiguous in every operand (so a contiguous tensor becomes one dimension).
template <int K>
struct Indexer {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t strides[K][kMaxDims];

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < nd) {
        const int64_t c = i % shape[d];
        i /= shape[d];
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += c * strides[k][d];
      }
    }
  }
};

// shape and K stride lists (each shape.size() long) -> coalesced indexer. Throws past kMaxDims.
template <int K>
Indexer<K> make_indexer(const Shape& shape, const Shape* const (&strides)[K], const char* what) {
  Indexer<K> ix;
  int64_t sh[64];
  int64_t st[K][64];
  int n = 0;
  ARIA_CHECK(shape.size() <= 64, what, ": too many dimensions");
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // contributes nothing to any offset
    sh[n] = shape[d];
    for (int k = 0; k < K; ++k) st[k][n] = (*strides[k])[d];
    ++n;
  }
  // merge dimension j into j-1 when contiguous in every operand
  int m = 0;
  for (int j = 0; j < n; ++j) {
    if (m > 0) {
      bool merge = true;
      for (int k = 0; k < K; ++k) merge = merge && st[k][m - 1] == st[k][j] * sh[j];
      if (merge) {
        sh[m - 1] *= sh[j];
        for (int k = 0; k < K; ++k) st[k][m - 1] = st[k][j];
        continue;
      }
    }
    sh[m] = sh[j];
    for (int k = 0; k < K; ++k) st[k][m] = st[k][j];
    ++m;
  }
  ARIA_CHECK(m <= kMaxDims, what, ": more than ", kMaxDims, " non-mergeable dimensions are not supported on CUDA");
  ix.nd = m;
  for (int d = 0; d < m; ++d) {
    ix.shape[d] = sh[d];
    for (int k = 0; k < K; ++k) ix.strides[k][d] = st[k][d];
  }
  return ix;
}

template <int K>
inline bool indexer_is_flat(const Indexer<K>& ix) {  // every operand contiguous (offset == index)
  if (ix.nd == 0) return true;
  if (ix.nd > 1) return false;
  for (int k = 0; k < K; ++k)
    if (ix.strides[k][0] != 1) return false;
  return true;
}

// ---- reductions --------------------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;  // identical in every lane (a + b == b + a bit for bit)
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); result valid in every thread.
// `scratch` holds 32 values. Fixed order: deterministic.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : T(0);
  return warp_sum(r);
}

// ---- mixed precision: storage types and fp32 math -----------------------------------------------
// Kernels are templated on the storage type T (float, double or __nv_bfloat16) and compute in
// `Acc<T>` (fp32 for float and bfloat16, double for double). load/store convert; store rounds to
// nearest even.
template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using Acc = typename AccOf<T>::type;

template <typename T> __device__ __forceinline__ Acc<T> load(const T* p) { return Acc<T>(*p); }
template <> __device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ void store(T* p, Acc<T> v) { *p = T(v); }
template <> __device__ __forceinline__ void store<__nv_bfloat16>(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Calls fn(T{}) with T the storage type of `dtype` among float32, float64 and bfloat16; any other
// dtype is an error naming `what`. Usage: dispatch_float(x.dtype(), "gelu", [&](auto tag) { using T
// = decltype(tag); ... });
template <typename Fn>
void dispatch_float(DType dtype, const char* what, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    case DType::BF16: fn(__nv_bfloat16{}); return;
    default: ARIA_FAIL(what, ": CUDA supports float32, float64 and bfloat16, got ", dtype_name(dtype));
  }
}

// ---- 16-byte vector access ----------------------------------------------------------------------
// The device pointer of t as T* (T may be __nv_bfloat16, which TensorView::data<T>() does not know; the
// dtype is checked by dispatch_float before).
template <typename T>
T* dptr(const TensorView& t) {
  return static_cast<T*>(t.raw_data());
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
constexpr int kVec = int(16 / sizeof(T));  // elements per 16-byte pack

// VW consecutive elements as one aligned load/store (16 bytes when VW = kVec<T>).
template <typename T, int VW>
struct alignas(sizeof(T) * VW) Pack {
  T v[VW];
};

template <typename T, int VW>
__device__ __forceinline__ void load_pack(const T* p, Acc<T> (&out)[VW]) {
  const Pack<T, VW> pk = *reinterpret_cast<const Pack<T, VW>*>(p);
#pragma unroll
  for (int k = 0; k < VW; ++k) out[k] = load(&pk.v[k]);
}

template <typename T, int VW>
__device__ __forceinline__ void store_pack(T* p, const Acc<T> (&in)[VW]) {
  Pack<T, VW> pk;
#pragma unroll
  for (int k = 0; k < VW; ++k) store(&pk.v[k], in[k]);
  *reinterpret_cast<Pack<T, VW>*>(p) = pk;
}

// ---- multi-tensor launches -----------------------------------------------------------------------
// One launch over a list of tensors (adamw_update, sum_squares, spc_penalty_grad): the host uploads
// an array of per-tensor descriptors (Item, with an int64_t first_block member), the grid is the
// concatenation of each tensor's chunks, and a block finds its tensor by binary search.

// The largest i with items[i].first_block <= blk (items sorted by first_block, items[0]'s is 0).
template <typename Item>
__device__ __forceinline__ int find_item(const Item* items, int n_items, int64_t blk) {
  int lo = 0, hi = n_items - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (items[mid].first_block <= blk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Copies a host array of items to a fresh device buffer (the caching allocator reuses it next call;
// the copy is stream-ordered, so the host array may go once this returns).
template <typename Item>
KernelBuffer upload(const std::vector<Item>& items, Device dev) {
  const int64_t words = int64_t((items.size() * sizeof(Item) + 7) / 8);
  KernelBuffer buf({words}, DType::I64, dev);
  const size_t n = items.size() * sizeof(Item);
  ARIA_CUDA_CHECK(
      cudaMemcpyAsync(buf.raw_data(), host_source_for_copy(items.data(), n), n, cudaMemcpyHostToDevice, stream()));
  return buf;
}

// ---- math that stays accurate under --use_fast_math -------------------------------------------
// nvcc's fast math turns tanhf into tanh.approx.f32 (about 1e-3 relative error), too coarse for
// GELU checked against the CPU to 1e-4. This one is ~1e-7 absolute.
__device__ __forceinline__ float tanh_accurate(float u) {
  const float a = fabsf(u);
  if (a < 0.125f) {
    const float u2 = u * u;
    return u * (1.f + u2 * (-1.f / 3.f + u2 * (2.f / 15.f + u2 * (-17.f / 315.f))));
  }
  const float t = 1.f - 2.f / (__expf(2.f * a) + 1.f);  // exp overflow -> inf -> t = 1
  return copysignf(t, u);
}
__device__ __forceinline__ double tanh_accurate(double u) { return tanh(u); }

}  // namespace aria::cuda

namespace aria::cuda {

// ---- online softmax statistics: (max m, sum s of exp(x - m)) ------------------------------------
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.f};  // both empty (or all -inf)
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

__device__ __forceinline__ MaxSum maxsum_add(MaxSum a, float x) {
  if (x > a.m) return {x, a.s * __expf(a.m - x) + 1.f};  // exp(-inf) = 0 for the first element
  if (x == -INFINITY) return a;                          // masked entry: adds nothing (and no NaN)
  return {a.m, a.s + __expf(x - a.m)};
}

// Warp-wide merge; result in every lane. M: MaxSum, or any {m, s} statistics with a maxsum_merge
// overload (softmax.cu's float64 MaxSum64).
template <typename M>
__device__ __forceinline__ M warp_maxsum(M v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    M other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = maxsum_merge(v, other);
  }
  return v;
}

// Block-wide merge (blockDim.x a multiple of 32); result in every thread. scratch: 32 entries.
template <typename M>
__device__ __forceinline__ M block_maxsum(M v, M* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_maxsum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  M r = lane < nwarps ? scratch[lane] : M{-INFINITY, 0};
  return warp_maxsum(r);
}

}  // namespace aria::cuda
