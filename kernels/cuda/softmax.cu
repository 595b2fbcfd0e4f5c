// Softmax over the last dimension of x viewed as [N, C]: float32, float64 and bfloat16 data.
// Statistics and math in fp32 for float32/bfloat16 (float64 for float64); bf16 outputs round once.
// Rows up to 1024 wide: one warp per row; wider rows: one block of 256 threads per row. Forward makes
// one online (max, sum) pass and one writing pass; backward dx = y * (dy - sum(y * dy)).
#include <type_traits>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kWarpRowLimit = 1024;
constexpr int kRowsPerBlock = 8;
constexpr int kBlock = 256;

// ---- float64: the same online statistics in double ----------------------------------------------
// MaxSum in common.cuh is fp32; its templated warp_maxsum / block_maxsum merge these too.
struct MaxSum64 {
  double m, s;
};

__device__ __forceinline__ MaxSum64 maxsum_merge(MaxSum64 a, MaxSum64 b) {
  const double m = fmax(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0};
  return {m, a.s * exp(a.m - m) + b.s * exp(b.m - m)};
}

__device__ __forceinline__ MaxSum64 maxsum_add(MaxSum64 a, double x) {
  if (x > a.m) return {x, a.s * exp(a.m - x) + 1.0};
  if (x == -INFINITY) return a;
  return {a.m, a.s + exp(x - a.m)};
}

// The statistics type and exp of Acc<T>.
template <typename A> struct Stats { using type = MaxSum; };
template <> struct Stats<double> { using type = MaxSum64; };
__device__ __forceinline__ float exp_acc(float v) { return __expf(v); }
__device__ __forceinline__ double exp_acc(double v) { return exp(v); }

// One "group" (a warp or the whole block) per row.
template <typename T, bool kWarp>
__global__ void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t N, int64_t C) {
  using A = Acc<T>;
  using S = typename Stats<A>::type;
  __shared__ S scratch[32];
  const int64_t row = kWarp ? blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5) : int64_t(blockIdx.x);
  const int tid = kWarp ? (threadIdx.x & 31) : threadIdx.x;
  const int nthreads = kWarp ? 32 : blockDim.x;
  if (kWarp && row >= N) return;  // whole warps leave together; the block version has no early exit
  const T* xr = x + row * C;
  S ms{-INFINITY, A(0)};
  for (int64_t c = tid; c < C; c += nthreads) ms = maxsum_add(ms, load(xr + c));
  ms = kWarp ? warp_maxsum(ms) : block_maxsum(ms, scratch);
  const A inv = A(1) / ms.s;
  T* yr = y + row * C;
  for (int64_t c = tid; c < C; c += nthreads) store(yr + c, exp_acc(load(xr + c) - ms.m) * inv);
}

template <typename T, bool kWarp>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx,
                                        int64_t N, int64_t C) {
  using A = Acc<T>;
  __shared__ A scratch[32];
  const int64_t row = kWarp ? blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5) : int64_t(blockIdx.x);
  const int tid = kWarp ? (threadIdx.x & 31) : threadIdx.x;
  const int nthreads = kWarp ? 32 : blockDim.x;
  if (kWarp && row >= N) return;
  const T* yr = y + row * C;
  const T* dyr = dy + row * C;
  A s = 0;
  for (int64_t c = tid; c < C; c += nthreads) s += load(yr + c) * load(dyr + c);
  s = kWarp ? warp_sum(s) : block_sum(s, scratch);
  T* dxr = dx + row * C;
  for (int64_t c = tid; c < C; c += nthreads) store(dxr + c, load(yr + c) * (load(dyr + c) - s));
}

void check_rows(const TensorView& a, const TensorView& b, const char* what) {
  ARIA_CHECK(a.dtype() == b.dtype(), what, ": dtypes differ: ", a.str(), " vs ", b.str());
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous(), what, ": tensors must be contiguous");
  check_same_shape(a, b, what);
  check_same_device(a, b, what);
  ARIA_CHECK(a.dim() >= 1, what, ": needs at least one dimension");
}

}  // namespace

void softmax_forward(const TensorView& x, const TensorView& y) {
  check_rows(x, y, "softmax_forward");
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  dispatch_float(x.dtype(), "softmax_forward", [&](auto tag) {
    using T = decltype(tag);
    if (N == 0) return;
    if (C <= kWarpRowLimit)
      softmax_forward_kernel<T, true><<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
          dptr<T>(x), dptr<T>(y), N, C);
    else
      softmax_forward_kernel<T, false><<<unsigned(N), kBlock, 0, stream()>>>(dptr<T>(x), dptr<T>(y), N, C);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx) {
  check_rows(y, dy, "softmax_backward");
  check_rows(y, dx, "softmax_backward");
  const int64_t C = y.size(-1), N = C ? y.numel() / C : 0;
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    if (N == 0) return;
    if (C <= kWarpRowLimit)
      softmax_backward_kernel<T, true><<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
          dptr<T>(y), dptr<T>(dy), dptr<T>(dx), N, C);
    else
      softmax_backward_kernel<T, false><<<unsigned(N), kBlock, 0, stream()>>>(dptr<T>(y), dptr<T>(dy),
                                                                            dptr<T>(dx), N, C);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
