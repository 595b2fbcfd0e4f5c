// CUDA data movement: strided copy with dtype conversion (any pair of the six dtypes), fill, axpy.
// Conversions go through double exactly as kernels/cpu/copy.cpp does (float16/bfloat16 round to
// nearest even from float; integers truncate), so both backends give the same bits.
// Contiguous casts between float dtypes (the bf16 <-> f32 casts of mixed precision), fill and axpy
// move 16 bytes per thread and step when the pointers allow it.
#include <cstring>
#include <type_traits>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

template <typename T> __device__ __forceinline__ double to_double(T x) { return double(x); }
template <> __device__ __forceinline__ double to_double<__half>(__half x) { return double(__half2float(x)); }
template <> __device__ __forceinline__ double to_double<__nv_bfloat16>(__nv_bfloat16 x) {
  return double(__bfloat162float(x));
}

template <typename T> __device__ __forceinline__ T from_double(double x) { return T(x); }
template <> __device__ __forceinline__ __half from_double<__half>(double x) { return __float2half_rn(float(x)); }
template <> __device__ __forceinline__ __nv_bfloat16 from_double<__nv_bfloat16>(double x) {
  return __float2bfloat16_rn(float(x));
}

template <typename S, typename D>
__device__ __forceinline__ D convert(S x) {
  if constexpr (std::is_same_v<S, D>) return x;
  // float <-> 16-bit floats without the detour through double (float -> double -> float is exact,
  // so these give the same bits, with no float64 instructions on the mixed-precision hot path)
  else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, __nv_bfloat16>) return __float2bfloat16_rn(x);
  else if constexpr (std::is_same_v<S, __nv_bfloat16> && std::is_same_v<D, float>) return __bfloat162float(x);
  else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, __half>) return __float2half_rn(x);
  else if constexpr (std::is_same_v<S, __half> && std::is_same_v<D, float>) return __half2float(x);
  else return from_double<D>(to_double<S>(x));
}

template <typename S, typename D>
__global__ void copy_kernel(const S* __restrict__ src, D* __restrict__ dst, Indexer<2> ix, int64_t n, bool flat) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (flat) {
      dst[i] = convert<S, D>(src[i]);
    } else {
      int64_t off[2];
      ix.offsets(i, off);
      dst[off[1]] = convert<S, D>(src[off[0]]);
    }
  }
}

// 16 bytes of T, one vector access.
template <typename T>
struct alignas(16) Vec16 {
  T v[16 / sizeof(T)];
};

// N consecutive elements starting at a 16-byte aligned p, as N * sizeof(T) / 16 vector accesses.
template <typename T, int N>
__device__ __forceinline__ void load_vec(const T* p, T (&out)[N]) {
  constexpr int per = int(16 / sizeof(T));
  static_assert(N % per == 0, "whole 16-byte vectors only");
#pragma unroll
  for (int q = 0; q < N / per; ++q) {
    const Vec16<T> pk = reinterpret_cast<const Vec16<T>*>(p)[q];
#pragma unroll
    for (int k = 0; k < per; ++k) out[q * per + k] = pk.v[k];
  }
}

template <typename T, int N>
__device__ __forceinline__ void store_vec(T* p, const T (&in)[N]) {
  constexpr int per = int(16 / sizeof(T));
  static_assert(N % per == 0, "whole 16-byte vectors only");
#pragma unroll
  for (int q = 0; q < N / per; ++q) {
    Vec16<T> pk;
#pragma unroll
    for (int k = 0; k < per; ++k) pk.v[k] = in[q * per + k];
    reinterpret_cast<Vec16<T>*>(p)[q] = pk;
  }
}

// Contiguous, 16-byte aligned cast: each step converts VW elements, VW chosen so that the narrower
// side is one 16-byte access (f32 -> bf16: two 16-byte loads, one 16-byte store); then the tail.
template <typename S, typename D>
__global__ void cast_vec_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  constexpr int VW = int(16 / (sizeof(S) < sizeof(D) ? sizeof(S) : sizeof(D)));
  const int64_t packs = n / VW;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = tid; p < packs; p += step) {
    S a[VW];
    D b[VW];
    load_vec<S, VW>(src + p * VW, a);
#pragma unroll
    for (int k = 0; k < VW; ++k) b[k] = convert<S, D>(a[k]);
    store_vec<D, VW>(dst + p * VW, b);
  }
  for (int64_t i = packs * VW + tid; i < n; i += step) dst[i] = convert<S, D>(src[i]);
}

template <typename T>
constexpr bool kIsFloatStorage = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                 std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

