// Fused causal multi-head attention (flash-attention style), float32 on CUDA cores.
// Layout: qkv [B, T, 3C] (q | k | v, head h at columns h*hd .. (h+1)*hd of each part), out [B, T, C],
// lse [B, H, T] = natural log-sum-exp of each scaled score row.
//
// Tiles are 64 queries x 64 keys; a block has 256 threads as a 16 x 16 grid (ty, tx). Two shared-
// memory products do all the work:
//   mm_nt: acc[i][j] += X[ty*4+i, :] . Y[tx+16j, :]       (scores: rows of X against rows of Y)
//   mm_nn: acc[i][c] += sum_k A[ty*4+i, k] * Bm[k, col(c)]  (probabilities times a [64, hd] tile),
//          col(c) = (c/4)*64 + tx*4 + c%4
// with float4 reads along the reduction dimension (rows padded by 4 floats: no bank conflicts).
// The head dimension is padded with zeros up to HD = 64 or 128 (so any hd <= 128 works).
//
// Forward: one block per (b, h, query tile), online softmax over key tiles 0..qt (exp2 domain),
// heavy (late) query tiles launched first.
// Backward (no atomics, deterministic): D = rowsum(dO * O); one kernel per (b, h, key tile)
// accumulates dK, dV over query tiles kt..last, recomputing P^T from lse; one kernel per
// (b, h, query tile) accumulates dQ over key tiles 0..qt. Every dqkv element is written once.
#include <cmath>

#include "aria/kernels/cuda/attention_bf16.h"
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kTile = 64;
constexpr int kThreads = 256;
constexpr int kLdP = kTile + 4;  // row stride of the 64 x 64 probability tile

template <int HD>
constexpr int ld() {
  return HD + 4;
}

__device__ __forceinline__ float f4(const float4& v, int k) { return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w; }

// rows [row0, row0 + 64) of a [T, hd] slice (row stride `rs` floats) into dst[64][HD + 4], zero-padded
// for rows >= T and columns >= hd.
template <int HD>
__device__ __forceinline__ void load_tile(float* dst, const float* __restrict__ src, int64_t rs, int row0, int T,
                                          int hd) {
  for (int idx = threadIdx.x; idx < kTile * HD; idx += kThreads) {
    const int r = idx / HD, d = idx % HD;
    float v = 0.f;
    if (row0 + r < T && d < hd) v = src[int64_t(row0 + r) * rs + d];
    dst[r * ld<HD>() + d] = v;
  }
}

template <int HD>
__device__ __forceinline__ void mm_nt(const float* X, const float* Y, int ty, int tx, float (&acc)[4][4]) {
#pragma unroll 4
  for (int d = 0; d < HD; d += 4) {
    float4 xv[4], yv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) xv[i] = *reinterpret_cast<const float4*>(&X[(ty * 4 + i) * ld<HD>() + d]);
#pragma unroll
    for (int j = 0; j < 4; ++j) yv[j] = *reinterpret_cast<const float4*>(&Y[(tx + 16 * j) * ld<HD>() + d]);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        acc[i][j] = fmaf(xv[i].x, yv[j].x, acc[i][j]);
        acc[i][j] = fmaf(xv[i].y, yv[j].y, acc[i][j]);
        acc[i][j] = fmaf(xv[i].z, yv[j].z, acc[i][j]);
        acc[i][j] = fmaf(xv[i].w, yv[j].w, acc[i][j]);
      }
  }
}

template <int HD>
__device__ __forceinline__ void mm_nn(const float* A, const float* Bm, int ty, int tx, float (&acc)[4][HD / 16]) {
#pragma unroll 2
  for (int k = 0; k < kTile; k += 4) {
    float4 av[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) av[i] = *reinterpret_cast<const float4*>(&A[(ty * 4 + i) * kLdP + k]);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
      for (int g = 0; g < HD / 64; ++g) {
        const float4 bv = *reinterpret_cast<const float4*>(&Bm[(k + kk) * ld<HD>() + g * 64 + tx * 4]);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float a = f4(av[i], kk);
          acc[i][g * 4 + 0] = fmaf(a, bv.x, acc[i][g * 4 + 0]);
          acc[i][g * 4 + 1] = fmaf(a, bv.y, acc[i][g * 4 + 1]);
          acc[i][g * 4 + 2] = fmaf(a, bv.z, acc[i][g * 4 + 2]);
          acc[i][g * 4 + 3] = fmaf(a, bv.w, acc[i][g * 4 + 3]);
        }
      }
    }
  }
}

