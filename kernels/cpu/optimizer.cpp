// CPU optimizer and statistics kernels: AdamW step, sum of squares (gradient norm), squared-gradient
// accumulation (Fisher). float32 and float64 math; bfloat16 is read (gradients, samples) and written
// (a param updated through its float32 master) with the host conversions of core/dtype.h.
#include <cmath>
#include <type_traits>

#include "aria/kernels/adamw_clip.h"
#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"

namespace aria::cpu {

namespace {

// `grad_scale`: the item's gradient multiplier, clipping included (it.grad_scale when not clipped).
template <typename T>
struct AdamWConsts {
  T lr, b1, b2, eps, wd, bc1, bc2, gs;
  AdamWConsts(const AdamWItemView& it, float grad_scale)
      : lr(T(it.lr)),
        b1(T(it.beta1)),
        b2(T(it.beta2)),
        eps(T(it.eps)),
        wd(T(it.weight_decay)),
        bc1(T(it.bias_correction1)),
        bc2(T(it.bias_correction2)),
        gs(T(grad_scale)) {}
};

// One element's step: updates m, v and returns the new parameter. Every path (plain, master) runs
// this same function, so a master update equals the plain float32 update of the same values.
template <typename T>
inline T adamw_step(const AdamWConsts<T>& k, T p, T g, T& m, T& v) {
  const T gi = g * k.gs;
  const T mi = k.b1 * m + (T(1) - k.b1) * gi;
  const T vi = k.b2 * v + (T(1) - k.b2) * gi * gi;
  m = mi;
  v = vi;
  const T update = (mi / k.bc1) / (std::sqrt(vi / k.bc2) + k.eps);
  return p - k.lr * (update + k.wd * p);  // decoupled weight decay on the old p, as torch.optim.AdamW
}

// Calls fn(get) with get(i) = element i of t (float32 or bfloat16) as float; one instantiation per
// storage type, so the float32 loops stay branch-free.
template <typename Fn>
void with_float_reader(const TensorView& t, Fn&& fn) {
  if (t.dtype() == DType::BF16) {
    const uint16_t* p = static_cast<const uint16_t*>(t.raw_data());
    fn([p](int64_t i) { return bf16_to_float(p[i]); });
  } else {
    const float* p = t.data<float>();
    fn([p](int64_t i) { return p[i]; });
  }
}

// Without a master: param, m, v (and grad, unless it is bf16 with a float32 param) of dtype T.
template <typename T>
void adamw_plain(const AdamWItemView& it, float grad_scale) {
  T* p = it.param.data<T>();
  T* m = it.m.data<T>();
  T* v = it.v.data<T>();
  const int64_t n = it.param.numel();
  const AdamWConsts<T> k(it, grad_scale);
  if constexpr (std::is_same_v<T, float>) {
    with_float_reader(it.grad, [&](auto g) {
#pragma omp parallel for if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) p[i] = adamw_step(k, p[i], g(i), m[i], v[i]);
    });
  } else {
    const T* g = it.grad.data<T>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) p[i] = adamw_step(k, p[i], g[i], m[i], v[i]);
  }
}

// With a float32 master: the step runs on the master; param (bf16 or float32) receives its copy.
void adamw_master(const AdamWItemView& it, float grad_scale) {
  float* master = it.master.data<float>();
  float* m = it.m.data<float>();
  float* v = it.v.data<float>();
  const bool p_bf16 = it.param.dtype() == DType::BF16;
  void* p = it.param.raw_data();
  const int64_t n = it.param.numel();
  const AdamWConsts<float> k(it, grad_scale);
  with_float_reader(it.grad, [&](auto g) {
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float np = adamw_step(k, master[i], g(i), m[i], v[i]);
      master[i] = np;
      if (p_bf16) static_cast<uint16_t*>(p)[i] = float_to_bf16(np);
      else static_cast<float*>(p)[i] = np;
    }
  });
}

