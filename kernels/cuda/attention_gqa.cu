// Grouped-query causal attention on CUDA (float32, float64, bfloat16 storage; fp32 math for bf16),
// optionally with a sliding window. KV == H without a window (float32/bfloat16, hd <= 128) goes to
// attention_forward/backward (tensor cores for bfloat16). The bfloat16 forward at hd 64/128 runs the
// tensor-core kernel's grouped-query form (attention_bf16_forward.cu). Everything else is the plain
// form here: one warp per query row (forward, dQ) or key row (dK, dV), dot products split over the
// lanes, scores never stored; a shared k/v head's gradient walks its query heads and rows in order
// (deterministic, no atomics). k/v heads are read in place (query head h reads k/v head h / (H / KV)).
#include "aria/kernels/cuda/attention_bf16.h"
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kWarps = 4;         // warps per block
constexpr int kMaxPerLane = 8;    // head_dim <= 32 * 8

struct Geo {
  int64_t B, T, H, KV, hd, W, window;  // W = (H + 2 KV) hd, the qkv row
  __host__ __device__ int64_t first_key(int64_t i) const { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }
  __host__ __device__ int64_t last_query(int64_t j) const { return window > 0 && j + window - 1 < T - 1 ? j + window - 1 : T - 1; }
  __host__ __device__ int64_t q_off(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * W + h * hd; }
  __host__ __device__ int64_t k_off(int64_t b, int64_t t, int64_t g) const { return (b * T + t) * W + (H + g) * hd; }
  __host__ __device__ int64_t v_off(int64_t b, int64_t t, int64_t g) const { return (b * T + t) * W + (H + KV + g) * hd; }
  __host__ __device__ int64_t o_off(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * H * hd + h * hd; }
};

__device__ __forceinline__ float exp_acc(float v) { return __expf(v); }
__device__ __forceinline__ double exp_acc(double v) { return exp(v); }
__device__ __forceinline__ float log_acc(float v) { return __logf(v); }
__device__ __forceinline__ double log_acc(double v) { return log(v); }

// This lane's elements d = lane + 32 k of a head row, as Acc<T> (0 past hd).
template <typename T>
__device__ __forceinline__ void load_row(const T* p, int64_t hd, int lane, Acc<T> (&v)[kMaxPerLane]) {
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = lane + 32 * k;
    v[k] = d < hd ? load(p + d) : Acc<T>(0);
  }
}

template <typename T>
__device__ __forceinline__ Acc<T> dot_row(const Acc<T> (&a)[kMaxPerLane], const T* p, int64_t hd, int lane) {
  Acc<T> s = 0;
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = lane + 32 * k;
    if (d < hd) s += a[k] * load(p + d);
  }
  return warp_sum(s);
}

// One warp per (b, h, i): online softmax over keys first_key(i) .. i.
template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    gqa_forward_kernel(const T* __restrict__ qkv, T* __restrict__ out, Acc<T>* __restrict__ lse, Geo g, Acc<T> scale) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= g.B * g.H * g.T) return;
  const int64_t i = row % g.T, h = (row / g.T) % g.H, b = row / (g.T * g.H), kv = h / (g.H / g.KV);
  A q[kMaxPerLane], acc[kMaxPerLane];
  load_row(qkv + g.q_off(b, i, h), g.hd, lane, q);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) acc[k] = 0;
  A m = -INFINITY, s = 0;
  for (int64_t j = g.first_key(i); j <= i; ++j) {
    const A x = dot_row(q, qkv + g.k_off(b, j, kv), g.hd, lane) * scale;
    const A m_new = x > m ? x : m;
    const A corr = exp_acc(m - m_new), p = exp_acc(x - m_new);
    s = s * corr + p;
    const T* v = qkv + g.v_off(b, j, kv);
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int64_t d = lane + 32 * k;
      if (d < g.hd) acc[k] = acc[k] * corr + p * load(v + d);
    }
    m = m_new;
  }
  T* o = out + g.o_off(b, i, h);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = lane + 32 * k;
    if (d < g.hd) store(o + d, A(acc[k] / s));
  }
  if (lane == 0) lse[(b * g.H + h) * g.T + i] = m + log_acc(s);
}

// delta[b, h, i] = dO_i . O_i
template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    gqa_delta_kernel(const T* __restrict__ out, const T* __restrict__ dout, Acc<T>* __restrict__ delta, Geo g) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= g.B * g.H * g.T) return;
  const int64_t i = row % g.T, h = (row / g.T) % g.H, b = row / (g.T * g.H);
  A o[kMaxPerLane];
  load_row(out + g.o_off(b, i, h), g.hd, lane, o);
  const A dd = dot_row(o, dout + g.o_off(b, i, h), g.hd, lane);
  if (lane == 0) delta[(b * g.H + h) * g.T + i] = dd;
}

