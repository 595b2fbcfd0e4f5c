// CPU RMSNorm over the last dimension (float32 / float64), also fused with the residual add
// (forward) and the residual gradient (backward). rstd has the input's dtype; sums are accumulated
// in double, dw's column sums in a fixed order (independent of the thread count).
#include <algorithm>
#include <cmath>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"

namespace aria::cpu {

namespace {

constexpr int64_t kColBlock = 64;  // columns per task in the dw pass

void check_vec(const TensorView& t, int64_t n, DType dt, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cpu() && t.is_contiguous() && t.numel() == n && t.dtype() == dt, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " CPU tensor with ", n, " elements, got ", t.str());
}

void rows_of(const TensorView& x, const char* what, int64_t& N, int64_t& C) {
  ARIA_CHECK(x.defined() && x.dim() >= 1 && x.is_contiguous(), what, ": x must be contiguous [N, C], got ",
             x.defined() ? x.str() : "undefined");
  C = x.size(-1);
  N = C ? x.numel() / C : 0;
}

// y = rmsnorm(x); with r given, x + r (rounded to T, stored into sum) is what is normalised.
template <typename T>
void forward_impl(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& sum,
                  const TensorView& y, const TensorView& rstd, double eps, int64_t N, int64_t C) {
  const T *px = x.data<T>(), *pw = w.data<T>();
  const T* pr = r.defined() ? r.data<T>() : nullptr;
  T* ps = sum.defined() ? sum.data<T>() : nullptr;
  T *py = y.data<T>(), *prs = rstd.data<T>();
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = px + n * C;
    if (pr) {
      T* sr = ps + n * C;
      const T* rr = pr + n * C;
      for (int64_t c = 0; c < C; ++c) sr[c] = T(xr[c] + rr[c]);
      xr = sr;
    }
    double q = 0;
    for (int64_t c = 0; c < C; ++c) q += double(xr[c]) * double(xr[c]);
    const T rs = T(1.0 / std::sqrt(q / double(C) + eps));
    T* yr = py + n * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = T(xr[c] * rs) * pw[c];  // (x * rstd) * w, as Hugging Face
    prs[n] = rs;
  }
}

// dx = dres + rstd * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * rstd; dw += sum_n dy * xhat.
template <typename T>
void backward_impl(const TensorView& x, const TensorView& w, const TensorView& rstd, const TensorView& dy,
                   const TensorView& dres, const TensorView& dx, const TensorView& dw, int64_t N, int64_t C) {
  const T *px = x.data<T>(), *pw = w.data<T>(), *pr = rstd.data<T>(), *pg = dy.data<T>();
  const T* pres = dres.defined() ? dres.data<T>() : nullptr;
  if (dx.defined()) {
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; ++n) {
      const T *xr = px + n * C, *gr = pg + n * C;
      const double rs = pr[n];
      double sgx = 0;
      for (int64_t c = 0; c < C; ++c) sgx += double(gr[c]) * pw[c] * xr[c] * rs;
      sgx /= double(C);
      T* dxr = pdx + n * C;
      const T* resr = pres ? pres + n * C : nullptr;
      for (int64_t c = 0; c < C; ++c) {
        const double d = rs * (double(gr[c]) * pw[c] - xr[c] * rs * sgx);
        dxr[c] = resr ? T(resr[c] + d) : T(d);  // resr[c] is read before dxr[c] (its alias) is written
      }
    }
  }
  if (!dw.defined()) return;
  T* pdw = dw.data<T>();
  const int64_t blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    double sw[kColBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const T *xr = px + n * C, *gr = pg + n * C;
      const double rs = pr[n];
      for (int64_t c = c0; c < c1; ++c) sw[c - c0] += double(gr[c]) * (xr[c] * rs);
    }
    for (int64_t c = c0; c < c1; ++c) pdw[c] = T(pdw[c] + sw[c - c0]);
  }
}

void forward_common(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& sum,
                    const TensorView& y, const TensorView& rstd, double eps, const char* what) {
  int64_t N, C;
  rows_of(x, what, N, C);
  const DType dt = x.dtype();
  ARIA_CHECK(x.device().is_cpu(), what, ": x must be on the CPU, got ", x.str());
  ARIA_CHECK(eps >= 0 && std::isfinite(eps), what, ": eps must be finite and >= 0, got ", eps);
  if (r.defined() || sum.defined()) {
    check_vec(r, N * C, dt, what, "r");
    check_vec(sum, N * C, dt, what, "sum");
  }
  check_vec(w, C, dt, what, "w");
  check_vec(y, N * C, dt, what, "y");
  check_vec(rstd, N, dt, what, "rstd");
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    forward_impl<T>(x, r, w, sum, y, rstd, eps, N, C);
  });
}

}  // namespace

void rmsnorm_forward(const TensorView& x, const TensorView& w, const TensorView& y, const TensorView& rstd,
                     double eps) {
  forward_common(x, TensorView(), w, TensorView(), y, rstd, eps, "rmsnorm_forward");
}

void add_rmsnorm_forward(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& sum,
                         const TensorView& y, const TensorView& rstd, double eps) {
  ARIA_CHECK(r.defined() && sum.defined(), "add_rmsnorm_forward: r and sum must be defined");
  forward_common(x, r, w, sum, y, rstd, eps, "add_rmsnorm_forward");
}

void rmsnorm_backward(const TensorView& x, const TensorView& w, const TensorView& rstd, const TensorView& dy,
                      const TensorView& dres, const TensorView& dx, const TensorView& dw) {
  const char* what = "rmsnorm_backward";
  int64_t N, C;
  rows_of(x, what, N, C);
  const DType dt = x.dtype();
  ARIA_CHECK(x.device().is_cpu(), what, ": x must be on the CPU, got ", x.str());
  ARIA_CHECK(dx.defined() || !dres.defined(), what, ": dres given without dx");
  check_vec(w, C, dt, what, "w");
  check_vec(rstd, N, dt, what, "rstd");
  check_vec(dy, N * C, dt, what, "dy");
  if (dres.defined()) check_vec(dres, N * C, dt, what, "dres");
  if (dx.defined()) check_vec(dx, N * C, dt, what, "dx");
  if (dw.defined()) check_vec(dw, C, dt, what, "dw");
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    backward_impl<T>(x, w, rstd, dy, dres, dx, dw, N, C);
  });
}

}  // namespace aria::cpu