__device__ __forceinline__ float max16(float v) {  // over the 16 lanes sharing ty (xor stays inside them)
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float sum16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Writes rows of a [64, HD] accumulator (times `mul`) to dst rows row0.. (row stride rs), valid rows
// and columns only.
template <int HD>
__device__ __forceinline__ void store_rows(float* __restrict__ dst, int64_t rs, int row0, int T, int hd, int ty,
                                           int tx, const float (&acc)[4][HD / 16], const float (&mul)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = row0 + ty * 4 + i;
    if (r >= T) continue;
#pragma unroll
    for (int c = 0; c < HD / 16; ++c) {
      const int col = (c / 4) * 64 + tx * 4 + (c % 4);
      if (col < hd) dst[int64_t(r) * rs + col] = acc[i][c] * mul[i];
    }
  }
}

struct AttnShape {
  int B, T, H, hd;
  float scale_log2;  // log2(e) / sqrt(hd)
};

template <int HD>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(const float* __restrict__ qkv,
                                                                     float* __restrict__ out,
                                                                     float* __restrict__ lse, AttnShape s) {
  extern __shared__ float4 smem4[];
  float* sQ = reinterpret_cast<float*>(smem4);
  float* sK = sQ + kTile * ld<HD>();
  float* sV = sK + kTile * ld<HD>();
  float* sP = sV + kTile * ld<HD>();
  const int BH = s.B * s.H, nqt = (s.T + kTile - 1) / kTile;
  const int bh = blockIdx.x % BH, qt = nqt - 1 - int(blockIdx.x / BH);
  const int b = bh / s.H, h = bh % s.H;
  const int C = s.H * s.hd, q0 = qt * kTile;
  const int64_t rs = 3 * int64_t(C);
  const float* base = qkv + int64_t(b) * s.T * rs + int64_t(h) * s.hd;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  load_tile<HD>(sQ, base, rs, q0, s.T, s.hd);
  float o[4][HD / 16] = {};
  float m[4], l[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) m[i] = -INFINITY, l[i] = 0.f;

  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * kTile;
    __syncthreads();  // the previous tile's readers of sK, sV, sP are done
    load_tile<HD>(sK, base + C, rs, k0, s.T, s.hd);
    load_tile<HD>(sV, base + 2 * C, rs, k0, s.T, s.hd);
    __syncthreads();
    float sc[4][4] = {};
    mm_nt<HD>(sQ, sK, ty, tx, sc);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int qi = q0 + ty * 4 + i;
      float rmax = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kj = k0 + tx + 16 * j;
        sc[i][j] = (kj > qi || kj >= s.T) ? -INFINITY : sc[i][j] * s.scale_log2;
        rmax = fmaxf(rmax, sc[i][j]);
      }
      // Key 0 is visible to every row, so m_new is finite from the first tile on.
      const float m_new = fmaxf(m[i], max16(rmax));
      const float alpha = exp2f(m[i] - m_new);
      float rsum = 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = exp2f(sc[i][j] - m_new);
        rsum += p;
        sP[(ty * 4 + i) * kLdP + tx + 16 * j] = p;
      }
      l[i] = l[i] * alpha + sum16(rsum);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < HD / 16; ++c) o[i][c] *= alpha;
    }
    __syncthreads();
    mm_nn<HD>(sP, sV, ty, tx, o);
  }

  float inv[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) inv[i] = 1.f / l[i];
  store_rows<HD>(out + int64_t(b) * s.T * C + int64_t(h) * s.hd, C, q0, s.T, s.hd, ty, tx, o, inv);
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int qi = q0 + ty * 4 + i;
      if (qi < s.T) lse[(int64_t(b) * s.H + h) * s.T + qi] = (m[i] + log2f(l[i])) * 0.6931471805599453f;
    }
  }
}

// D[b, h, t] = sum_d dO[b, t, h*hd + d] * O[b, t, h*hd + d]; one warp per (b, t, h).
__global__ void attention_rowdot_kernel(const float* __restrict__ dout, const float* __restrict__ out,
                                        float* __restrict__ D, int B, int T, int H, int hd) {
  const int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= int64_t(B) * T * H) return;
  const int h = int(w % H);
  const int64_t bt = w / H;
  const int64_t off = bt * int64_t(H) * hd + int64_t(h) * hd;
  float acc = 0.f;
  for (int d = lane; d < hd; d += 32) acc += dout[off + d] * out[off + d];
  acc = warp_sum(acc);
  if (lane == 0) {
    const int64_t b = bt / T, t = bt % T;
    D[(b * H + h) * T + t] = acc;
  }
}

