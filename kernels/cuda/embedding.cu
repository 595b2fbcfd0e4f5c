// Embedding lookup and its deterministic backward.
// Backward without float atomics: the (id, position) pairs are sorted by id with cub's stable radix
// sort (positions of one id stay in increasing order), then the first entry of each run of equal ids
// sums dout over the run, in that order, and adds the sum to dweight[id]. Every dweight row is written
// by one thread per column, and the summation order is fixed: bit-identical results run to run.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

__global__ void embedding_forward_kernel(const float* __restrict__ w, const int32_t* __restrict__ ids,
                                         float* __restrict__ out, int64_t N, int64_t D, int64_t V) {
  const int64_t total = N * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / D, d = i - n * D;
    const int32_t id = ids[n];
    out[i] = (id >= 0 && id < V) ? w[int64_t(id) * D + d] : __int_as_float(0x7fc00000);  // NaN flags a bad id
  }
}

__global__ void iota_kernel(int32_t* __restrict__ p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = int32_t(i);
}

// grid.x: sorted position s (one block each; blocks that are not the start of a run exit at once),
// grid.y: column chunks of blockDim.x columns.
__global__ void embedding_backward_kernel(const int32_t* __restrict__ sorted_ids, const int32_t* __restrict__ pos,
                                          const float* __restrict__ dout, float* __restrict__ dw, int64_t N,
                                          int64_t D, int64_t V) {
  const int64_t s = blockIdx.x;
  const int32_t id = sorted_ids[s];
  if (s > 0 && sorted_ids[s - 1] == id) return;  // not the first of its run
  if (id < 0 || id >= V) return;                   // the caller checks ids; never write out of bounds
  const int64_t d = blockIdx.y * int64_t(blockDim.x) + threadIdx.x;
  if (d >= D) return;
  float acc = 0.f;
  for (int64_t t = s; t < N && sorted_ids[t] == id; ++t) acc += dout[int64_t(pos[t]) * D + d];
  dw[int64_t(id) * D + d] += acc;
}

int bits_for(int64_t V) {  // radix-sort key bits covering [0, V)
  int b = 1;
  while (b < 31 && (int64_t(1) << b) < V) ++b;
  return b;
}

}  // namespace

void embedding_forward(const Tensor& weight, const Tensor& ids, const Tensor& out) {
  ARIA_CHECK(weight.dtype() == DType::F32 && out.dtype() == DType::F32 && ids.dtype() == DType::I32,
             "embedding_forward: CUDA needs float32 weight/out and int32 ids");
  ARIA_CHECK(weight.dim() == 2 && weight.is_contiguous() && ids.is_contiguous() && out.is_contiguous(),
             "embedding_forward: contiguous [V, D] weight expected");
  const int64_t V = weight.size(0), D = weight.size(1), N = ids.numel();
  ARIA_CHECK(out.numel() == N * D, "embedding_forward: out ", out.str(), " does not hold ", N, " rows of ", D);
  if (N == 0 || D == 0) return;
  embedding_forward_kernel<<<grid_for(N * D, 256), 256, 0, stream()>>>(weight.data<float>(), ids.data<int32_t>(),
                                                                       out.data<float>(), N, D, V);
  ARIA_CUDA_LAUNCH_CHECK();
}

void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dweight) {
  ARIA_CHECK(dweight.dtype() == DType::F32 && dout.dtype() == DType::F32 && ids.dtype() == DType::I32,
             "embedding_backward: CUDA needs float32 dout/dweight and int32 ids");
  ARIA_CHECK(dweight.dim() == 2 && dweight.is_contiguous() && ids.is_contiguous() && dout.is_contiguous(),
             "embedding_backward: contiguous tensors expected");
  const int64_t V = dweight.size(0), D = dweight.size(1), N = ids.numel();
  ARIA_CHECK(dout.numel() == N * D, "embedding_backward: dout ", dout.str(), " does not hold ", N, " rows of ", D);
  ARIA_CHECK(N < INT32_MAX, "embedding_backward: too many ids");
  if (N == 0 || D == 0) return;
  const Device dev = dweight.device();
  Tensor pos_in = Tensor::empty({N}, DType::I32, dev);
  Tensor keys_out = Tensor::empty({N}, DType::I32, dev);
  Tensor pos_out = Tensor::empty({N}, DType::I32, dev);
  iota_kernel<<<grid_for(N, 256), 256, 0, stream()>>>(pos_in.data<int32_t>(), N);
  ARIA_CUDA_LAUNCH_CHECK();
  const int end_bit = bits_for(V);
  size_t temp_bytes = 0;
  ARIA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids.data<int32_t>(), keys_out.data<int32_t>(),
                                                  pos_in.data<int32_t>(), pos_out.data<int32_t>(), int(N), 0, end_bit,
                                                  stream()));
  Tensor temp = Tensor::empty({int64_t(temp_bytes / 4) + 1}, DType::I32, dev);  // cub scratch
  ARIA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, ids.data<int32_t>(),
                                                  keys_out.data<int32_t>(), pos_in.data<int32_t>(),
                                                  pos_out.data<int32_t>(), int(N), 0, end_bit, stream()));
  const int block = D >= 256 ? 256 : int(ceil_div(D, 32) * 32);
  const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>(ceil_div(D, block)));
  ARIA_CHECK(grid.y <= 65535, "embedding_backward: embedding width ", D, " too large");
  embedding_backward_kernel<<<grid, block, 0, stream()>>>(keys_out.data<int32_t>(), pos_out.data<int32_t>(),
                                                          dout.data<float>(), dweight.data<float>(), N, D, V);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
