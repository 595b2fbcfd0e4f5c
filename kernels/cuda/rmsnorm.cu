// RMSNorm over the last dimension: float32, float64 and bfloat16 data, rstd in Acc<T> (float32,
// float64 for float64 data). Math in Acc<T>; bf16 stores round to nearest even.
// Forward (also fused with the residual add): one warp per row, two sweeps (the sum of squares, then
// the output; the second re-reads the row from L1), 16-byte packs when the row allows.
// Backward: one warp per row writes dx (plus an optional residual gradient); dw = sum_n dy * x * rstd
// is a column reduction over row chunks into float partials, added in chunk order by a last kernel
// (deterministic; dw rounded once when it is bf16).
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

// The value a store of v into a T holds (the residual sum is normalised as it is stored).
template <typename T>
__device__ __forceinline__ Acc<T> stored_value(Acc<T> v) { return v; }
template <>
__device__ __forceinline__ float stored_value<__nv_bfloat16>(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float inv_sqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double inv_sqrt(double v) { return rsqrt(v); }

// kAdd: the normalised row is stored_value(x + r), also written to `sum`.
template <typename T, int VW, bool kAdd>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    rmsnorm_forward_kernel(const T* __restrict__ x, const T* __restrict__ r, const T* __restrict__ w,
                           T* __restrict__ sum, T* __restrict__ y, Acc<T>* __restrict__ rstd, int64_t N, int C,
                           Acc<T> eps) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const T* xr = x + row * C;
  auto load_in = [&](int c, A (&v)[VW]) {
    load_pack<T, VW>(xr + c, v);
    if constexpr (kAdd) {
      A t[VW];
      load_pack<T, VW>(r + row * C + c, t);
#pragma unroll
      for (int k = 0; k < VW; ++k) v[k] = stored_value<T>(v[k] + t[k]);
    }
  };
  A q = 0;
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A v[VW];
    load_in(c, v);
    if constexpr (kAdd) store_pack<T, VW>(sum + row * C + c, v);
#pragma unroll
    for (int k = 0; k < VW; ++k) q += v[k] * v[k];
  }
  const A rs = inv_sqrt(warp_sum(q) / A(C) + eps);
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A v[VW], wv[VW];
    load_in(c, v);
    load_pack<T, VW>(w + c, wv);
#pragma unroll
    for (int k = 0; k < VW; ++k) v[k] = (v[k] * rs) * wv[k];
    store_pack<T, VW>(y + row * C + c, v);
  }
  if (lane == 0) rstd[row] = rs;
}

// dx = dres + rs * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * rs; one warp per row.
template <typename T, int VW>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    rmsnorm_backward_dx_kernel(const T* __restrict__ x, const T* __restrict__ w, const Acc<T>* __restrict__ rstd,
                               const T* __restrict__ dy, const T* dres, T* dx, int64_t N, int C) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const T *xr = x + row * C, *gr = dy + row * C;
  const A rs = rstd[row];
  A s = 0;
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A xv[VW], gv[VW], wv[VW];
    load_pack<T, VW>(xr + c, xv);
    load_pack<T, VW>(gr + c, gv);
    load_pack<T, VW>(w + c, wv);
#pragma unroll
    for (int k = 0; k < VW; ++k) s += gv[k] * wv[k] * (xv[k] * rs);
  }
  const A m = warp_sum(s) / A(C);
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A xv[VW], gv[VW], wv[VW], out[VW];
    load_pack<T, VW>(xr + c, xv);
    load_pack<T, VW>(gr + c, gv);
    load_pack<T, VW>(w + c, wv);
    if (dres) load_pack<T, VW>(dres + row * C + c, out);  // read before dx (its alias) is written
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      const A d = rs * (gv[k] * wv[k] - (xv[k] * rs) * m);
      out[k] = dres ? out[k] + d : d;
    }
    store_pack<T, VW>(dx + row * C + c, out);
  }
}

constexpr int kColX = 32, kColY = 8;

// partial[chunk][c] = sum over the chunk's rows of dy * x * rstd; grid (ceil(C / 32), chunks),
// block (32, 8): thread row y adds rows y, y + 8, ..., then the 8 sums are added in y order.
template <typename T>
__global__ void rmsnorm_dw_columns_kernel(const T* __restrict__ x, const Acc<T>* __restrict__ rstd,
                                          const T* __restrict__ dy, Acc<T>* __restrict__ partial, int64_t N, int C,
                                          int64_t chunk_len) {
  using A = Acc<T>;
  __shared__ A tile[kColY][kColX + 1];
  const int c = blockIdx.x * kColX + threadIdx.x;
  const int64_t r0 = blockIdx.y * chunk_len, r1 = min(N, r0 + chunk_len);
  A s = 0;
  if (c < C)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) s += load(dy + r * C + c) * (load(x + r * C + c) * rstd[r]);
  tile[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  A t = tile[0][threadIdx.x];
  for (int j = 1; j < kColY; ++j) t += tile[j][threadIdx.x];
  partial[blockIdx.y * int64_t(C) + c] = t;
}

// dw[c] += sum over chunks (in chunk order) of partial[chunk][c], stored once.
template <typename TW, typename A>
__global__ void rmsnorm_dw_finish_kernel(const A* __restrict__ partial, int64_t nparts, int C, TW* __restrict__ dw) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  A s = 0;
  for (int64_t k = 0; k < nparts; ++k) s += partial[k * C + c];
  store(dw + c, Acc<TW>(load(dw + c) + s));
}

