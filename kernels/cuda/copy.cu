// CUDA data movement: strided copy with dtype conversion (any pair of the six dtypes), fill, axpy.
// Conversions go through double exactly as kernels/cpu/copy.cpp does (float16/bfloat16 round to
// nearest even from float; integers truncate), so both backends give the same bits.
#include <cstring>

#include "kernels/cuda/common.cuh"

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

template <typename S, typename D>
void launch_copy(const void* src, void* dst, const Indexer<2>& ix, int64_t n) {
  const int block = 256;
  copy_kernel<S, D><<<grid_for(n, block), block, 0, stream()>>>(static_cast<const S*>(src), static_cast<D*>(dst), ix,
                                                                 n, indexer_is_flat(ix));
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

void copy_cast(const Tensor& src, const Tensor& dst) {
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
      Tensor tmp = Tensor::empty(dst.shape(), dst.dtype(), dst.device());
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

template <typename U>
__global__ void fill_kernel(U* __restrict__ y, U bits, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bits;
}

template <typename U>
void launch_fill(void* y, const char* one, int64_t n) {
  U bits;
  std::memcpy(&bits, one, sizeof(U));
  fill_kernel<U><<<grid_for(n, 256), 256, 0, stream()>>>(static_cast<U*>(y), bits, n);
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

void fill(const Tensor& y, double value) {
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

template <typename T>
__global__ void axpy_kernel(T* __restrict__ y, const T* __restrict__ x, T alpha, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += alpha * x[i];
}

}  // namespace

void axpy(const Tensor& y, const Tensor& x, double alpha) {
  check_same_shape(y, x, "axpy");
  check_same_device(y, x, "axpy");
  ARIA_CHECK(y.dtype() == x.dtype(), "axpy: dtypes differ");
  ARIA_CHECK(y.is_contiguous() && x.is_contiguous(), "axpy: tensors must be contiguous");
  const int64_t n = y.numel();
  if (n == 0) return;
  if (y.dtype() == DType::F32) {
    axpy_kernel<float><<<grid_for(n, 256), 256, 0, stream()>>>(y.data<float>(), x.data<float>(), float(alpha), n);
  } else if (y.dtype() == DType::F64) {
    axpy_kernel<double><<<grid_for(n, 256), 256, 0, stream()>>>(y.data<double>(), x.data<double>(), alpha, n);
  } else {
    ARIA_FAIL("axpy: unsupported dtype ", dtype_name(y.dtype()));
  }
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
