// CPU cross-entropy from logits (float32 / float64). Each row's log-sum-exp is computed once and
// saved (in the logits' dtype); the softmax is rebuilt from it in backward, never stored. The fused
// classifier writes the losses and overwrites the logits with the gradient; masked_mean is the
// ignore-aware mean of the losses.
#include <algorithm>
#include <cmath>

#include "aria/kernels/backend.h"

namespace aria::cpu {

namespace {

// stat: the per-row statistic (lse, or the fused classifier's losses), named `stat_name`.
void check_args(const TensorView& logits, const TensorView& targets, const TensorView& lse, int ignore_index,
                const char* what, const char* stat_name = "lse") {
  ARIA_CHECK(logits.dim() == 2 && logits.is_contiguous(), what, ": logits must be a contiguous [N, V], got ",
             logits.str());
  const int64_t N = logits.size(0), V = logits.size(1);
  ARIA_CHECK(targets.dtype() == DType::I32 && targets.is_contiguous() && targets.numel() == N, what,
             ": targets must be a contiguous int32 [", N, "], got ", targets.str());
  ARIA_CHECK(lse.is_contiguous() && lse.numel() == N && lse.dtype() == logits.dtype(), what, ": ", stat_name,
             " must be a ", dtype_name(logits.dtype()), " [", N, "], got ", lse.str());
  const int32_t* t = targets.data<int32_t>();
  for (int64_t n = 0; n < N; ++n)
    ARIA_CHECK(t[n] == ignore_index || (t[n] >= 0 && t[n] < V), what, ": target ", t[n], " at row ", n,
               " is outside [0, ", V, ") and is not ignore_index ", ignore_index);
}

// log-sum-exp of one row (max shifted; the sum in double).
template <typename T>
double row_lse(const T* row, int64_t V) {
  T m = V ? row[0] : T(0);
#pragma omp simd reduction(max : m)
  for (int64_t v = 0; v < V; ++v) m = std::max(m, row[v]);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - m);
  return double(m) + std::log(s);
}

template <typename T>
void forward_impl(const TensorView& logits, const TensorView& targets, const TensorView& losses, const TensorView& lse,
                  int ignore_index) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const T* pl = logits.data<T>();
  const int32_t* pt = targets.data<int32_t>();
  T *ploss = losses.data<T>(), *plse = lse.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* row = pl + n * V;
    const double l = row_lse(row, V);
    plse[n] = T(l);
    ploss[n] = pt[n] == ignore_index ? T(0) : T(l - row[pt[n]]);
  }
}

template <typename T>
void backward_impl(const TensorView& logits, const TensorView& targets, const TensorView& lse,
                   const TensorView& dlosses, const TensorView& dlogits, int ignore_index) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const T *pl = logits.data<T>(), *plse = lse.data<T>(), *pg = dlosses.data<T>();
  const int32_t* pt = targets.data<int32_t>();
  T* pd = dlogits.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    T* drow = pd + n * V;
    if (pt[n] == ignore_index) {
      std::fill_n(drow, V, T(0));
      continue;
    }
    const T* row = pl + n * V;
    const T l = plse[n], g = pg[n];
    for (int64_t v = 0; v < V; ++v) drow[v] = g * std::exp(row[v] - l);
    drow[pt[n]] -= g;
  }
}

// The fused classifier: the loss as forward_impl, then the row becomes softmax - onehot (the
// backward with dlosses = 1, from the same rounded lse), or zeros for an ignored target.
template <typename T>
void fused_impl(const TensorView& logits, const TensorView& targets, const TensorView& losses, int ignore_index) {
  const int64_t N = logits.size(0), V = logits.size(1);
  T* pl = logits.data<T>();
  const int32_t* pt = targets.data<int32_t>();
  T* ploss = losses.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    T* row = pl + n * V;
    if (pt[n] == ignore_index) {
      ploss[n] = T(0);
      std::fill_n(row, V, T(0));
      continue;
    }
    const double l = row_lse(row, V);
    ploss[n] = T(l - row[pt[n]]);
    const T lt = T(l);
    for (int64_t v = 0; v < V; ++v) row[v] = std::exp(row[v] - lt);
    row[pt[n]] -= T(1);
  }
}