// Loads lse (as log2) and D for query rows q0.. into sL, sD; zeros past T.
__device__ __forceinline__ void load_row_stats(float* sL, float* sD, const float* __restrict__ lse,
                                               const float* __restrict__ D, int64_t row_base, int q0, int T) {
  for (int r = threadIdx.x; r < kTile; r += kThreads) {
    const bool ok = q0 + r < T;
    sL[r] = ok ? lse[row_base + q0 + r] * 1.4426950408889634f : 0.f;
    sD[r] = ok ? D[row_base + q0 + r] : 0.f;
  }
}

template <int HD>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(const float* __restrict__ qkv,
                                                                  const float* __restrict__ dout,
                                                                  const float* __restrict__ lse,
                                                                  const float* __restrict__ D,
                                                                  float* __restrict__ dqkv, AttnShape s) {
  extern __shared__ float4 smem4[];
  float* sK = reinterpret_cast<float*>(smem4);
  float* sV = sK + kTile * ld<HD>();
  float* sQ = sV + kTile * ld<HD>();
  float* sdO = sQ + kTile * ld<HD>();
  float* sP = sdO + kTile * ld<HD>();
  float* sL = sP + kTile * kLdP;
  float* sD = sL + kTile;
  const int BH = s.B * s.H, nt = (s.T + kTile - 1) / kTile;
  const int bh = blockIdx.x % BH, kt = int(blockIdx.x / BH);  // small kt = most work: first
  const int b = bh / s.H, h = bh % s.H;
  const int C = s.H * s.hd, k0 = kt * kTile;
  const int64_t rs = 3 * int64_t(C);
  const float* base = qkv + int64_t(b) * s.T * rs + int64_t(h) * s.hd;
  const float* dobase = dout + int64_t(b) * s.T * C + int64_t(h) * s.hd;
  const int64_t row_base = (int64_t(b) * s.H + h) * s.T;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  load_tile<HD>(sK, base + C, rs, k0, s.T, s.hd);
  load_tile<HD>(sV, base + 2 * C, rs, k0, s.T, s.hd);
  float dk[4][HD / 16] = {}, dv[4][HD / 16] = {};

  for (int qt = kt; qt < nt; ++qt) {
    const int q0 = qt * kTile;
    __syncthreads();  // previous readers of sQ, sdO, sP, sL, sD are done
    load_tile<HD>(sQ, base, rs, q0, s.T, s.hd);
    load_tile<HD>(sdO, dobase, C, q0, s.T, s.hd);
    load_row_stats(sL, sD, lse, D, row_base, q0, s.T);
    __syncthreads();
    float pt[4][4] = {};  // S^T, then P^T: [key ty*4+i][query tx+16j]
    mm_nt<HD>(sK, sQ, ty, tx, pt);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int kg = k0 + ty * 4 + i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int qg = q0 + tx + 16 * j;
        pt[i][j] = (qg >= kg && qg < s.T) ? exp2f(pt[i][j] * s.scale_log2 - sL[tx + 16 * j]) : 0.f;
        sP[(ty * 4 + i) * kLdP + tx + 16 * j] = pt[i][j];
      }
    }
    __syncthreads();
    mm_nn<HD>(sP, sdO, ty, tx, dv);  // dV += P^T dO
    float ds[4][4] = {};             // dP^T = V dO^T, then dS^T = P^T * (dP^T - D)
    mm_nt<HD>(sV, sdO, ty, tx, ds);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) ds[i][j] = pt[i][j] * (ds[i][j] - sD[tx + 16 * j]);
    __syncthreads();  // everyone is done reading P^T
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) sP[(ty * 4 + i) * kLdP + tx + 16 * j] = ds[i][j];
    __syncthreads();
    mm_nn<HD>(sP, sQ, ty, tx, dk);  // dK += dS^T Q   (times scale below)
  }
  const float scale = s.scale_log2 * 0.6931471805599453f;
  const float mk[4] = {scale, scale, scale, scale}, one[4] = {1.f, 1.f, 1.f, 1.f};
  float* dbase = dqkv + int64_t(b) * s.T * rs + int64_t(h) * s.hd;
  store_rows<HD>(dbase + C, rs, k0, s.T, s.hd, ty, tx, dk, mk);
  store_rows<HD>(dbase + 2 * C, rs, k0, s.T, s.hd, ty, tx, dv, one);
}

