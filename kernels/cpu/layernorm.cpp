// CPU layer normalisation over the last dimension (float32 / float64), also fused with the residual
// add (forward) and the residual gradient (backward). Statistics (mean, rstd) have the input's dtype;
// sums are accumulated in double.
#include <algorithm>
#include <cmath>

#include "aria/kernels/backend.h"

namespace aria::cpu {

namespace {

constexpr int64_t kColBlock = 64;  // columns per task in the dw/db pass

void check_vec(const TensorView& t, int64_t n, DType dt, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.is_contiguous() && t.numel() == n && t.dtype() == dt, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " with ", n, " elements, got ", t.str());
}

// Normalises one row xr into yr and writes its statistics (computed in double) to mean, rstd.
template <typename T>
void normalize_row(const T* xr, const T* pw, const T* pb, T* yr, int64_t C, double eps, T& mean, T& rstd) {
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += xr[c];
  const double m = s / double(C);
  double v = 0;
  for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
  const double r = 1.0 / std::sqrt(v / double(C) + eps);
  for (int64_t c = 0; c < C; ++c) yr[c] = T((xr[c] - m) * r * pw[c] + pb[c]);
  mean = T(m);
  rstd = T(r);
}

// y = layernorm(x); with r given, x + r (rounded to T, stored into sum) is what is normalised.
template <typename T>
void forward_impl(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                  const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                  double eps) {
  const int64_t C = x.size(-1), N = x.numel() / std::max<int64_t>(C, 1);
  const T *px = x.data<T>(), *pw = w.data<T>(), *pb = b.data<T>();
  const T* pr = r.defined() ? r.data<T>() : nullptr;
  T* ps = sum.defined() ? sum.data<T>() : nullptr;
  T *py = y.data<T>(), *pm = mean.data<T>(), *prs = rstd.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = px + n * C;
    if (pr) {
      T* sr = ps + n * C;
      const T* rr = pr + n * C;
      for (int64_t c = 0; c < C; ++c) sr[c] = T(xr[c] + rr[c]);
      xr = sr;
    }
    normalize_row(xr, pw, pb, py + n * C, C, eps, pm[n], prs[n]);
  }
}

// dres (may be undefined, may alias dx) is added to dx.
template <typename T>
void backward_impl(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                   const TensorView& dy, const TensorView& dres, const TensorView& dx, const TensorView& dw,
                   const TensorView& db) {
  const int64_t C = x.size(-1), N = x.numel() / std::max<int64_t>(C, 1);
  const T *px = x.data<T>(), *pw = w.data<T>(), *pm = mean.data<T>(), *pr = rstd.data<T>(), *pg = dy.data<T>();
  const T* pres = dres.defined() ? dres.data<T>() : nullptr;
  T *pdx = dx.data<T>(), *pdw = dw.data<T>(), *pdb = db.data<T>();
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, row by row.
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T *xr = px + n * C, *gr = pg + n * C;
    const double m = pm[n], r = pr[n];
    double sg = 0, sgx = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double g = double(gr[c]) * pw[c];
      sg += g;
      sgx += g * (xr[c] - m) * r;
    }
    sg /= double(C);
    sgx /= double(C);
    T* dxr = pdx + n * C;
    const T* resr = pres ? pres + n * C : nullptr;
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (xr[c] - m) * r;
      const double d = r * (double(gr[c]) * pw[c] - sg - xhat * sgx);
      dxr[c] = resr ? T(resr[c] + d) : T(d);  // resr[c] is read before dxr[c] (its alias) is written
    }
  }
  // dw += sum_n dy * xhat, db += sum_n dy: each task owns a block of columns and walks the rows in
  // order, so the result does not depend on the thread count.
  const int64_t blocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    double sw[kColBlock] = {}, sb[kColBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const T *xr = px + n * C, *gr = pg + n * C;
      const double m = pm[n], r = pr[n];
      for (int64_t c = c0; c < c1; ++c) {
        sw[c - c0] += double(gr[c]) * (xr[c] - m) * r;
        sb[c - c0] += gr[c];
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      pdw[c] = T(pdw[c] + sw[c - c0]);
      pdb[c] = T(pdb[c] + sb[c - c0]);
    }
  }
}

void forward_common(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                    const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                    double eps, const char* what) {
  ARIA_CHECK(x.dim() >= 1 && x.is_contiguous(), what, ": x must be contiguous [N, C], got ", x.str());
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  const DType dt = x.dtype();
  if (r.defined() || sum.defined()) {
    check_vec(r, x.numel(), dt, what, "r");
    check_vec(sum, x.numel(), dt, what, "sum");
  }
  check_vec(w, C, dt, what, "w");
  check_vec(b, C, dt, what, "b");
  check_vec(y, x.numel(), dt, what, "y");
  check_vec(mean, N, dt, what, "mean");
  check_vec(rstd, N, dt, what, "rstd");
  if (dt == DType::F32) return forward_impl<float>(x, r, w, b, sum, y, mean, rstd, eps);
  if (dt == DType::F64) return forward_impl<double>(x, r, w, b, sum, y, mean, rstd, eps);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(dt), " (the CPU computes in float32/float64)");
}

void backward_common(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                     const TensorView& dy, const TensorView& dres, const TensorView& dx, const TensorView& dw,
                     const TensorView& db, const char* what) {
  ARIA_CHECK(x.dim() >= 1 && x.is_contiguous(), what, ": x must be contiguous [N, C], got ", x.str());
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  const DType dt = x.dtype();
  check_vec(w, C, dt, what, "w");
  check_vec(mean, N, dt, what, "mean");
  check_vec(rstd, N, dt, what, "rstd");
  check_vec(dy, x.numel(), dt, what, "dy");
  if (dres.defined()) check_vec(dres, x.numel(), dt, what, "dres");
  check_vec(dx, x.numel(), dt, what, "dx");
  check_vec(dw, C, dt, what, "dw");
  check_vec(db, C, dt, what, "db");
  if (dt == DType::F32) return backward_impl<float>(x, w, mean, rstd, dy, dres, dx, dw, db);
  if (dt == DType::F64) return backward_impl<double>(x, w, mean, rstd, dy, dres, dx, dw, db);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(dt), " (the CPU computes in float32/float64)");
}

}  // namespace

void layernorm_forward(const TensorView& x, const TensorView& w, const TensorView& b, const TensorView& y,
                       const TensorView& mean, const TensorView& rstd, double eps) {
  forward_common(x, TensorView(), w, b, TensorView(), y, mean, rstd, eps, "layernorm_forward");
}

void add_layernorm_forward(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                           const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                           double eps) {
  ARIA_CHECK(r.defined() && sum.defined(), "add_layernorm_forward: r and sum must be defined");
  forward_common(x, r, w, b, sum, y, mean, rstd, eps, "add_layernorm_forward");
}

void layernorm_backward(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                        const TensorView& dy, const TensorView& dx, const TensorView& dw, const TensorView& db) {
  backward_common(x, w, mean, rstd, dy, TensorView(), dx, dw, db, "layernorm_backward");
}

void layernorm_backward_residual(const TensorView& x, const TensorView& w, const TensorView& mean,
                                 const TensorView& rstd, const TensorView& dy, const TensorView& dres,
                                 const TensorView& dx, const TensorView& dw, const TensorView& db) {
  backward_common(x, w, mean, rstd, dy, dres, dx, dw, db, "layernorm_backward_residual");
}

}  // namespace aria::cpu