// dQ_i = scale * sum_j P_ij (dO_i . V_j - delta_i) K_j; one warp per (b, h, i).
template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    gqa_dq_kernel(const T* __restrict__ qkv, const Acc<T>* __restrict__ lse, const Acc<T>* __restrict__ delta,
                  const T* __restrict__ dout, T* __restrict__ dqkv, Geo g, Acc<T> scale) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= g.B * g.H * g.T) return;
  const int64_t i = row % g.T, h = (row / g.T) % g.H, b = row / (g.T * g.H), kv = h / (g.H / g.KV);
  const int64_t st = (b * g.H + h) * g.T + i;
  A q[kMaxPerLane], go[kMaxPerLane], acc[kMaxPerLane];
  load_row(qkv + g.q_off(b, i, h), g.hd, lane, q);
  load_row(dout + g.o_off(b, i, h), g.hd, lane, go);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) acc[k] = 0;
  const A l = lse[st], D = delta[st];
  for (int64_t j = g.first_key(i); j <= i; ++j) {
    const A p = exp_acc(dot_row(q, qkv + g.k_off(b, j, kv), g.hd, lane) * scale - l);
    const A ds = p * (dot_row(go, qkv + g.v_off(b, j, kv), g.hd, lane) - D) * scale;
    const T* kr = qkv + g.k_off(b, j, kv);
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int64_t d = lane + 32 * k;
      if (d < g.hd) acc[k] += ds * load(kr + d);
    }
  }
  T* dq = dqkv + g.q_off(b, i, h);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = lane + 32 * k;
    if (d < g.hd) store(dq + d, acc[k]);
  }
}

// dK_j, dV_j of k/v head kv: sum over the group's query heads (in order) and the rows i that see j.
template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    gqa_dkv_kernel(const T* __restrict__ qkv, const Acc<T>* __restrict__ lse, const Acc<T>* __restrict__ delta,
                   const T* __restrict__ dout, T* __restrict__ dqkv, Geo g, Acc<T> scale) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= g.B * g.KV * g.T) return;
  const int64_t j = row % g.T, kv = (row / g.T) % g.KV, b = row / (g.T * g.KV), group = g.H / g.KV;
  A kr[kMaxPerLane], vr[kMaxPerLane], dk[kMaxPerLane], dv[kMaxPerLane];
  load_row(qkv + g.k_off(b, j, kv), g.hd, lane, kr);
  load_row(qkv + g.v_off(b, j, kv), g.hd, lane, vr);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) dk[k] = dv[k] = 0;
  const int64_t last = g.last_query(j);
  for (int64_t h = kv * group; h < (kv + 1) * group; ++h)
    for (int64_t i = j; i <= last; ++i) {
      const int64_t st = (b * g.H + h) * g.T + i;
      const T *qr = qkv + g.q_off(b, i, h), *gr = dout + g.o_off(b, i, h);
      const A p = exp_acc(dot_row(kr, qr, g.hd, lane) * scale - lse[st]);
      const A ds = p * (dot_row(vr, gr, g.hd, lane) - delta[st]) * scale;
#pragma unroll
      for (int k = 0; k < kMaxPerLane; ++k) {
        const int64_t d = lane + 32 * k;
        if (d < g.hd) {
          dv[k] += p * load(gr + d);
          dk[k] += ds * load(qr + d);
        }
      }
    }
  T *dkp = dqkv + g.k_off(b, j, kv), *dvp = dqkv + g.v_off(b, j, kv);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = lane + 32 * k;
    if (d < g.hd) {
      store(dkp + d, dk[k]);
      store(dvp + d, dv[k]);
    }
  }
}

