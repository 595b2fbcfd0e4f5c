// CPU optimizer and statistics kernels: AdamW step, sum of squares (gradient norm), squared-gradient
// accumulation (Fisher). float32 and float64.
#include <cmath>

#include "kernels/kernels.h"

namespace aria::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;

template <typename T>
void adamw_one(const AdamWItem& it) {
  T* p = it.param.data<T>();
  const T* g = it.grad.data<T>();
  T* m = it.m.data<T>();
  T* v = it.v.data<T>();
  const int64_t n = it.param.numel();
  const T lr = T(it.lr), b1 = T(it.beta1), b2 = T(it.beta2), eps = T(it.eps), wd = T(it.weight_decay);
  const T bc1 = T(it.bias_correction1), bc2 = T(it.bias_correction2), gs = T(it.grad_scale);
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] * gs;
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const T update = (mi / bc1) / (std::sqrt(vi / bc2) + eps);
    p[i] -= lr * (update + wd * p[i]);  // decoupled weight decay on the old p, as torch.optim.AdamW
  }
}

template <typename T>
double sum_squares_one(const Tensor& x) {
  const T* p = x.data<T>();
  const int64_t n = x.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  return s;
}

template <typename T>
void square_accumulate_impl(const Tensor& acc, const Tensor& g, double alpha) {
  T* pa = acc.data<T>();
  const T* pg = g.data<T>();
  const int64_t n = acc.numel(), S = n ? g.numel() / n : 0;
  const T al = T(alpha);
#pragma omp parallel for if (n * S >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T s = 0;
    for (int64_t k = 0; k < S; ++k) s += pg[k * n + i] * pg[k * n + i];
    pa[i] += al * s;
  }
}

}  // namespace

void adamw_update(const std::vector<AdamWItem>& items) {
  for (const AdamWItem& it : items) {
    const Tensor* ts[] = {&it.grad, &it.m, &it.v};
    for (const Tensor* t : ts) {
      check_same_shape(it.param, *t, "adamw_update");
      ARIA_CHECK(t->dtype() == it.param.dtype(), "adamw_update: dtype of ", t->str(), " differs from param ",
                 it.param.str());
    }
    ARIA_CHECK(it.param.is_contiguous() && it.grad.is_contiguous() && it.m.is_contiguous() && it.v.is_contiguous(),
               "adamw_update: tensors must be contiguous");
    if (it.param.dtype() == DType::F32)
      adamw_one<float>(it);
    else if (it.param.dtype() == DType::F64)
      adamw_one<double>(it);
    else
      ARIA_FAIL("adamw_update: unsupported dtype ", dtype_name(it.param.dtype()));
  }
}

void sum_squares(const std::vector<Tensor>& xs, const Tensor& out) {
  ARIA_CHECK(out.numel() == 1, "sum_squares: out must hold one element, got ", out.str());
  double total = 0;
  for (const Tensor& x : xs) {
    ARIA_CHECK(x.is_contiguous(), "sum_squares: tensors must be contiguous, got ", x.str());
    if (x.dtype() == DType::F32)
      total += sum_squares_one<float>(x);
    else if (x.dtype() == DType::F64)
      total += sum_squares_one<double>(x);
    else
      ARIA_FAIL("sum_squares: unsupported dtype ", dtype_name(x.dtype()));
  }
  if (out.dtype() == DType::F32)
    *out.data<float>() += float(total);
  else if (out.dtype() == DType::F64)
    *out.data<double>() += total;
  else
    ARIA_FAIL("sum_squares: out must be float32 or float64, got ", out.str());
}

void square_accumulate(const Tensor& acc, const Tensor& g, double alpha) {
  Shape stacked = acc.shape();
  stacked.insert(stacked.begin(), g.dim() > 0 ? g.size(0) : 1);
  ARIA_CHECK(g.shape() == acc.shape() || (g.dim() == acc.dim() + 1 && g.shape() == stacked),
             "square_accumulate: g ", g.str(), " must be acc's shape or [S, ...] over acc ", acc.str());
  ARIA_CHECK(g.dtype() == acc.dtype(), "square_accumulate: dtypes differ: ", acc.str(), " vs ", g.str());
  ARIA_CHECK(acc.is_contiguous() && g.is_contiguous(), "square_accumulate: tensors must be contiguous");
  if (acc.dtype() == DType::F32) return square_accumulate_impl<float>(acc, g, alpha);
  if (acc.dtype() == DType::F64) return square_accumulate_impl<double>(acc, g, alpha);
  ARIA_FAIL("square_accumulate: unsupported dtype ", dtype_name(acc.dtype()));
}

}  // namespace aria::cpu
