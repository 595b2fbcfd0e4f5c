// GELU (tanh approximation, GPT-2's) and its derivative on the CPU: the one definition used by the
// unary / unary_backward rows and by gelu_backward_bias_grad (kernels/cpu/elementwise.cpp), so that
// the fused row's derivative is the unfused one bit for bit.
#pragma once
#include <cmath>

namespace aria::cpu {

constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;

// gelu(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): one exp
// instead of tanh (faster than glibc's tanhf; docs/perf.md) and no cancellation in 1 + tanh(u).
// gelu_s(x) is that sigmoid(2u).
template <typename T>
inline T gelu_s(T v) {
  const T u = T(kGeluC) * (v + T(kGeluA) * v * v * v);
  return T(1) / (T(1) + std::exp(T(-2) * u));
}

template <typename T>
inline T gelu_tanh(T v) {
  return v * gelu_s(v);
}

// d gelu(x) / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) u', t = tanh(u), written with s = gelu_s(x).
template <typename T>
inline T gelu_tanh_grad(T v) {
  const T sg = gelu_s(v), du = T(kGeluC) * (T(1) + T(3 * kGeluA) * v * v);
  return sg + T(2) * v * sg * (T(1) - sg) * du;
}

}  // namespace aria::cpu
