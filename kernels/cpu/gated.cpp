// CPU kernels of ARIA's gated MLP mix (gate_mix_forward / gate_mix_backward), of its gate's head
// (gate_head_forward / gate_head_backward) and of the SPC penalty gradient (spc_penalty_grad).
// float32 and float64; they are the reference the CUDA kernels are tested against, so every sum (the
// row sums dpi and the gate's logit, the column sums dw2 and db2) is accumulated in double whatever
// the data dtype.
#include <algorithm>
#include <cmath>
#include <utility>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"
#include "aria/kernels/gated_check.h"

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

// z[n] = sum_c relu(h[n, c]) w2[c] + b2 and pi[n] = sigmoid(z[n]), in double; logit (the logits'
// dtype is T on the CPU) may be null.
template <typename T>
void gate_head_forward_impl(const T* h, const T* w2, T b2, T* pi, T* logit, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const T* hr = h + n * C;
    double z = double(b2);
    for (int64_t c = 0; c < C; ++c) z += double(std::max(hr[c], T(0))) * double(w2[c]);
    pi[n] = T(1.0 / (1.0 + std::exp(-z)));
    if (logit) logit[n] = T(z);
  }
}

constexpr int64_t kColBlock = 64;  // columns of dw2 one task sums over every row

// dz[n] = dpi[n] * sigmoid(z[n]) * sigmoid(-z[n]): the gradient of the gate's logit z.
template <typename T>
double gate_logit_grad(const T* logit, const T* dpi, int64_t n) {
  const double z = logit[n];
  return double(dpi[n]) / ((1.0 + std::exp(-z)) * (1.0 + std::exp(z)));
}

// Null output pointers are skipped. dw2 and db2 walk the rows in order in each column block, so the
// sums do not depend on the thread count.
template <typename T>
void gate_head_backward_impl(const T* h, const T* w2, const T* logit, const T* dpi, T* dh, T* dw2, T* db2, int64_t N,
                             int64_t C) {
  if (dh) {
#pragma omp parallel for if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; ++n) {
      const double dz = gate_logit_grad(logit, dpi, n);
      const T* hr = h + n * C;
      for (int64_t c = 0; c < C; ++c) dh[n * C + c] = hr[c] > T(0) ? T(dz * double(w2[c])) : T(0);
    }
  }
  if (dw2) {
    const int64_t blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for if (N * C >= kParallelMin)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
      double acc[kColBlock] = {};
      for (int64_t n = 0; n < N; ++n) {
        const double dz = gate_logit_grad(logit, dpi, n);
        const T* hr = h + n * C;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dz * double(std::max(hr[c], T(0)));
      }
      for (int64_t c = c0; c < c1; ++c) dw2[c] = T(acc[c - c0]);
    }
  }
  if (db2) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += gate_logit_grad(logit, dpi, n);
    db2[0] = T(acc);
  }
}

template <typename T>
T* out_ptr(const TensorView& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void gate_mix_forward(const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& out) {
  const char* what = "gate_mix_forward";
  const GateRows r = check_gate_mix_forward(slow, fast, pi, out, false);
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_mix_forward_impl<T>(slow.data<T>(), fast.data<T>(), pi.data<T>(), out.data<T>(), r.N, r.C);
  });
}

void gate_mix_backward(const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& dout,
                       const TensorView& dslow, const TensorView& dfast, const TensorView& dpi) {
  const char* what = "gate_mix_backward";
  const GateRows r = check_gate_mix_backward(slow, fast, pi, dout, dslow, dfast, dpi, false);
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_mix_backward_impl<T>(slow.data<T>(), fast.data<T>(), pi.data<T>(), dout.data<T>(), out_ptr<T>(dslow),
                              out_ptr<T>(dfast), out_ptr<T>(dpi), r.N, r.C);
  });
}

void gate_head_forward(const TensorView& h, const TensorView& w2, const TensorView& b2, const TensorView& pi,
                       const TensorView& logit) {
  const char* what = "gate_head_forward";
  const GateRows r = check_gate_head_forward(h, w2, b2, pi, logit, false);
  dispatch_float(h.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_head_forward_impl<T>(h.data<T>(), w2.data<T>(), b2.data<T>()[0], pi.data<T>(), out_ptr<T>(logit), r.N, r.C);
  });
}

void gate_head_backward(const TensorView& h, const TensorView& w2, const TensorView& logit, const TensorView& dpi,
                        const TensorView& dh, const TensorView& dw2, const TensorView& db2) {
  const char* what = "gate_head_backward";
  const GateRows r = check_gate_head_backward(h, w2, logit, dpi, dh, dw2, db2, false);
  dispatch_float(h.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    gate_head_backward_impl<T>(h.data<T>(), w2.data<T>(), logit.data<T>(), dpi.data<T>(), out_ptr<T>(dh),
                               out_ptr<T>(dw2), out_ptr<T>(db2), r.N, r.C);
  });
}

namespace {

// a * b rounded on its own, never fused with the subtraction that follows into a multiply-add: B holds
// the rounded products F theta*, so where one consolidated task alone constrains a parameter (A = F_t,
// B = F_t theta*_t) and the parameter sits at its anchor, A p - B is exactly 0, as the penalty's true
// gradient is. A fused a * p - b leaves B's rounding residue instead, and AdamW's per-element
// normalisation turns that residue into an lr-sized step on a parameter that has no gradient of its own
// (found by the PyTorch twin, docs/twin.md).
template <typename T>
inline T rounded_product(T a, T b) {
  volatile T p = a * b;
  return p;
}

}  // namespace

void spc_penalty_grad(const std::vector<TensorView>& grads, const std::vector<TensorView>& As,
                      const std::vector<TensorView>& ps, const std::vector<TensorView>& Bs, double lambda) {
  const char* what = "spc_penalty_grad";
  check_spc_penalty_grad(grads, As, ps, Bs, false);  // every tensor checked before any is written
  if (grads.empty()) return;
  dispatch_float(grads[0].dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    const T l = T(lambda);
    for (size_t k = 0; k < grads.size(); ++k) {
      T* g = grads[k].data<T>();
      const T *a = As[k].data<T>(), *x = ps[k].data<T>(), *b = Bs[k].data<T>();
      const int64_t n = grads[k].numel();
#pragma omp parallel for if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) g[i] += l * (rounded_product(a[i], x[i]) - b[i]);
    }
  });
}

}  // namespace aria::cpu
