// CPU data movement: strided copy with dtype conversion, fill, axpy.
#include <cstring>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/strided.h"

namespace aria::cpu {

namespace {

double load_as_double(const char* p, DType t) {
  switch (t) {
    case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::F64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::F16: { uint16_t v; std::memcpy(&v, p, 2); return f16_to_float(v); }
    case DType::BF16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
    case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
  }
  return 0;
}

void store_double(char* p, DType t, double x) {
  switch (t) {
    case DType::F32: { float v = float(x); std::memcpy(p, &v, 4); break; }
    case DType::F64: { std::memcpy(p, &x, 8); break; }
    case DType::F16: { uint16_t v = float_to_f16(float(x)); std::memcpy(p, &v, 2); break; }
    case DType::BF16: { uint16_t v = float_to_bf16(float(x)); std::memcpy(p, &v, 2); break; }
    case DType::I32: { int32_t v = int32_t(x); std::memcpy(p, &v, 4); break; }
    case DType::I64: { int64_t v = int64_t(x); std::memcpy(p, &v, 8); break; }
  }
}

}  // namespace

void copy_cast(const TensorView& src, const TensorView& dst) {
  check_same_shape(src, dst, "copy");
  const size_t ss = dtype_size(src.dtype()), ds = dtype_size(dst.dtype());
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memmove(d, s, dst.nbytes());
    return;
  }
  const bool same = src.dtype() == dst.dtype();
  for_each_strided2(src.shape(), src.strides(), dst.strides(), [&](int64_t si, int64_t di) {
    if (same)
      std::memcpy(d + di * ds, s + si * ss, ss);
    else
      store_double(d + di * ds, dst.dtype(), load_as_double(s + si * ss, src.dtype()));
  });
}

void fill(const TensorView& y, double value) {
  ARIA_CHECK(y.is_contiguous(), "fill: tensor must be contiguous");
  const size_t es = dtype_size(y.dtype());
  char one[8];
  store_double(one, y.dtype(), value);
  char* d = static_cast<char*>(y.raw_data());
  const int64_t n = y.numel();
  if (y.dtype() == DType::F32) {
    float v;
    std::memcpy(&v, one, 4);
    std::fill_n(reinterpret_cast<float*>(d), n, v);
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * es, one, es);
}

template <typename T>
static void axpy_impl(const TensorView& y, const TensorView& x, double alpha) {
  T* py = y.data<T>();
  const T* px = x.data<T>();
  const T a = T(alpha);
  const int64_t n = y.numel();
  for (int64_t i = 0; i < n; ++i) py[i] += a * px[i];
}

void axpy(const TensorView& y, const TensorView& x, double alpha) {
  check_same_shape(y, x, "axpy");
  ARIA_CHECK(y.dtype() == x.dtype(), "axpy: dtypes differ");
  ARIA_CHECK(y.is_contiguous() && x.is_contiguous(), "axpy: tensors must be contiguous");
  if (y.dtype() == DType::F32) return axpy_impl<float>(y, x, alpha);
  if (y.dtype() == DType::F64) return axpy_impl<double>(y, x, alpha);
  ARIA_FAIL("axpy: unsupported dtype ", dtype_name(y.dtype()));
}

}  // namespace aria::cpu
