// GELU (tanh approximation, GPT-2's) and its derivative on the device, in Acc<T> (float or double):
// the one definition behind the unary / unary_backward rows and gelu_backward_bias_grad
// (kernels/cuda/elementwise.cu), so that the fused row's derivative is the unfused one bit for bit.
#pragma once
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

constexpr double kGeluK0 = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluK1 = 0.044715;

// gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
template <typename A>
__device__ __forceinline__ A gelu_tanh(A x) {
  const A u = A(kGeluK0) * (x + A(kGeluK1) * x * x * x);
  return A(0.5) * x * (A(1) + tanh_accurate(u));
}

// d gelu(x) / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) u', t = tanh(u)
template <typename A>
__device__ __forceinline__ A gelu_tanh_grad(A x) {
  const A x2 = x * x;
  const A u = A(kGeluK0) * (x + A(kGeluK1) * x2 * x);
  const A t = tanh_accurate(u);
  return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * A(kGeluK0) * (A(1) + A(3 * kGeluK1) * x2);
}

}  // namespace aria::cuda