template <int HD>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(const float* __restrict__ qkv,
                                                                const float* __restrict__ dout,
                                                                const float* __restrict__ lse,
                                                                const float* __restrict__ D,
                                                                float* __restrict__ dqkv, AttnShape s) {
  extern __shared__ float4 smem4[];
  float* sQ = reinterpret_cast<float*>(smem4);
  float* sdO = sQ + kTile * ld<HD>();
  float* sK = sdO + kTile * ld<HD>();
  float* sV = sK + kTile * ld<HD>();
  float* sP = sV + kTile * ld<HD>();
  float* sL = sP + kTile * kLdP;
  float* sD = sL + kTile;
  const int BH = s.B * s.H, nt = (s.T + kTile - 1) / kTile;
  const int bh = blockIdx.x % BH, qt = nt - 1 - int(blockIdx.x / BH);  // late query tiles first
  const int b = bh / s.H, h = bh % s.H;
  const int C = s.H * s.hd, q0 = qt * kTile;
  const int64_t rs = 3 * int64_t(C);
  const float* base = qkv + int64_t(b) * s.T * rs + int64_t(h) * s.hd;
  const int64_t row_base = (int64_t(b) * s.H + h) * s.T;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  load_tile<HD>(sQ, base, rs, q0, s.T, s.hd);
  load_tile<HD>(sdO, dout + int64_t(b) * s.T * C + int64_t(h) * s.hd, C, q0, s.T, s.hd);
  load_row_stats(sL, sD, lse, D, row_base, q0, s.T);
  float dq[4][HD / 16] = {};

  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * kTile;
    __syncthreads();  // previous readers of sK, sV, sP are done (and the loads above are visible)
    load_tile<HD>(sK, base + C, rs, k0, s.T, s.hd);
    load_tile<HD>(sV, base + 2 * C, rs, k0, s.T, s.hd);
    __syncthreads();
    float p[4][4] = {}, dp[4][4] = {};
    mm_nt<HD>(sQ, sK, ty, tx, p);
    mm_nt<HD>(sdO, sV, ty, tx, dp);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty * 4 + i, qg = q0 + r;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kg = k0 + tx + 16 * j;
        const float pij = (kg <= qg && qg < s.T) ? exp2f(p[i][j] * s.scale_log2 - sL[r]) : 0.f;
        sP[r * kLdP + tx + 16 * j] = pij * (dp[i][j] - sD[r]);
      }
    }
    __syncthreads();
    mm_nn<HD>(sP, sK, ty, tx, dq);  // dQ += dS K   (times scale below)
  }
  const float scale = s.scale_log2 * 0.6931471805599453f;
  const float mq[4] = {scale, scale, scale, scale};
  store_rows<HD>(dqkv + int64_t(b) * s.T * rs + int64_t(h) * s.hd, rs, q0, s.T, s.hd, ty, tx, dq, mq);
}

template <int HD>
constexpr size_t fwd_smem() {
  return sizeof(float) * (3 * kTile * ld<HD>() + kTile * kLdP);
}
template <int HD>
constexpr size_t bwd_smem() {
  return sizeof(float) * (4 * kTile * ld<HD>() + kTile * kLdP + 2 * kTile);
}

