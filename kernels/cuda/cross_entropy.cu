// Fused cross-entropy over logits [N, V], float32: one block per row, one online (max, sum) pass;
// the softmax is never stored. Backward recomputes exp(logit - lse) in the pass that writes dlogits.
// Targets outside [0, V) other than ignore_index give a NaN loss (the caller checks them on the host).
#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kBlock = 256;

__global__ void cross_entropy_forward_kernel(const float* __restrict__ logits, const int32_t* __restrict__ targets,
                                             float* __restrict__ losses, float* __restrict__ lse, int64_t V,
                                             int ignore_index) {
  __shared__ MaxSum scratch[32];
  const int64_t row = blockIdx.x;
  const float* x = logits + row * V;
  MaxSum ms{-INFINITY, 0.f};
  for (int64_t v = threadIdx.x; v < V; v += kBlock) ms = maxsum_add(ms, x[v]);
  ms = block_maxsum(ms, scratch);
  if (threadIdx.x == 0) {
    const float l = ms.m + __logf(ms.s);
    lse[row] = l;
    const int t = targets[row];
    float loss;
    if (t == ignore_index) loss = 0.f;
    else if (t < 0 || t >= V) loss = __int_as_float(0x7fc00000);
    else loss = l - x[t];
    losses[row] = loss;
  }
}

__global__ void cross_entropy_backward_kernel(const float* __restrict__ logits, const int32_t* __restrict__ targets,
                                              const float* __restrict__ lse, const float* __restrict__ dlosses,
                                              float* __restrict__ dlogits, int64_t V, int ignore_index) {
  const int64_t row = blockIdx.x;
  const float* x = logits + row * V;
  float* dx = dlogits + row * V;
  const int t = targets[row];
  if (t == ignore_index) {
    for (int64_t v = threadIdx.x; v < V; v += kBlock) dx[v] = 0.f;
    return;
  }
  const float l = lse[row], g = dlosses[row];
  for (int64_t v = threadIdx.x; v < V; v += kBlock) {
    const float p = __expf(x[v] - l);
    dx[v] = g * (v == t ? p - 1.f : p);
  }
}

void check_ce(const Tensor& logits, const Tensor& targets, const char* what) {
  ARIA_CHECK(logits.dtype() == DType::F32 && targets.dtype() == DType::I32, what,
             ": CUDA needs float32 logits and int32 targets");
  ARIA_CHECK(logits.is_contiguous() && targets.is_contiguous(), what, ": tensors must be contiguous");
  ARIA_CHECK(logits.dim() >= 1, what, ": logits need a class dimension");
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& losses, const Tensor& lse,
                           int ignore_index) {
  check_ce(logits, targets, "cross_entropy_forward");
  const int64_t V = logits.size(-1), N = V ? logits.numel() / V : 0;
  ARIA_CHECK(targets.numel() == N && losses.numel() == N && lse.numel() == N, "cross_entropy_forward: logits ",
             logits.str(), " vs targets ", targets.str(), ", losses ", losses.str(), ", lse ", lse.str());
  ARIA_CHECK(losses.dtype() == DType::F32 && lse.dtype() == DType::F32, "cross_entropy_forward: float32 outputs");
  ARIA_CHECK(V > 0 || N == 0, "cross_entropy_forward: no classes");
  if (N == 0) return;
  ARIA_CHECK(N <= INT32_MAX, "cross_entropy_forward: too many rows");
  cross_entropy_forward_kernel<<<unsigned(N), kBlock, 0, stream()>>>(logits.data<float>(), targets.data<int32_t>(),
                                                                     losses.data<float>(), lse.data<float>(), V,
                                                                     ignore_index);
  ARIA_CUDA_LAUNCH_CHECK();
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dlosses,
                            const Tensor& dlogits, int ignore_index) {
  check_ce(logits, targets, "cross_entropy_backward");
  const int64_t V = logits.size(-1), N = V ? logits.numel() / V : 0;
  ARIA_CHECK(targets.numel() == N && lse.numel() == N && dlosses.numel() == N && dlogits.numel() == logits.numel(),
             "cross_entropy_backward: shapes do not agree");
  ARIA_CHECK(lse.dtype() == DType::F32 && dlosses.dtype() == DType::F32 && dlogits.dtype() == DType::F32 &&
                 dlosses.is_contiguous() && dlogits.is_contiguous() && lse.is_contiguous(),
             "cross_entropy_backward: contiguous float32 tensors expected");
  if (N == 0) return;
  ARIA_CHECK(N <= INT32_MAX, "cross_entropy_backward: too many rows");
  cross_entropy_backward_kernel<<<unsigned(N), kBlock, 0, stream()>>>(logits.data<float>(), targets.data<int32_t>(),
                                                                      lse.data<float>(), dlosses.data<float>(),
                                                                      dlogits.data<float>(), V, ignore_index);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
