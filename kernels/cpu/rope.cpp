// CPU rotary position embeddings (float32 / float64): the cos/sin tables and their application to the
// heads of a row in Hugging Face's rotate_half layout (kernels/kernel_list.h, rope_apply / rope_table).
#include <cmath>
#include <cstring>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"

namespace aria::cpu {

namespace {

void check_cpu(const TensorView& t, DType dt, const Shape& shape, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dtype() == dt && t.shape() == shape, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " CPU tensor ", shape_str(shape), ", got ", t.str());
}

}  // namespace

void rope_apply(const TensorView& x, const TensorView& cos, const TensorView& sin, const TensorView& y, int n_rot,
                int head_dim, bool inverse) {
  const char* what = "rope_apply";
  ARIA_CHECK(x.defined() && x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(), what,
             ": x must be a contiguous CPU [R, W], got ", x.defined() ? x.str() : "undefined");
  const int64_t R = x.size(0), W = x.size(1);
  ARIA_CHECK(head_dim > 0 && head_dim % 2 == 0, what, ": head_dim must be even and positive, got ", head_dim);
  ARIA_CHECK(n_rot >= 0 && int64_t(n_rot) * head_dim <= W, what, ": ", n_rot, " rotated heads of ", head_dim,
             " columns do not fit rows of ", W);
  const DType dt = x.dtype(), tdt = dt == DType::F64 ? DType::F64 : DType::F32;
  const int64_t half = head_dim / 2;
  ARIA_CHECK(cos.defined() && cos.dim() == 2 && cos.size(1) == half && cos.size(0) > 0, what,
             ": cos must be [P, ", half, "], got ", cos.defined() ? cos.str() : "undefined");
  const int64_t P = cos.size(0);
  check_cpu(cos, tdt, {P, half}, what, "cos");
  check_cpu(sin, tdt, {P, half}, what, "sin");
  check_cpu(y, dt, {R, W}, what, "y");
  ARIA_CHECK(R % P == 0, what, ": ", R, " rows are not a multiple of the table's ", P, " positions");
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *pc = cos.data<T>(), *ps = sin.data<T>();
    T* py = y.data<T>();
    const T sign = inverse ? T(-1) : T(1);
    const int64_t rot = int64_t(n_rot) * head_dim;
#pragma omp parallel for schedule(static) if (R * W >= kParallelMin)
    for (int64_t r = 0; r < R; ++r) {
      const T *xr = px + r * W, *cr = pc + (r % P) * half, *sr = ps + (r % P) * half;
      T* yr = py + r * W;
      for (int64_t h = 0; h < n_rot; ++h)
        for (int64_t j = 0; j < half; ++j) {
          const int64_t a = h * head_dim + j, b = a + half;
          const T x1 = xr[a], x2 = xr[b], c = cr[j], s = sign * sr[j];
          yr[a] = x1 * c - x2 * s;
          yr[b] = x2 * c + x1 * s;
        }
      if (yr != xr && W > rot) std::memcpy(yr + rot, xr + rot, size_t(W - rot) * sizeof(T));
    }
  });
}

void rope_table(const TensorView& positions, const TensorView& inv_freq, const TensorView& cos, const TensorView& sin) {
  const char* what = "rope_table";
  ARIA_CHECK(positions.defined() && positions.dtype() == DType::I32 && positions.dim() == 1 &&
                 positions.is_contiguous() && positions.device().is_cpu(),
             what, ": positions must be a contiguous int32 CPU [P], got ",
             positions.defined() ? positions.str() : "undefined");
  ARIA_CHECK(inv_freq.defined() && inv_freq.dim() == 1 && inv_freq.size(0) > 0, what,
             ": inv_freq must be [D/2], got ", inv_freq.defined() ? inv_freq.str() : "undefined");
  const int64_t P = positions.size(0), half = inv_freq.size(0);
  const DType dt = inv_freq.dtype();
  check_cpu(inv_freq, dt, {half}, what, "inv_freq");
  check_cpu(cos, dt, {P, half}, what, "cos");
  check_cpu(sin, dt, {P, half}, what, "sin");
  const int32_t* pp = positions.data<int32_t>();
  for (int64_t p = 0; p < P; ++p)
    ARIA_CHECK(pp[p] >= 0, what, ": position ", p, " is negative (", pp[p], ")");
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    const T* pf = inv_freq.data<T>();
    T *pc = cos.data<T>(), *ps = sin.data<T>();
    for (int64_t p = 0; p < P; ++p)
      for (int64_t j = 0; j < half; ++j) {
        volatile T angle = T(pp[p]) * pf[j];  // the product rounded to T (no fused use of it)
        const double a = double(angle);
        pc[p * half + j] = T(std::cos(a));
        ps[p * half + j] = T(std::sin(a));
      }
  });
}

}  // namespace aria::cpu