template <typename Kernel>
void allow_smem(Kernel k, size_t bytes) {
  ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

AttnShape attn_shape(const TensorView& qkv, int n_head, const char* what) {
  ARIA_CHECK(qkv.dtype() == DType::F32 && qkv.is_contiguous() && qkv.dim() == 3,
             what, ": qkv must be a contiguous float32 [B, T, 3C] tensor, got ", qkv.str());
  ARIA_CHECK(n_head > 0 && qkv.size(2) % (3 * int64_t(n_head)) == 0, what, ": ", qkv.str(), " does not split into 3 x ",
             n_head, " heads");
  AttnShape s;
  s.B = int(qkv.size(0));
  s.T = int(qkv.size(1));
  s.H = n_head;
  s.hd = int(qkv.size(2) / (3 * n_head));
  ARIA_CHECK(s.hd <= 128, what, ": head dimension ", s.hd, " > 128 is not supported on CUDA");
  ARIA_CHECK(qkv.size(0) < INT32_MAX && qkv.size(1) < INT32_MAX, what, ": too large");
  s.scale_log2 = float(1.4426950408889634 / std::sqrt(double(s.hd)));
  return s;
}

void check_f32(const TensorView& t, int64_t numel, const char* what, const char* name) {
  ARIA_CHECK(t.dtype() == DType::F32 && t.is_contiguous() && t.numel() == numel, what, ": ", name, " ", t.str(),
             " must be contiguous float32 with ", numel, " elements");
}

int64_t num_blocks(const AttnShape& s) {
  const int64_t n = int64_t(s.B) * s.H * ((s.T + kTile - 1) / kTile);
  ARIA_CHECK(n <= INT32_MAX, "attention: too many blocks");
  return n;
}

template <int HD>
void forward_impl(const AttnShape& s, const TensorView& qkv, const TensorView& out, const TensorView& lse) {
  static bool init = (allow_smem(attention_forward_kernel<HD>, fwd_smem<HD>()), true);
  (void)init;
  attention_forward_kernel<HD><<<unsigned(num_blocks(s)), kThreads, fwd_smem<HD>(), stream()>>>(
      qkv.data<float>(), out.data<float>(), lse.data<float>(), s);
  ARIA_CUDA_LAUNCH_CHECK();
}

template <int HD>
void backward_impl(const AttnShape& s, const TensorView& qkv, const TensorView& dout, const TensorView& lse,
                   const TensorView& D, const TensorView& dqkv) {
  static bool init = (allow_smem(attention_dkdv_kernel<HD>, bwd_smem<HD>()),
                      allow_smem(attention_dq_kernel<HD>, bwd_smem<HD>()), true);
  (void)init;
  const unsigned nb = unsigned(num_blocks(s));
  attention_dkdv_kernel<HD><<<nb, kThreads, bwd_smem<HD>(), stream()>>>(
      qkv.data<float>(), dout.data<float>(), lse.data<float>(), D.data<float>(), dqkv.data<float>(), s);
  ARIA_CUDA_LAUNCH_CHECK();
  attention_dq_kernel<HD><<<nb, kThreads, bwd_smem<HD>(), stream()>>>(
      qkv.data<float>(), dout.data<float>(), lse.data<float>(), D.data<float>(), dqkv.data<float>(), s);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void attention_forward(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head) {
  if (qkv.dtype() == DType::BF16) return attention_forward_bf16(qkv, out, lse, n_head);  // tensor cores
  const AttnShape s = attn_shape(qkv, n_head, "attention_forward");
  const int64_t C = int64_t(s.H) * s.hd;
  check_f32(out, int64_t(s.B) * s.T * C, "attention_forward", "out");
  check_f32(lse, int64_t(s.B) * s.H * s.T, "attention_forward", "lse");
  if (s.B == 0 || s.T == 0 || s.hd == 0) return;
  if (s.hd <= 64) forward_impl<64>(s, qkv, out, lse);
  else forward_impl<128>(s, qkv, out, lse);
}

void attention_backward(const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
                        const TensorView& dqkv, int n_head) {
  if (qkv.dtype() == DType::BF16) return attention_backward_bf16(qkv, out, lse, dout, dqkv, n_head);
  const AttnShape s = attn_shape(qkv, n_head, "attention_backward");
  const int64_t C = int64_t(s.H) * s.hd;
  check_f32(out, int64_t(s.B) * s.T * C, "attention_backward", "out");
  check_f32(dout, int64_t(s.B) * s.T * C, "attention_backward", "dout");
  check_f32(lse, int64_t(s.B) * s.H * s.T, "attention_backward", "lse");
  check_f32(dqkv, qkv.numel(), "attention_backward", "dqkv");
  if (s.B == 0 || s.T == 0) return;
  if (s.hd == 0) return;
  KernelBuffer D({int64_t(s.B), int64_t(s.H), int64_t(s.T)}, DType::F32, qkv.device());
  const int64_t rows = int64_t(s.B) * s.T * s.H;
  attention_rowdot_kernel<<<unsigned(ceil_div(rows * 32, 256)), 256, 0, stream()>>>(
      dout.data<float>(), out.data<float>(), D.data<float>(), s.B, s.T, s.H, s.hd);
  ARIA_CUDA_LAUNCH_CHECK();
  if (s.hd <= 64) backward_impl<64>(s, qkv, dout, lse, D, dqkv);
  else backward_impl<128>(s, qkv, dout, lse, D, dqkv);
}

}  // namespace aria::cuda
