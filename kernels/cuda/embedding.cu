// Embedding lookup and its deterministic backward: float32, float64 and bfloat16 weights.
// Backward without float atomics: the (id, position) pairs are sorted by id with cub's stable radix
// sort (positions of one id stay in increasing order), then the first entry of each run of equal ids
// sums dout over the run, in that order, in Acc<T> (fp32 for bf16), and adds the sum to dweight[id]
// (one rounding per element for bf16). Every dweight row is written by one thread per column, and the
// summation order is fixed: bit-identical results run to run.
#include <cub/device/device_radix_sort.cuh>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kFwdRows = 8;  // rows per forward block (one warp each)

// out[n, :] = w[ids[n], :], a warp per row moving VW elements (16 bytes when VW > 1) per lane and
// step. A bad id (the caller checks; never read out of bounds) writes NaN.
template <typename T, int VW>
__global__ void embedding_forward_kernel(const T* __restrict__ w, const int32_t* __restrict__ ids,
                                         T* __restrict__ out, int64_t N, int64_t D, int64_t V) {
  const int64_t packs = D / VW;
  for (int64_t n = blockIdx.x * int64_t(kFwdRows) + threadIdx.y; n < N; n += int64_t(gridDim.x) * kFwdRows) {
    const int32_t id = ids[n];
    Pack<T, VW>* o = reinterpret_cast<Pack<T, VW>*>(out + n * D);
    if (id >= 0 && id < V) {
      const Pack<T, VW>* src = reinterpret_cast<const Pack<T, VW>*>(w + int64_t(id) * D);
      for (int64_t p = threadIdx.x; p < packs; p += 32) o[p] = src[p];
    } else {
      Pack<T, VW> bad;
#pragma unroll
      for (int k = 0; k < VW; ++k) store(&bad.v[k], Acc<T>(__int_as_float(0x7fc00000)));
      for (int64_t p = threadIdx.x; p < packs; p += 32) o[p] = bad;
    }
  }
}

__global__ void iota_kernel(int32_t* __restrict__ p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = int32_t(i);
}

// grid.x: sorted position s (one block each; blocks that are not the start of a run exit at once),
// grid.y: column chunks of blockDim.x columns.
template <typename T>
__global__ void embedding_backward_kernel(const int32_t* __restrict__ sorted_ids, const int32_t* __restrict__ pos,
                                          const T* __restrict__ dout, T* __restrict__ dw, int64_t N, int64_t D,
                                          int64_t V) {
  const int64_t s = blockIdx.x;
  const int32_t id = sorted_ids[s];
  if (s > 0 && sorted_ids[s - 1] == id) return;  // not the first of its run
  if (id < 0 || id >= V) return;                   // the caller checks ids; never write out of bounds
  const int64_t d = blockIdx.y * int64_t(blockDim.x) + threadIdx.x;
  if (d >= D) return;
  Acc<T> acc = 0;
  for (int64_t t = s; t < N && sorted_ids[t] == id; ++t) acc += load(dout + int64_t(pos[t]) * D + d);
  T* dst = dw + int64_t(id) * D + d;
  store(dst, load(dst) + acc);
}

int bits_for(int64_t V) {  // radix-sort key bits covering [0, V)
  int b = 1;
  while (b < 31 && (int64_t(1) << b) < V) ++b;
  return b;
}

}  // namespace