// ---- host side ----
DType stat_dtype_of(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

void check_data(const TensorView& t, DType dt, int64_t numel, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cuda() && t.is_contiguous() && t.dtype() == dt && t.numel() == numel, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " CUDA tensor with ", numel, " elements, got ", t.str());
}

bool aligned(const TensorView& t) { return !t.defined() || aligned16(t.raw_data()); }

void rows_of(const TensorView& x, const char* what, int64_t& N, int64_t& C) {
  ARIA_CHECK(x.defined() && x.dim() >= 1, what, ": x must be [N, C], got ", x.defined() ? x.str() : "undefined");
  C = x.size(-1);
  N = C ? x.numel() / C : 0;
  ARIA_CHECK(C < INT32_MAX / 2, what, ": rows of ", C, " elements are too long");
}

template <typename T>
const T* ptr(const TensorView& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <typename T>
T* mptr(const TensorView& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

void forward_common(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& sum,
                    const TensorView& y, const TensorView& rstd, double eps, const char* what) {
  int64_t N, C;
  rows_of(x, what, N, C);
  const DType dt = x.dtype();
  ARIA_CHECK(eps >= 0 && std::isfinite(eps), what, ": eps must be finite and >= 0, got ", eps);
  check_data(x, dt, N * C, what, "x");
  const bool add = r.defined() || sum.defined();
  if (add) {
    check_data(r, dt, N * C, what, "r");
    check_data(sum, dt, N * C, what, "sum");
  }
  check_data(w, dt, C, what, "w");
  check_data(y, dt, N * C, what, "y");
  check_data(rstd, stat_dtype_of(dt), N, what, "rstd");
  if (N == 0) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    constexpr int VW = kVec<T>;
    const bool vec = C % VW == 0 && aligned(x) && aligned(r) && aligned(w) && aligned(sum) && aligned(y);
    const unsigned grid = unsigned(ceil_div(N, kRowsPerBlock));
    auto go = [&](auto kernel) {
      kernel<<<grid, 32 * kRowsPerBlock, 0, stream()>>>(ptr<T>(x), ptr<T>(r), ptr<T>(w), mptr<T>(sum), mptr<T>(y),
                                                        mptr<A>(rstd), N, int(C), A(eps));
    };
    if (vec && add) go(rmsnorm_forward_kernel<T, VW, true>);
    else if (vec) go(rmsnorm_forward_kernel<T, VW, false>);
    else if (add) go(rmsnorm_forward_kernel<T, 1, true>);
    else go(rmsnorm_forward_kernel<T, 1, false>);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

template <typename T>
void launch_backward(const TensorView& x, const TensorView& w, const TensorView& rstd, const TensorView& dy,
                     const TensorView& dres, const TensorView& dx, const TensorView& dw, int64_t N, int64_t C) {
  using A = Acc<T>;
  if (dx.defined()) {
    constexpr int VW = kVec<T>;
    const bool vec = C % VW == 0 && aligned(x) && aligned(w) && aligned(dy) && aligned(dres) && aligned(dx);
    auto kernel = vec ? rmsnorm_backward_dx_kernel<T, VW> : rmsnorm_backward_dx_kernel<T, 1>;
    kernel<<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
        ptr<T>(x), ptr<T>(w), ptr<A>(rstd), ptr<T>(dy), ptr<T>(dres), mptr<T>(dx), N, int(C));
    ARIA_CUDA_LAUNCH_CHECK();
  }
  if (!dw.defined()) return;
  const int64_t chunk_len = reduction_chunk_len(N, ceil_div(C, kColX), 64);
  const int64_t nparts = ceil_div(N, chunk_len);
  KernelBuffer partial({nparts, C}, stat_dtype_of(x.dtype()), x.device());
  rmsnorm_dw_columns_kernel<T><<<dim3(unsigned(ceil_div(C, kColX)), unsigned(nparts)), dim3(kColX, kColY), 0,
                                 stream()>>>(ptr<T>(x), ptr<A>(rstd), ptr<T>(dy), mptr<A>(partial), N, int(C),
                                             chunk_len);
  ARIA_CUDA_LAUNCH_CHECK();
  const unsigned fin = unsigned(ceil_div(C, 256));
  if (dw.dtype() == x.dtype())
    rmsnorm_dw_finish_kernel<T, A><<<fin, 256, 0, stream()>>>(ptr<A>(partial), nparts, int(C), mptr<T>(dw));
  else
    rmsnorm_dw_finish_kernel<float, A><<<fin, 256, 0, stream()>>>(ptr<A>(partial), nparts, int(C), mptr<float>(dw));
  ARIA_CUDA_LAUNCH_CHECK();
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
  ARIA_CHECK(dx.defined() || !dres.defined(), what, ": dres given without dx");
  check_data(x, dt, N * C, what, "x");
  check_data(w, dt, C, what, "w");
  check_data(rstd, stat_dtype_of(dt), N, what, "rstd");
  check_data(dy, dt, N * C, what, "dy");
  if (dres.defined()) check_data(dres, dt, N * C, what, "dres");
  if (dx.defined()) check_data(dx, dt, N * C, what, "dx");
  if (dw.defined()) {
    const DType wdt = dw.dtype();
    ARIA_CHECK(wdt == dt || (dt == DType::BF16 && wdt == DType::F32), what, ": dw must be ", dtype_name(dt),
               dt == DType::BF16 ? " or float32" : "", ", got ", dw.str());
    check_data(dw, wdt, C, what, "dw");
  }
  if (N == 0 || (!dx.defined() && !dw.defined())) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    launch_backward<T>(x, w, rstd, dy, dres, dx, dw, N, C);
  });
}

}  // namespace aria::cuda