template <typename T, typename TO>
void masked_mean_impl(const TensorView& losses, const TensorView& targets, const TensorView& out,
                      const TensorView& count, int ignore_index) {
  const T* pl = losses.data<T>();
  const int32_t* pt = targets.data<int32_t>();
  double s = 0;
  int64_t c = 0;
  for (int64_t n = 0; n < losses.numel(); ++n) {
    s += double(pl[n]);
    c += pt[n] != ignore_index;
  }
  *out.data<TO>() = TO(s / double(std::max<int64_t>(c, 1)));
  *count.data<TO>() = TO(c);
}

}  // namespace

void cross_entropy_forward(const TensorView& logits, const TensorView& targets, const TensorView& losses,
                           const TensorView& lse, int ignore_index) {
  const char* what = "cross_entropy_forward";
  check_args(logits, targets, lse, ignore_index, what);
  ARIA_CHECK(losses.is_contiguous() && losses.numel() == logits.size(0) && losses.dtype() == logits.dtype(), what,
             ": losses must be a ", dtype_name(logits.dtype()), " [", logits.size(0), "], got ", losses.str());
  if (logits.dtype() == DType::F32) return forward_impl<float>(logits, targets, losses, lse, ignore_index);
  if (logits.dtype() == DType::F64) return forward_impl<double>(logits, targets, losses, lse, ignore_index);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(logits.dtype()));
}

void cross_entropy_backward(const TensorView& logits, const TensorView& targets, const TensorView& lse,
                            const TensorView& dlosses, const TensorView& dlogits, int ignore_index) {
  const char* what = "cross_entropy_backward";
  check_args(logits, targets, lse, ignore_index, what);
  ARIA_CHECK(dlosses.is_contiguous() && dlosses.numel() == logits.size(0) && dlosses.dtype() == logits.dtype(), what,
             ": dlosses must be a ", dtype_name(logits.dtype()), " [", logits.size(0), "], got ", dlosses.str());
  ARIA_CHECK(dlogits.is_contiguous() && dlogits.shape() == logits.shape() && dlogits.dtype() == logits.dtype(), what,
             ": dlogits must be a contiguous ", logits.str(), ", got ", dlogits.str());
  if (logits.dtype() == DType::F32) return backward_impl<float>(logits, targets, lse, dlosses, dlogits, ignore_index);
  if (logits.dtype() == DType::F64) return backward_impl<double>(logits, targets, lse, dlosses, dlogits, ignore_index);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(logits.dtype()));
}

}  // namespace aria::cpu

namespace aria::cpu {

void cross_entropy_fused(const TensorView& logits, const TensorView& targets, const TensorView& losses,
                         int ignore_index) {
  const char* what = "cross_entropy_fused";
  check_args(logits, targets, losses, ignore_index, what, "losses");
  if (logits.dtype() == DType::F32) return fused_impl<float>(logits, targets, losses, ignore_index);
  if (logits.dtype() == DType::F64) return fused_impl<double>(logits, targets, losses, ignore_index);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(logits.dtype()));
}

void masked_mean(const TensorView& losses, const TensorView& targets, const TensorView& out, const TensorView& count,
                 int ignore_index) {
  const char* what = "masked_mean";
  ARIA_CHECK(losses.defined() && targets.defined() && out.defined() && count.defined(), what,
             ": every tensor must be defined");
  ARIA_CHECK(losses.is_contiguous() && (losses.dtype() == DType::F32 || losses.dtype() == DType::F64), what,
             ": losses must be a contiguous float32/float64 tensor, got ", losses.str());
  ARIA_CHECK(targets.is_contiguous() && targets.dtype() == DType::I32 && targets.numel() == losses.numel(), what,
             ": targets must be a contiguous int32 tensor with one entry per loss, got ", targets.str(), " for ",
             losses.str());
  ARIA_CHECK(out.numel() == 1 && count.numel() == 1 && out.dtype() == count.dtype() &&
                 (out.dtype() == DType::F32 || out.dtype() == DType::F64),
             what, ": out and count must be float32 (or float64) scalars of one dtype, got ", out.str(), " and ",
             count.str());
  const bool l64 = losses.dtype() == DType::F64, o64 = out.dtype() == DType::F64;
  if (l64 && o64) return masked_mean_impl<double, double>(losses, targets, out, count, ignore_index);
  if (l64) return masked_mean_impl<double, float>(losses, targets, out, count, ignore_index);
  if (o64) return masked_mean_impl<float, double>(losses, targets, out, count, ignore_index);
  masked_mean_impl<float, float>(losses, targets, out, count, ignore_index);
}

}  // namespace aria::cpu
