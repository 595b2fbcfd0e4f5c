// out = x * s[0] with s read on the device (see kernels/kernel_list.h): 16-byte packs when both
// pointers allow, fp32 math for bfloat16.
#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/scale_by_check.h"

namespace aria::cuda {

namespace {

template <typename T, typename S, int VW>
__global__ void scale_by_kernel(const T* __restrict__ x, const S* __restrict__ s, T* __restrict__ out, int64_t n) {
  const Acc<T> k = Acc<T>(*s);
  const int64_t packs = n / VW, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < packs; i += stride) {
    Acc<T> v[VW];
    load_pack<T, VW>(x + i * VW, v);
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] *= k;
    store_pack<T, VW>(out + i * VW, v);
  }
  for (int64_t i = packs * VW + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride)
    store(out + i, Acc<T>(load(x + i)) * k);
}

template <typename T, typename S>
void launch(const T* x, const S* s, T* out, int64_t n) {
  if (aligned16(x) && aligned16(out)) {
    constexpr int VW = kVec<T>;
    scale_by_kernel<T, S, VW><<<grid_for(ceil_div(n, VW), 256), 256, 0, stream()>>>(x, s, out, n);
  } else {
    scale_by_kernel<T, S, 1><<<grid_for(n, 256), 256, 0, stream()>>>(x, s, out, n);
  }
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void scale_by(const TensorView& x, const TensorView& s, const TensorView& out) {
  check_scale_by_args(x, s, out);
  if (x.numel() == 0) return;
  dispatch_float(x.dtype(), "scale_by", [&](auto tag) {
    using T = decltype(tag);
    if (s.dtype() == DType::F64) launch<T>(dptr<T>(x), dptr<double>(s), dptr<T>(out), x.numel());
    else launch<T>(dptr<T>(x), dptr<float>(s), dptr<T>(out), x.numel());
  });
}

}  // namespace aria::cuda
