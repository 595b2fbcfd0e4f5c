// Softmax over the last dimension of x viewed as [N, C], float32.
// Rows up to 1024 wide: one warp per row; wider rows: one block of 256 threads per row. Forward makes
// one online (max, sum) pass and one writing pass; backward dx = y * (dy - sum(y * dy)).
#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kWarpRowLimit = 1024;
constexpr int kRowsPerBlock = 8;
constexpr int kBlock = 256;

// One "group" (a warp or the whole block) per row.
template <bool kWarp>
__global__ void softmax_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t N, int64_t C) {
  __shared__ MaxSum scratch[32];
  const int64_t row = kWarp ? blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5) : int64_t(blockIdx.x);
  const int tid = kWarp ? (threadIdx.x & 31) : threadIdx.x;
  const int nthreads = kWarp ? 32 : blockDim.x;
  if (kWarp && row >= N) return;  // whole warps leave together; the block version has no early exit
  const float* xr = x + row * C;
  MaxSum ms{-INFINITY, 0.f};
  for (int64_t c = tid; c < C; c += nthreads) ms = maxsum_add(ms, xr[c]);
  ms = kWarp ? warp_maxsum(ms) : block_maxsum(ms, scratch);
  const float inv = 1.f / ms.s;
  float* yr = y + row * C;
  for (int64_t c = tid; c < C; c += nthreads) yr[c] = __expf(xr[c] - ms.m) * inv;
}

template <bool kWarp>
__global__ void softmax_backward_kernel(const float* __restrict__ y, const float* __restrict__ dy,
                                        float* __restrict__ dx, int64_t N, int64_t C) {
  __shared__ float scratch[32];
  const int64_t row = kWarp ? blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5) : int64_t(blockIdx.x);
  const int tid = kWarp ? (threadIdx.x & 31) : threadIdx.x;
  const int nthreads = kWarp ? 32 : blockDim.x;
  if (kWarp && row >= N) return;
  const float* yr = y + row * C;
  const float* dyr = dy + row * C;
  float s = 0.f;
  for (int64_t c = tid; c < C; c += nthreads) s += yr[c] * dyr[c];
  s = kWarp ? warp_sum(s) : block_sum(s, scratch);
  float* dxr = dx + row * C;
  for (int64_t c = tid; c < C; c += nthreads) dxr[c] = yr[c] * (dyr[c] - s);
}

void check_rows(const Tensor& a, const Tensor& b, const char* what) {
  ARIA_CHECK(a.dtype() == DType::F32 && b.dtype() == DType::F32, what, ": CUDA supports float32 only");
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous(), what, ": tensors must be contiguous");
  check_same_shape(a, b, what);
  ARIA_CHECK(a.dim() >= 1, what, ": needs at least one dimension");
}

}  // namespace

void softmax_forward(const Tensor& x, const Tensor& y) {
  check_rows(x, y, "softmax_forward");
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  if (N == 0) return;
  if (C <= kWarpRowLimit)
    softmax_forward_kernel<true><<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
        x.data<float>(), y.data<float>(), N, C);
  else
    softmax_forward_kernel<false><<<unsigned(N), kBlock, 0, stream()>>>(x.data<float>(), y.data<float>(), N, C);
  ARIA_CUDA_LAUNCH_CHECK();
}

void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
  check_rows(y, dy, "softmax_backward");
  check_rows(y, dx, "softmax_backward");
  const int64_t C = y.size(-1), N = C ? y.numel() / C : 0;
  if (N == 0) return;
  if (C <= kWarpRowLimit)
    softmax_backward_kernel<true><<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
        y.data<float>(), dy.data<float>(), dx.data<float>(), N, C);
  else
    softmax_backward_kernel<false><<<unsigned(N), kBlock, 0, stream()>>>(y.data<float>(), dy.data<float>(),
                                                                         dx.data<float>(), N, C);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
