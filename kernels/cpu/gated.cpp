// CPU kernels of ARIA's gated MLP mix (gate_mix_forward / gate_mix_backward) and of the SPC penalty
// gradient (spc_penalty_grad). float32 and float64; they are the reference the CUDA kernels are
// tested against, so the row sum dpi is accumulated in double whatever the data dtype.
#include <utility>

#include "kernels/cpu/cpu_common.h"
#include "kernels/gated_check.h"
#include "kernels/kernels.h"

namespace aria::cpu {

namespace {

template <typename T>
void gate_mix_forward_impl(const T* slow, const T* fast, const T* pi, T* out, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const T p = pi[n];
    const T* s = slow + n * C;
    const T* f = fast + n * C;
    T* o = out + n * C;
    for (int64_t c = 0; c < C; ++c) o[c] = s[c] + p * (f[c] - s[c]);
  }
}

// Null output pointers are skipped.
template <typename T>
void gate_mix_backward_impl(const T* slow, const T* fast, const T* pi, const T* dout, T* dslow, T* dfast, T* dpi,
                            int64_t N, int64_t C) {
#pragma omp parallel for if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const T p = pi[n], q = T(1) - p;
    const T* g = dout + n * C;
    if (dfast)
      for (int64_t c = 0; c < C; ++c) dfast[n * C + c] = g[c] * p;
    if (dslow)
      for (int64_t c = 0; c < C; ++c) dslow[n * C + c] = g[c] * q;
    if (dpi) {
      const T* s = slow + n * C;
      const T* f = fast + n * C;
      double acc = 0;
      for (int64_t c = 0; c < C; ++c) acc += double(g[c]) * (double(f[c]) - double(s[c]));
      dpi[n] = T(acc);
    }
  }
}

template <typename T>
T* out_ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void gate_mix_forward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& out) {
  const char* what = "gate_mix_forward";
  const GateRows r = check_gate_mix_forward(slow, fast, pi, out, false);
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_mix_forward_impl<T>(slow.data<T>(), fast.data<T>(), pi.data<T>(), out.data<T>(), r.N, r.C);
  });
}

void gate_mix_backward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& dout,
                       const Tensor& dslow, const Tensor& dfast, const Tensor& dpi) {
  const char* what = "gate_mix_backward";
  const GateRows r = check_gate_mix_backward(slow, fast, pi, dout, dslow, dfast, dpi, false);
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_mix_backward_impl<T>(slow.data<T>(), fast.data<T>(), pi.data<T>(), dout.data<T>(), out_ptr<T>(dslow),
                              out_ptr<T>(dfast), out_ptr<T>(dpi), r.N, r.C);
  });
}

void spc_penalty_grad(const Tensor& grad, const Tensor& A, const Tensor& p, const Tensor& B, double lambda) {
  const char* what = "spc_penalty_grad";
  const int64_t n = check_spc_penalty_grad(grad, A, p, B, false);
  dispatch_float(grad.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    T* g = grad.data<T>();
    const T *a = A.data<T>(), *x = p.data<T>(), *b = B.data<T>();
    const T l = T(lambda);
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) g[i] += l * (a[i] * x[i] - b[i]);
  });
}

}  // namespace aria::cpu