template <typename S, typename D>
void launch_copy(const void* src, void* dst, const Indexer<2>& ix, int64_t n) {
  const int block = 256;
  const bool flat = indexer_is_flat(ix);
  if constexpr (kIsFloatStorage<S> && kIsFloatStorage<D> && !std::is_same_v<S, D>) {
    if (flat && aligned16(src) && aligned16(dst)) {
      constexpr int VW = int(16 / (sizeof(S) < sizeof(D) ? sizeof(S) : sizeof(D)));
      cast_vec_kernel<S, D><<<grid_for(n / VW + n % VW, block), block, 0, stream()>>>(static_cast<const S*>(src),
                                                                                        static_cast<D*>(dst), n);
      ARIA_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  copy_kernel<S, D><<<grid_for(n, block), block, 0, stream()>>>(static_cast<const S*>(src), static_cast<D*>(dst), ix,
                                                                 n, flat);
  ARIA_CUDA_LAUNCH_CHECK();
}

template <typename S>
void dispatch_dst(DType dt, const void* src, void* dst, const Indexer<2>& ix, int64_t n) {
  switch (dt) {
    case DType::F32: return launch_copy<S, float>(src, dst, ix, n);
    case DType::F64: return launch_copy<S, double>(src, dst, ix, n);
    case DType::F16: return launch_copy<S, __half>(src, dst, ix, n);
    case DType::BF16: return launch_copy<S, __nv_bfloat16>(src, dst, ix, n);
    case DType::I32: return launch_copy<S, int32_t>(src, dst, ix, n);
    case DType::I64: return launch_copy<S, int64_t>(src, dst, ix, n);
  }
  ARIA_FAIL("copy: unknown destination dtype");
}

// Same dtype: move raw bits (no NaN canonicalisation), by element size.
void dispatch_same(size_t es, const void* src, void* dst, const Indexer<2>& ix, int64_t n) {
  switch (es) {
    case 1: return launch_copy<uint8_t, uint8_t>(src, dst, ix, n);
    case 2: return launch_copy<uint16_t, uint16_t>(src, dst, ix, n);
    case 4: return launch_copy<uint32_t, uint32_t>(src, dst, ix, n);
    case 8: return launch_copy<uint64_t, uint64_t>(src, dst, ix, n);
  }
  ARIA_FAIL("copy: unsupported element size ", es);
}

}  // namespace

void copy_cast(const TensorView& src, const TensorView& dst) {
  check_same_shape(src, dst, "copy");
  check_same_device(src, dst, "copy");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const void* s = src.raw_data();
  void* d = dst.raw_data();
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (s == d) return;
    const size_t bytes = dst.nbytes();
    const char *sb = static_cast<const char*>(s), *db = static_cast<char*>(d);
    const bool overlap = sb < db + bytes && db < sb + bytes;
    if (!overlap) {
      ARIA_CUDA_CHECK(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, stream()));
    } else {  // memmove semantics through a temporary
      KernelBuffer tmp(dst.shape(), dst.dtype(), dst.device());
      ARIA_CUDA_CHECK(cudaMemcpyAsync(tmp.raw_data(), s, bytes, cudaMemcpyDeviceToDevice, stream()));
      ARIA_CUDA_CHECK(cudaMemcpyAsync(d, tmp.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream()));
    }
    return;
  }
  const Shape* strides[2] = {&src.strides(), &dst.strides()};
  Indexer<2> ix = make_indexer<2>(dst.shape(), strides, "copy");
  if (src.dtype() == dst.dtype()) return dispatch_same(dtype_size(src.dtype()), s, d, ix, n);
  switch (src.dtype()) {
    case DType::F32: return dispatch_dst<float>(dst.dtype(), s, d, ix, n);
    case DType::F64: return dispatch_dst<double>(dst.dtype(), s, d, ix, n);
    case DType::F16: return dispatch_dst<__half>(dst.dtype(), s, d, ix, n);
    case DType::BF16: return dispatch_dst<__nv_bfloat16>(dst.dtype(), s, d, ix, n);
    case DType::I32: return dispatch_dst<int32_t>(dst.dtype(), s, d, ix, n);
    case DType::I64: return dispatch_dst<int64_t>(dst.dtype(), s, d, ix, n);
  }
  ARIA_FAIL("copy: unknown source dtype");
}

// ---- fill ----------------------------------------------------------------------------------------

