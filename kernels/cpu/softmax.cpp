// CPU softmax over the last dimension (float32 / float64), max-subtracted for stability.
#include <algorithm>
#include <cmath>

#include "aria/kernels/backend.h"

namespace aria::cpu {

namespace {

template <typename T>
void forward_impl(const TensorView& x, const TensorView& y) {
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  const T* px = x.data<T>();
  T* py = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = px + n * C;
    T* yr = py + n * C;
    T m = xr[0];
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; ++c) m = std::max(m, xr[c]);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) {
      yr[c] = std::exp(xr[c] - m);
      s += yr[c];
    }
    const T inv = T(1.0 / s);
    for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
  }
}

// dx = y * (dy - sum(dy * y))
template <typename T>
void backward_impl(const TensorView& y, const TensorView& dy, const TensorView& dx) {
  const int64_t C = y.size(-1), N = C ? y.numel() / C : 0;
  const T *py = y.data<T>(), *pg = dy.data<T>();
  T* pd = dx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T *yr = py + n * C, *gr = pg + n * C;
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(yr[c]) * gr[c];
    T* dr = pd + n * C;
    for (int64_t c = 0; c < C; ++c) dr[c] = T(yr[c] * (gr[c] - dot));
  }
}

void check_pair(const TensorView& a, const TensorView& b, const char* what) {
  ARIA_CHECK(a.dim() >= 1 && a.is_contiguous() && b.is_contiguous(), what, ": tensors must be contiguous, got ",
             a.str(), " and ", b.str());
  check_same_shape(a, b, what);
  ARIA_CHECK(a.dtype() == b.dtype(), what, ": dtypes differ: ", a.str(), " vs ", b.str());
}

}  // namespace

void softmax_forward(const TensorView& x, const TensorView& y) {
  check_pair(x, y, "softmax_forward");
  if (x.dtype() == DType::F32) return forward_impl<float>(x, y);
  if (x.dtype() == DType::F64) return forward_impl<double>(x, y);
  ARIA_FAIL("softmax_forward: unsupported dtype ", dtype_name(x.dtype()));
}

void softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx) {
  check_pair(y, dy, "softmax_backward");
  check_pair(y, dx, "softmax_backward");
  if (y.dtype() == DType::F32) return backward_impl<float>(y, dy, dx);
  if (y.dtype() == DType::F64) return backward_impl<double>(y, dy, dx);
  ARIA_FAIL("softmax_backward: unsupported dtype ", dtype_name(y.dtype()));
}

}  // namespace aria::cpu