Geo check_args(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head, int n_kv_head,
               int window, const char* what) {
  ARIA_CHECK(qkv.defined() && qkv.dim() == 3 && qkv.is_contiguous() && qkv.device().is_cuda(), what,
             ": qkv must be a contiguous CUDA [B, T, (n_head + 2 n_kv_head) head_dim], got ",
             qkv.defined() ? qkv.str() : "undefined");
  ARIA_CHECK(n_head > 0 && n_kv_head > 0 && n_head % n_kv_head == 0, what, ": n_kv_head = ", n_kv_head,
             " must divide n_head = ", n_head);
  ARIA_CHECK(window >= 0, what, ": window must be >= 0 (0: none), got ", window);
  const int64_t W = qkv.size(2), heads = n_head + 2 * int64_t(n_kv_head);
  ARIA_CHECK(W % heads == 0 && W > 0, what, ": the last dimension ", W, " of qkv is not (n_head + 2 n_kv_head) = ",
             heads, " heads");
  Geo g{qkv.size(0), qkv.size(1), n_head, n_kv_head, W / heads, W, window};
  ARIA_CHECK(g.hd <= 32 * kMaxPerLane, what, ": head_dim ", g.hd, " is above the supported ", 32 * kMaxPerLane);
  const DType dt = qkv.dtype(), st = dt == DType::F64 ? DType::F64 : DType::F32;
  ARIA_CHECK(out.defined() && out.is_contiguous() && out.device().is_cuda() &&
                 out.shape() == Shape({g.B, g.T, g.H * g.hd}) && out.dtype() == dt,
             what, ": out must be a contiguous CUDA ", dtype_name(dt), " [", g.B, ", ", g.T, ", ", g.H * g.hd,
             "], got ", out.defined() ? out.str() : "undefined");
  ARIA_CHECK(lse.defined() && lse.is_contiguous() && lse.device().is_cuda() && lse.shape() == Shape({g.B, g.H, g.T}) &&
                 lse.dtype() == st,
             what, ": lse must be a contiguous CUDA ", dtype_name(st), " [", g.B, ", ", g.H, ", ", g.T, "], got ",
             lse.defined() ? lse.str() : "undefined");
  return g;
}

// Plain multi-head attention that attention_forward/backward take (float32 and bfloat16, hd <= 128).
bool plain_mha(const Geo& g, DType dt) { return g.KV == g.H && g.window == 0 && dt != DType::F64 && g.hd <= 128; }

unsigned blocks_for(int64_t rows) { return unsigned(ceil_div(rows, kWarps)); }

}  // namespace

void attention_gqa_forward(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head,
                           int n_kv_head, int window) {
  const char* what = "attention_gqa_forward";
  const Geo g = check_args(qkv, out, lse, n_head, n_kv_head, window, what);
  if (g.B * g.T == 0) return;
  if (plain_mha(g, qkv.dtype())) return attention_forward(qkv, out, lse, n_head);
  if (attention_forward_bf16_gqa(qkv, out, lse, n_head, n_kv_head, window)) return;  // tensor cores
  dispatch_float(qkv.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    gqa_forward_kernel<T><<<blocks_for(g.B * g.H * g.T), 32 * kWarps, 0, stream()>>>(
        dptr<T>(qkv), dptr<T>(out), dptr<A>(lse), g, A(1.0 / std::sqrt(double(g.hd))));
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void attention_gqa_backward(const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
                            const TensorView& dqkv, int n_head, int n_kv_head, int window) {
  const char* what = "attention_gqa_backward";
  const Geo g = check_args(qkv, out, lse, n_head, n_kv_head, window, what);
  ARIA_CHECK(dout.defined() && dout.is_contiguous() && dout.device().is_cuda() && dout.shape() == out.shape() &&
                 dout.dtype() == qkv.dtype(),
             what, ": dout must be a contiguous ", out.str(), ", got ", dout.defined() ? dout.str() : "undefined");
  ARIA_CHECK(dqkv.defined() && dqkv.is_contiguous() && dqkv.device().is_cuda() && dqkv.shape() == qkv.shape() &&
                 dqkv.dtype() == qkv.dtype(),
             what, ": dqkv must be a contiguous ", qkv.str(), ", got ", dqkv.defined() ? dqkv.str() : "undefined");
  if (g.B * g.T == 0) return;
  if (plain_mha(g, qkv.dtype())) return attention_backward(qkv, out, lse, dout, dqkv, n_head);
  dispatch_float(qkv.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const A scale = A(1.0 / std::sqrt(double(g.hd)));
    KernelBuffer delta({g.B, g.H, g.T}, lse.dtype(), qkv.device());
    const unsigned rows_q = blocks_for(g.B * g.H * g.T);
    gqa_delta_kernel<T><<<rows_q, 32 * kWarps, 0, stream()>>>(dptr<T>(out), dptr<T>(dout), dptr<A>(delta), g);
    ARIA_CUDA_LAUNCH_CHECK();
    gqa_dq_kernel<T><<<rows_q, 32 * kWarps, 0, stream()>>>(dptr<T>(qkv), dptr<A>(lse), dptr<A>(delta), dptr<T>(dout),
                                                           dptr<T>(dqkv), g, scale);
    ARIA_CUDA_LAUNCH_CHECK();
    gqa_dkv_kernel<T><<<blocks_for(g.B * g.KV * g.T), 32 * kWarps, 0, stream()>>>(
        dptr<T>(qkv), dptr<A>(lse), dptr<A>(delta), dptr<T>(dout), dptr<T>(dqkv), g, scale);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