namespace {

// y[0, n) = bits: the first n / per elements as 16-byte stores of `pattern` (bits repeated, per = 16 /
// sizeof(U); y 16-byte aligned, or per passed as 0 for element stores only), then the rest.
template <typename U>
__global__ void fill_kernel(U* __restrict__ y, U bits, int64_t n, uint4 pattern, int per) {
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  const int64_t packs = per ? n / per : 0;
  for (int64_t p = tid; p < packs; p += step) reinterpret_cast<uint4*>(y)[p] = pattern;
  for (int64_t i = packs * per + tid; i < n; i += step) y[i] = bits;
}

template <typename U>
void launch_fill(void* y, const char* one, int64_t n) {
  U bits;
  std::memcpy(&bits, one, sizeof(U));
  constexpr int per = int(16 / sizeof(U));
  uint4 pattern;
  for (int k = 0; k < per; ++k) std::memcpy(reinterpret_cast<char*>(&pattern) + k * sizeof(U), &bits, sizeof(U));
  const int use = aligned16(y) ? per : 0;
  const int64_t work = use ? n / per + n % per : n;
  fill_kernel<U><<<grid_for(work, 256), 256, 0, stream()>>>(static_cast<U*>(y), bits, n, pattern, use);
  ARIA_CUDA_LAUNCH_CHECK();
}

// The value as one element of dtype t, converted as kernels/cpu/copy.cpp does.
void encode(DType t, double x, char* out) {
  switch (t) {
    case DType::F32: { float v = float(x); std::memcpy(out, &v, 4); break; }
    case DType::F64: { std::memcpy(out, &x, 8); break; }
    case DType::F16: { uint16_t v = float_to_f16(float(x)); std::memcpy(out, &v, 2); break; }
    case DType::BF16: { uint16_t v = float_to_bf16(float(x)); std::memcpy(out, &v, 2); break; }
    case DType::I32: { int32_t v = int32_t(x); std::memcpy(out, &v, 4); break; }
    case DType::I64: { int64_t v = int64_t(x); std::memcpy(out, &v, 8); break; }
  }
}

}  // namespace

void fill(const TensorView& y, double value) {
  ARIA_CHECK(y.is_contiguous(), "fill: tensor must be contiguous");
  const int64_t n = y.numel();
  if (n == 0) return;
  char one[8] = {0};
  const size_t es = dtype_size(y.dtype());
  encode(y.dtype(), value, one);
  bool zero = true;
  for (size_t i = 0; i < es; ++i) zero = zero && one[i] == 0;
  if (zero) {
    ARIA_CUDA_CHECK(cudaMemsetAsync(y.raw_data(), 0, y.nbytes(), stream()));
    return;
  }
  switch (es) {
    case 2: return launch_fill<uint16_t>(y.raw_data(), one, n);
    case 4: return launch_fill<uint32_t>(y.raw_data(), one, n);
    case 8: return launch_fill<uint64_t>(y.raw_data(), one, n);
  }
  ARIA_FAIL("fill: unsupported dtype ", dtype_name(y.dtype()));
}

// ---- axpy ----------------------------------------------------------------------------------------

namespace {

// y = y + alpha * x in Acc<T>, one rounding per element. Packs of 16 bytes when aligned (VW > 1).
template <typename T, int VW>
__global__ void axpy_kernel(T* __restrict__ y, const T* __restrict__ x, Acc<T> alpha, int64_t n) {
  const int64_t packs = n / VW;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = tid; p < packs; p += step) {
    T xv[VW], yv[VW];
    if constexpr (VW > 1) {
      load_vec<T, VW>(x + p * VW, xv);
      load_vec<T, VW>(y + p * VW, yv);
    } else {
      xv[0] = x[p];
      yv[0] = y[p];
    }
#pragma unroll
    for (int k = 0; k < VW; ++k) store(&yv[k], load(&yv[k]) + alpha * load(&xv[k]));
    if constexpr (VW > 1) store_vec<T, VW>(y + p * VW, yv);
    else y[p] = yv[0];
  }
  for (int64_t i = packs * VW + tid; i < n; i += step) store(y + i, load(y + i) + alpha * load(x + i));
}

}  // namespace

void axpy(const TensorView& y, const TensorView& x, double alpha) {
  check_same_shape(y, x, "axpy");
  check_same_device(y, x, "axpy");
  ARIA_CHECK(y.dtype() == x.dtype(), "axpy: dtypes differ");
  ARIA_CHECK(y.is_contiguous() && x.is_contiguous(), "axpy: tensors must be contiguous");
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_float(y.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    T* yp = dptr<T>(y);
    const T* xp = dptr<T>(x);
    const Acc<T> a = Acc<T>(alpha);
    constexpr int VW = int(16 / sizeof(T));
    if (aligned16(yp) && aligned16(xp))
      axpy_kernel<T, VW><<<grid_for(n / VW + n % VW, 256), 256, 0, stream()>>>(yp, xp, a, n);
    else
      axpy_kernel<T, 1><<<grid_for(n, 256), 256, 0, stream()>>>(yp, xp, a, n);
  });
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