void embedding_forward(const TensorView& weight, const TensorView& ids, const TensorView& out) {
  ARIA_CHECK(ids.dtype() == DType::I32, "embedding_forward: ids must be int32, got ", ids.str());
  ARIA_CHECK(weight.dtype() == out.dtype(), "embedding_forward: weight ", weight.str(), " and out ", out.str(),
             " dtypes differ");
  ARIA_CHECK(weight.dim() == 2 && weight.is_contiguous() && ids.is_contiguous() && out.is_contiguous(),
             "embedding_forward: contiguous [V, D] weight expected");
  const int64_t V = weight.size(0), D = weight.size(1), N = ids.numel();
  ARIA_CHECK(out.numel() == N * D, "embedding_forward: out ", out.str(), " does not hold ", N, " rows of ", D);
  if (N == 0 || D == 0) return;
  dispatch_float(weight.dtype(), "embedding_forward", [&](auto tag) {
    using T = decltype(tag);
    constexpr int VW = int(16 / sizeof(T));
    const T* w = dptr<T>(weight);
    T* o = dptr<T>(out);
    const unsigned grid = unsigned(std::min<int64_t>(ceil_div(N, kFwdRows), int64_t(num_sms()) * 32));
    const dim3 block(32, kFwdRows);
    // rows as 16-byte packs when every row start is 16-byte aligned
    if (D % VW == 0 && aligned16(w) && aligned16(o))
      embedding_forward_kernel<T, VW><<<grid, block, 0, stream()>>>(w, ids.data<int32_t>(), o, N, D, V);
    else
      embedding_forward_kernel<T, 1><<<grid, block, 0, stream()>>>(w, ids.data<int32_t>(), o, N, D, V);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void embedding_backward(const TensorView& ids, const TensorView& dout, const TensorView& dweight) {
  ARIA_CHECK(ids.dtype() == DType::I32, "embedding_backward: ids must be int32, got ", ids.str());
  ARIA_CHECK(dweight.dtype() == dout.dtype(), "embedding_backward: dout ", dout.str(), " and dweight ",
             dweight.str(), " dtypes differ");
  ARIA_CHECK(is_floating(dweight.dtype()) && dweight.dtype() != DType::F16,  // refused before any work is queued
             "embedding_backward: CUDA supports float32, float64 and bfloat16, got ", dtype_name(dweight.dtype()));
  ARIA_CHECK(dweight.dim() == 2 && dweight.is_contiguous() && ids.is_contiguous() && dout.is_contiguous(),
             "embedding_backward: contiguous tensors expected");
  const int64_t V = dweight.size(0), D = dweight.size(1), N = ids.numel();
  ARIA_CHECK(dout.numel() == N * D, "embedding_backward: dout ", dout.str(), " does not hold ", N, " rows of ", D);
  ARIA_CHECK(N < INT32_MAX, "embedding_backward: too many ids");
  if (N == 0 || D == 0) return;
  const Device dev = dweight.device();
  KernelBuffer pos_in({N}, DType::I32, dev);
  KernelBuffer keys_out({N}, DType::I32, dev);
  KernelBuffer pos_out({N}, DType::I32, dev);
  iota_kernel<<<grid_for(N, 256), 256, 0, stream()>>>(pos_in.data<int32_t>(), N);
  ARIA_CUDA_LAUNCH_CHECK();
  const int end_bit = bits_for(V);
  size_t temp_bytes = 0;
  ARIA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids.data<int32_t>(), keys_out.data<int32_t>(),
                                                  pos_in.data<int32_t>(), pos_out.data<int32_t>(), int(N), 0, end_bit,
                                                  stream()));
  KernelBuffer temp({int64_t(temp_bytes / 4) + 1}, DType::I32, dev);  // cub scratch
  ARIA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, ids.data<int32_t>(),
                                                  keys_out.data<int32_t>(), pos_in.data<int32_t>(),
                                                  pos_out.data<int32_t>(), int(N), 0, end_bit, stream()));
  const int block = D >= 256 ? 256 : int(ceil_div(D, 32) * 32);
  const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>(ceil_div(D, block)));
  ARIA_CHECK(grid.y <= 65535, "embedding_backward: embedding width ", D, " too large");
  dispatch_float(dweight.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    embedding_backward_kernel<T><<<grid, block, 0, stream()>>>(keys_out.data<int32_t>(), pos_out.data<int32_t>(),
                                                               dptr<T>(dout), dptr<T>(dweight), N, D, V);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