void check_adamw_item(const AdamWItemView& it) {
  const char* what = "adamw_update";
  ARIA_CHECK(it.param.defined() && it.grad.defined() && it.m.defined() && it.v.defined(), what,
             ": param, grad, m and v must be defined");
  const bool master = it.master.defined();
  const TensorView* ts[] = {&it.grad, &it.m, &it.v, &it.master};
  for (const TensorView* t : ts) {
    if (!t->defined()) continue;
    check_same_shape(it.param, *t, what);
    ARIA_CHECK(t->is_contiguous(), what, ": tensors must be contiguous, got ", t->str());
  }
  ARIA_CHECK(it.param.is_contiguous(), what, ": tensors must be contiguous, got ", it.param.str());
  const DType pd = it.param.dtype(), gd = it.grad.dtype();
  if (master) {
    ARIA_CHECK(it.master.dtype() == DType::F32, what, ": master must be float32, got ", it.master.str());
    ARIA_CHECK(pd == DType::BF16 || pd == DType::F32, what, ": a param with a master must be bfloat16 or float32, got ",
               it.param.str());
  } else {
    ARIA_CHECK(pd == DType::F32 || pd == DType::F64, what,
               ": param must be float32 or float64 (bfloat16 needs a float32 master), got ", it.param.str());
  }
  // The moments (and master) hold the fp32 state: float32 whenever float32 math runs.
  const DType state = master ? DType::F32 : pd;
  ARIA_CHECK(it.m.dtype() == state && it.v.dtype() == state, what, ": m ", it.m.str(), " and v ", it.v.str(),
             " must be ", dtype_name(state));
  const bool fp32_math = master || pd == DType::F32;
  ARIA_CHECK(gd == (master ? DType::F32 : pd) || (fp32_math && (gd == DType::BF16 || gd == DType::F32)), what,
             ": grad ", it.grad.str(), " does not fit param ", it.param.str());
}

template <typename T>
double sum_squares_one(const TensorView& x) {
  const T* p = x.data<T>();
  const int64_t n = x.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  return s;
}

double sum_squares_bf16(const TensorView& x) {
  const uint16_t* p = static_cast<const uint16_t*>(x.raw_data());
  auto r = [p](int64_t i) { return bf16_to_float(p[i]); };
  const int64_t n = x.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(r(i)) * double(r(i));
  return s;
}

// acc (T) += alpha * sum_k g[k]^2, with g read by `get` (T, or bf16 read as float when T is float).
template <typename T, typename Get>
void square_accumulate_impl(const TensorView& acc, const TensorView& g, double alpha, Get&& get) {
  T* pa = acc.data<T>();
  const int64_t n = acc.numel(), S = n ? g.numel() / n : 0;
  const T al = T(alpha);
#pragma omp parallel for if (n * S >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T s = 0;
    for (int64_t k = 0; k < S; ++k) {
      const T x = get(k * n + i);
      s += x * x;
    }
    pa[i] += al * s;
  }
}

}  // namespace

void adamw_update(const std::vector<AdamWItemView>& items) {
  for (const AdamWItemView& it : items) check_adamw_item(it);  // all checked before any is updated
  const TensorView clip = check_adamw_clip(items, false);
  const double norm = clip.defined() ? std::sqrt(*clip.data<double>()) : 0.0;
  if (!std::isfinite(norm)) return;  // NaN/inf gradients: the whole step is skipped
  for (const AdamWItemView& it : items) {
    const float gs = clip.defined() ? clipped_grad_scale(it.grad_scale, norm, it.clip_max_norm) : it.grad_scale;
    if (it.master.defined()) adamw_master(it, gs);
    else if (it.param.dtype() == DType::F32) adamw_plain<float>(it, gs);
    else adamw_plain<double>(it, gs);
  }
}

void sum_squares(const std::vector<TensorView>& xs, const TensorView& out) {
  ARIA_CHECK(out.numel() == 1, "sum_squares: out must hold one element, got ", out.str());
  double total = 0;
  for (const TensorView& x : xs) {
    ARIA_CHECK(x.is_contiguous(), "sum_squares: tensors must be contiguous, got ", x.str());
    if (x.dtype() == DType::F32)
      total += sum_squares_one<float>(x);
    else if (x.dtype() == DType::F64)
      total += sum_squares_one<double>(x);
    else if (x.dtype() == DType::BF16)
      total += sum_squares_bf16(x);
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

void square_accumulate(const TensorView& acc, const TensorView& g, double alpha) {
  Shape stacked = acc.shape();
  stacked.insert(stacked.begin(), g.dim() > 0 ? g.size(0) : 1);
  ARIA_CHECK(g.shape() == acc.shape() || (g.dim() == acc.dim() + 1 && g.shape() == stacked),
             "square_accumulate: g ", g.str(), " must be acc's shape or [S, ...] over acc ", acc.str());
  ARIA_CHECK(g.dtype() == acc.dtype() || (acc.dtype() == DType::F32 && g.dtype() == DType::BF16),
             "square_accumulate: dtypes differ: ", acc.str(), " vs ", g.str(),
             " (only bfloat16 samples into a float32 acc may differ)");
  ARIA_CHECK(acc.is_contiguous() && g.is_contiguous(), "square_accumulate: tensors must be contiguous");
  if (acc.dtype() == DType::F32)
    return with_float_reader(g, [&](auto get) { square_accumulate_impl<float>(acc, g, alpha, get); });
  if (acc.dtype() == DType::F64) {
    const double* pg = g.data<double>();
    return square_accumulate_impl<double>(acc, g, alpha, [pg](int64_t i) { return pg[i]; });
  }
  ARIA_FAIL("square_accumulate: unsupported dtype ", dtype_name(acc.dtype()));
}

}  // namespace aria::cpu
