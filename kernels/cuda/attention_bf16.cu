// Causal multi-head attention on tensor cores: the bfloat16 path of attention_forward /
// attention_backward (kernels/kernel_list.h). Layout as the float32 kernel (attention.cu): qkv
// [B, T, 3C] (q | k | v, head h at columns h*hd .. (h+1)*hd of each part), out [B, T, C], lse
// [B, H, T] float32 = natural log-sum-exp of each scaled score row.
//
// FlashAttention-2 structure on warp-level mma.sync.m16n8k16 (bf16 operands, fp32 accumulation):
// a CTA is 4 warps; a warp owns 16 rows of the 64-row tile its CTA works on (or 2 x 16 rows of a
// 128-row tile: the MT = 2 forms of the forward and dQ kernels) and keeps them in registers as mma A
// fragments, while the other operand (64-row tiles of K, V, Q or dO) is staged in
// shared memory by cp.async (double-buffered: the next tile loads while this one is multiplied) and
// read with ldmatrix. Products of one warp (fragments: see "fragment layouts" below):
//   forward  (CTA per query tile):  S = Q K^T, online softmax in fp32 registers, O += P V
//   dK, dV   (CTA per key tile):    S^T = K Q^T -> P^T (from lse), dV += P^T dO, dP^T = V dO^T,
//                                   dS^T = P^T (dP^T - D), dK += dS^T Q
//   dQ       (CTA per query tile):  S = Q K^T -> P, dP = dO V^T, dS = P (dP - D), dQ += dS K
// with D = rowsum(dO * O) from a small pre-kernel. dQ is a second pass instead of float atomics, so
// every dqkv element is written once, deterministically. Two forms of that pass: it recomputes P and
// dS (3 products per tile, as the float32 kernel does), or, in the stored-dS variants, the dK/dV
// kernel also writes the bf16 dS^T tiles it computes anyway (~210 MB at GPT-2 124M, B16 T1024,
// transient) and the pass reads them back: 1 product per tile, yet slower on the H200 (the bytes
// cost more than the products saved; docs/perf.md), so the default recomputes.
// Causal masking: tiles (and 16/32-wide chunks of them) that no row of a warp can see are skipped;
// the mask is applied only where a chunk straddles the diagonal. Scores are kept in the log2
// domain (exp2 with log2(e)/sqrt(hd) folded into the scale). P and dS are rounded to bf16 only as
// mma operands; row statistics (max, sum, lse, D) stay fp32.
//
// Head dims 64 (every GPT-2) and 128 are compiled; any other head dim (or unaligned tensors) runs the
// float32 kernel on float32 copies.
#include "aria/kernels/cuda/attention_bf16.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

using bf16 = __nv_bfloat16;

// ---- PTX primitives: the only inline assembly in this file ----
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, asynchronously; zero-filled (nothing read) when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
// 4 bytes global -> shared, asynchronously; zero-filled when !valid.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, r[i] receives matrix i
// as (row lane/4, columns 2*(lane%4), +1); _trans: (rows 2*(lane%4), +1, column lane/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// d (16x8 fp32) += a (16x16 bf16, row-major) * b (16x8 bf16, column-major)
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The dynamic shared memory of every kernel below.
__device__ __forceinline__ bf16* smem_base() {
  extern __shared__ __align__(16) unsigned char attn_bf16_smem[];
  return reinterpret_cast<bf16*>(attn_bf16_smem);
}
// ---- end PTX primitives ----

// ---- kernels ----
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileQ = 16 * kWarps;  // query rows per tile (one 16-row slice per warp)
constexpr int kTileK = 64;           // key rows per tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;
// Resident CTAs per SM the hd-64 forward is compiled for (register cap 128 with no meaningful
// spills): more warps in flight hide the latency of the short mma chains of 64-wide tiles. hd 128
// keeps every register it wants. The backward kernels take theirs as template parameters (kBwdVariants).
template <int HD>
constexpr int min_ctas(int hd64) {
  return HD == 64 ? hd64 : 1;
}

// Shared-memory tiles are [64][HD] bf16 with rows padded by 16 bytes: the 8 row addresses of an
// ldmatrix then fall on 8 different 4-bank groups (no conflicts), and rows stay 16-byte aligned.
template <int HD>
constexpr int ld() {
  return HD + 8;
}
template <int HD>
constexpr int tile_elems() {
  return 64 * ld<HD>();
}

struct Dims {
  int B, T, H;
  float scale_log2;  // log2(e) / sqrt(hd): scores in the exp2 domain
  float scale;       // 1 / sqrt(hd)
};

// Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4), two bf16 per 32-bit register, the
// lower column (or row, for B) in the low half:
//   A 16x16: a0 (row g, cols 2t, 2t+1), a1 (row g+8, same), a2 (row g, cols 2t+8, +9), a3 (row g+8, same)
//   B 16x8:  b0 (rows 2t, 2t+1, col g), b1 (rows 2t+8, +9, col g)
//   C 16x8:  c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same)
// A C fragment of a 16 x 16 block (two n-tiles) is therefore, rounded to bf16, the A fragment of
// the next product (FlashAttention-2's register reuse of P).

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  uint32_t u;
  memcpy(&u, &v, 4);  // a register move
  return u;
}

// A fragment of rows r0..r0+15, columns c0..c0+15 of a smem tile.
template <int HD>
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const bf16* tile, int r0, int c0, int lane) {
  ldmatrix_x4(a, tile + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld<HD>() + c0 + (lane >> 4) * 8);
}
// A fragment of rows m0..m0+15, columns k0..k0+15 of the transpose of a smem tile stored [k][m]
// (ld<HD>() row pitch): A[m][k] = tile[k][m]. Matrix i of the ldmatrix is (m +8 (i & 1), k +8 (i >> 1)).
template <int HD>
__device__ __forceinline__ void ldsm_a_trans(uint32_t (&a)[4], const bf16* tile, int k0, int m0, int lane) {
  ldmatrix_x4_trans(a, tile + (k0 + (lane & 7) + (lane >> 4) * 8) * ld<HD>() + m0 + ((lane >> 3) & 1) * 8);
}
// B fragments of two n-tiles when B[k][n] = tile[n][k] (the tile's rows are the n dimension, e.g. K
// in S = Q K^T): b[0], b[1] for n = n0..n0+7, b[2], b[3] for n0+8..n0+15; k = c0..c0+15.
template <int HD>
__device__ __forceinline__ void ldsm_b_rows_n(uint32_t (&b)[4], const bf16* tile, int n0, int c0, int lane) {
  ldmatrix_x4(b, tile + (n0 + (lane & 7) + (lane >> 4) * 8) * ld<HD>() + c0 + ((lane >> 3) & 1) * 8);
}
// B fragments of two n-tiles when B[k][n] = tile[k][n] (the tile's rows are the reduction, e.g. V in
// O = P V): k = k0..k0+15, b[0], b[1] for columns n0..n0+7, b[2], b[3] for n0+8..n0+15.
template <int HD>
__device__ __forceinline__ void ldsm_b_rows_k(uint32_t (&b)[4], const bf16* tile, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld<HD>() + n0 + (lane >> 4) * 8);
}

// acc (16MT x 8NT) += A (16MT x HD: MT row blocks of fragments a) . tile[n0 .. n0 + 8NT)^T    (rows of
// the tile as columns). A warp owning MT blocks of 16 rows feeds every B fragment it reads from shared
// memory to MT mma, so it issues 1/MT of the ldmatrix traffic per product: on Hopper that traffic is
// what bounds the one-block form (docs/perf.md, session 6).
template <int HD, int NT, int MT>
__device__ __forceinline__ void mma_a_tileT_mt(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][HD / 16][4],
                                               const bf16* tile, int n0, int lane) {
  static_assert(NT % 2 == 0, "n-tiles come in pairs");
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk)
#pragma unroll
    for (int j = 0; j < NT; j += 2) {
      uint32_t b[4];
      ldsm_b_rows_n<HD>(b, tile, n0 + j * 8, kk * 16, lane);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        mma_bf16(acc[i][j], a[i][kk], b[0], b[1]);
        mma_bf16(acc[i][j + 1], a[i][kk], b[2], b[3]);
      }
    }
}

// acc (16MT x HD) += P (16MT x 16KT, fragments p) . tile[k0 .. k0 + 16KT)    (rows of the tile reduced over)
template <int HD, int KT, int MT>
__device__ __forceinline__ void mma_p_tile_mt(float (&acc)[MT][HD / 8][4], const uint32_t (&p)[MT][KT][4],
                                              const bf16* tile, int k0, int lane) {
#pragma unroll
  for (int kk = 0; kk < KT; ++kk)
#pragma unroll
    for (int j = 0; j < HD / 8; j += 2) {
      uint32_t b[4];
      ldsm_b_rows_k<HD>(b, tile, k0 + kk * 16, j * 8, lane);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        mma_bf16(acc[i][j], p[i][kk], b[0], b[1]);
        mma_bf16(acc[i][j + 1], p[i][kk], b[2], b[3]);
      }
    }
}

// The one-block forms (a warp's 16 rows). The arrays are those of the MT = 1 forms, viewed as such.
template <int HD, int NT>
__device__ __forceinline__ void mma_a_tileT(float (&acc)[NT][4], const uint32_t (&a)[HD / 16][4], const bf16* tile,
                                            int n0, int lane) {
  mma_a_tileT_mt<HD, NT, 1>(reinterpret_cast<float (&)[1][NT][4]>(acc),
                            reinterpret_cast<const uint32_t (&)[1][HD / 16][4]>(a), tile, n0, lane);
}
template <int HD, int KT>
__device__ __forceinline__ void mma_p_tile(float (&acc)[HD / 8][4], const uint32_t (&p)[KT][4], const bf16* tile,
                                           int k0, int lane) {
  mma_p_tile_mt<HD, KT, 1>(reinterpret_cast<float (&)[1][HD / 8][4]>(acc),
                           reinterpret_cast<const uint32_t (&)[1][KT][4]>(p), tile, k0, lane);
}

// C fragments of a 16 x 16KT block -> bf16 A fragments of the same block.
template <int KT>
__device__ __forceinline__ void c_to_a(uint32_t (&p)[KT][4], const float (&c)[2 * KT][4]) {
#pragma unroll
  for (int kk = 0; kk < KT; ++kk) {
    p[kk][0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    p[kk][1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    p[kk][2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    p[kk][3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
  }
}

// Rows [row0, row0 + 64) of a [T, HD] slice (row stride rs elements) -> dst[64][ld<HD>()] by cp.async,
// 16 bytes per copy. Rows >= T are zero-filled: padded keys and values then contribute 0 * 0, never
// 0 * garbage (which could be NaN).
template <int HD>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* __restrict__ src, int64_t rs, int row0, int T) {
  constexpr int kChunks = HD / 8;  // 16-byte pieces per row
  static_assert((64 * kChunks) % kThreads == 0, "whole copies per thread");
#pragma unroll
  for (int j = 0; j < 64 * kChunks / kThreads; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = row0 + r < T;
    cp_async16(dst + r * ld<HD>() + c, ok ? src + int64_t(row0 + r) * rs + c : src, ok);
  }
}

// Starts the asynchronous copy of key/value tile kt into its double-buffer stage of sKV (K then V,
// TE elements each) and commits it as one cp.async group. base points at the row's q part: k and v
// follow at +C and +2C.
template <int HD>
__device__ __forceinline__ void prefetch_kv_tile(bf16* sKV, int TE, const bf16* __restrict__ base, int64_t C,
                                                 int64_t rs, int kt, int T) {
  bf16* dst = sKV + 2 * (kt & 1) * TE;
  load_tile<HD>(dst, base + C, rs, kt * kTileK, T);
  load_tile<HD>(dst + TE, base + 2 * C, rs, kt * kTileK, T);
  cp_async_commit();
}

// Writes a warp's 16 x HD fp32 accumulator (times mul[0] for rows g, mul[1] for rows g + 8) as bf16
// to rows row0 .. row0 + 15 (those < T) of dst (row stride rs), staged through the warp's own 16 rows
// of the smem tile `stage` so that global stores are whole 16-byte pieces.
template <int HD>
__device__ __forceinline__ void store_rows(const float (&acc)[HD / 8][4], const float (&mul)[2], bf16* stage,
                                           bf16* __restrict__ dst, int64_t rs, int row0, int T, int lane) {
  const int g = lane >> 2, t = lane & 3;
  __syncwarp();  // the warp's earlier ldmatrix reads of these rows are complete
#pragma unroll
  for (int j = 0; j < HD / 8; ++j) {
    *reinterpret_cast<uint32_t*>(stage + g * ld<HD>() + j * 8 + 2 * t) =
        pack_bf16(acc[j][0] * mul[0], acc[j][1] * mul[0]);
    *reinterpret_cast<uint32_t*>(stage + (g + 8) * ld<HD>() + j * 8 + 2 * t) =
        pack_bf16(acc[j][2] * mul[1], acc[j][3] * mul[1]);
  }
  __syncwarp();
  constexpr int kChunks = HD / 8;
#pragma unroll
  for (int j = 0; j < 16 * kChunks / 32; ++j) {
    const int i = lane + 32 * j;
    const int r = i / kChunks, c = (i % kChunks) * 8;
    if (row0 + r < T)
      *reinterpret_cast<uint4*>(dst + int64_t(row0 + r) * rs + c) =
          *reinterpret_cast<const uint4*>(stage + r * ld<HD>() + c);
  }
}

// The (b, h) and the 64-row tile a CTA works on, from blockIdx.x = tile slot * B*H + b*H + h: query
// tile kernels take late (heavy) tiles first, the dK/dV kernel early (heavy) key tiles first. base
// is this head's q part at row 0 of qkv (k and v follow at +C and +2C), rs the qkv row stride.
struct CtaTile {
  int nqt, bh, tile, b, h, C;
  int64_t rs;
  const bf16* base;
};
template <int HD, int kRows = kTileQ>
__device__ __forceinline__ CtaTile cta_tile(const bf16* qkv, const Dims& s, bool late_first) {
  const int BH = s.B * s.H, nqt = (s.T + kRows - 1) / kRows, bh = int(blockIdx.x) % BH;
  const int tile = late_first ? nqt - 1 - int(blockIdx.x) / BH : int(blockIdx.x) / BH;
  const int b = bh / s.H, h = bh % s.H, C = s.H * HD;
  const int64_t rs = 3 * int64_t(C);
  return {nqt, bh, tile, b, h, C, rs, qkv + int64_t(b) * s.T * rs + int64_t(h) * HD};
}
// Key tiles that some row of query tile qt (kRows rows; those < T) can see.
template <int kRows = kTileQ>
__device__ __forceinline__ int visible_key_tiles(int qt, int T) {
  const int last_row = min(qt * kRows + kRows, T) - 1;
  return last_row / kTileK + 1;
}

// Forward: one CTA per (query tile, b, h), late (heavy) query tiles first. A warp owns MT blocks of
// 16 query rows (the CTA's tile: 64 MT rows); smem: the Q tile, then two stages of (K tile, V tile).
template <int HD, int MT>
__global__ void __launch_bounds__(kThreads, min_ctas<HD>(MT == 1 ? 4 : 2))
    attn_bf16_forward_kernel(const bf16* __restrict__ qkv, bf16* __restrict__ out, float* __restrict__ lse, Dims s) {
  constexpr int TE = tile_elems<HD>(), kRows = kTileQ * MT, kWarpRows = 16 * MT;
  bf16* sQ = smem_base();  // MT tiles of 64 rows, one pitch: row r at sQ + r ld
  bf16* sKV = sQ + MT * TE;  // stage st: K at sKV + 2 st TE, V right after
  const auto [nqt, bh, qt, b, h, C, rs, base] = cta_tile<HD, kRows>(qkv, s, true);
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int q0 = qt * kRows, wq0 = q0 + warp * kWarpRows;  // block i's rows: wq0 + 16 i + g and + 8
  const int nkt = visible_key_tiles<kRows>(qt, s.T);

#pragma unroll
  for (int i = 0; i < MT; ++i) load_tile<HD>(sQ + i * TE, base, rs, q0 + i * kTileQ, s.T);
  load_tile<HD>(sKV, base + C, rs, 0, s.T);
  load_tile<HD>(sKV + TE, base + 2 * C, rs, 0, s.T);
  cp_async_commit();

  uint32_t qf[MT][HD / 16][4];
  float o[MT][HD / 8][4] = {};
  float m[MT][2], l[MT][2];  // running max of the raw scores, running sum of exp2 (this thread's columns)
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m[i][r] = -INFINITY;
      l[i][r] = 0.f;
    }

  for (int kt = 0; kt < nkt; ++kt) {
    cp_async_wait<0>();  // tile kt (the only group in flight) has landed ...
    __syncthreads();     // ... for every thread, and every warp is done with the other stage
    if (kt == 0) {
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) ldsm_a<HD>(qf[i][kk], sQ, warp * kWarpRows + 16 * i, kk * 16, lane);
    }
    if (kt + 1 < nkt) prefetch_kv_tile<HD>(sKV, TE, base, C, rs, kt + 1, s.T);
    const bf16* sK = sKV + 2 * (kt & 1) * TE;
    const bf16* sV = sK + TE;
    const int k0 = kt * kTileK;
    if (k0 > wq0 + kWarpRows - 1) continue;  // every key of the tile is after every row of this warp

    float sc[MT][kTileK / 8][4] = {};
    mma_a_tileT_mt<HD, kTileK / 8, MT>(sc, qf, sK, 0, lane);
    uint32_t pf[MT][kTileK / 16][4];
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      const int bq0 = wq0 + 16 * i;
      const int row[2] = {bq0 + g, bq0 + g + 8};
      // A block whose rows all precede the tile has every score masked: its max, sum and output pass
      // through unchanged (alpha = 1, every p = 0).
      if (k0 + kTileK - 1 > bq0) {  // the tile straddles (or passes) this block's diagonal
#pragma unroll
        for (int j = 0; j < kTileK / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (k0 + j * 8 + 2 * t + (e & 1) > row[e >> 1]) sc[i][j][e] = -INFINITY;
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[i][r];
#pragma unroll
        for (int j = 0; j < kTileK / 8; ++j) mx = fmaxf(mx, fmaxf(sc[i][j][2 * r], sc[i][j][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));  // the 4 lanes of a quad share the row
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
        // A row with no visible key yet keeps max -inf: offset 0 then gives exp2(-inf) = 0, not NaN.
        const float off = mx == -INFINITY ? 0.f : mx * s.scale_log2;
        const float alpha = exp2f(m[i][r] * s.scale_log2 - off);
        m[i][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < kTileK / 8; ++j)
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            const float p = exp2f(fmaf(sc[i][j][e], s.scale_log2, -off));
            sc[i][j][e] = p;
            sum += p;
          }
        l[i][r] = l[i][r] * alpha + sum;
#pragma unroll
        for (int j = 0; j < HD / 8; ++j) {
          o[i][j][2 * r] *= alpha;
          o[i][j][2 * r + 1] *= alpha;
        }
      }
      c_to_a<kTileK / 16>(pf[i], sc[i]);
    }
    mma_p_tile_mt<HD, kTileK / 16, MT>(o, pf, sV, 0, lane);
  }

#pragma unroll
  for (int i = 0; i < MT; ++i) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[i][r] += __shfl_xor_sync(kFull, l[i][r], 1);
      l[i][r] += __shfl_xor_sync(kFull, l[i][r], 2);
      inv[r] = 1.f / l[i][r];  // >= 1: the row maximum contributes exp2(0)
    }
    const int bq0 = wq0 + 16 * i;
    // The warp's own rows of sQ (only this warp ever read them) stage the output.
    store_rows<HD>(o[i], inv, sQ + (warp * kWarpRows + 16 * i) * ld<HD>(),
                   out + int64_t(b) * s.T * C + int64_t(h) * HD, C, bq0, s.T, lane);
    if (t == 0) {
      const int row[2] = {bq0 + g, bq0 + g + 8};
#pragma unroll
      for (int r = 0; r < 2; ++r)
        if (row[r] < s.T)
          lse[(int64_t(b) * s.H + h) * s.T + row[r]] = (m[i][r] * s.scale_log2 + log2f(l[i][r])) * kLn2;
    }
  }
}

// D[b, h, t] = sum_d dO[b, t, h*HD + d] * O[b, t, h*HD + d] in fp32; HD/8 lanes per row, 16 bytes each.
template <int HD>
__global__ void attn_bf16_rowdot_kernel(const bf16* __restrict__ dout, const bf16* __restrict__ out,
                                        float* __restrict__ D, int B, int T, int H) {
  constexpr int kLanes = HD / 8;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = i / kLanes, rows = int64_t(B) * T * H;
  float acc = 0.f;
  if (row < rows) {
    const uint4 x = *reinterpret_cast<const uint4*>(dout + i * 8);
    const uint4 y = *reinterpret_cast<const uint4*>(out + i * 8);
    __nv_bfloat162 xp[4], yp[4];
    memcpy(xp, &x, 16);
    memcpy(yp, &y, 16);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 a = __bfloat1622float2(xp[k]), c = __bfloat1622float2(yp[k]);
      acc = fmaf(a.x, c.x, acc);
      acc = fmaf(a.y, c.y, acc);
    }
  }
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(kFull, acc, o);  // a row's lanes are aligned
  if (row < rows && i % kLanes == 0) {
    const int64_t h = row % H, bt = row / H;
    D[(bt / T * H + h) * T + bt % T] = acc;
  }
}

// Stored dS^T tiles (kTileK == kTileQ: key tile kt is seen by query tiles kt .. nqt - 1): per (b, h)
// the tiles (kt, qt >= kt) in row-major order, 64 x 64 bf16 each; ds_tiles_per_bh of them.
static_assert(kTileK == kTileQ, "the stored-dS layout pairs key and query tiles of one size");
__host__ __device__ __forceinline__ int64_t ds_tiles_per_bh(int nqt) {
  return int64_t(nqt) * nqt - int64_t(nqt) * (nqt - 1) / 2;
}
__device__ __forceinline__ int64_t ds_tile(int bh, int kt, int qt, int nqt) {
  const int64_t idx = int64_t(kt) * nqt - int64_t(kt) * (kt - 1) / 2 + (qt - kt);
  return (int64_t(bh) * ds_tiles_per_bh(nqt) + idx) * (kTileK * kTileQ);
}

// dK, dV: one CTA per (key tile, b, h), early (heavy) key tiles first; loops over the query tiles
// that can see the key tile. smem: K, V tiles, then two stages of (Q tile, dO tile), then two stages
// of (lse, D) for the 64 query rows. QC: queries per inner step; MINB: resident CTAs per SM the
// registers are capped for (backward variants: see kBwdVariants). kStoreDS: also write every dS^T
// tile (64 keys x 64 queries, bf16, rows of 64) to dsT at ds_tile(): chunks skipped under the causal
// mask as zeros, so that every entry a query row < T reads is written.
template <int HD, int QC, int MINB, bool kStoreDS>
__global__ void __launch_bounds__(kThreads, MINB)
    attn_bf16_dkdv_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ D, bf16* __restrict__ dqkv, bf16* __restrict__ dsT, Dims s) {
  constexpr int TE = tile_elems<HD>();
  // hd 64: the warp's K and V fragments live in registers; hd 128 would spill, so they are re-read
  // from smem, and queries go 16 at a time instead of 32.
  constexpr bool kRegKV = HD == 64;
  static_assert(QC % 16 == 0 && kTileQ % QC == 0, "whole 16-query chunks per tile");
  bf16* sK = smem_base();
  bf16* sV = sK + TE;
  bf16* sQdO = sV + TE;  // stage st: Q at sQdO + 2 st TE, dO right after
  float* sStat = reinterpret_cast<float*>(sQdO + 4 * TE);  // stage st: L at sStat + 2 st kTileQ, D after
  const auto [nqt, bh, kt, b, h, C, rs, base] = cta_tile<HD>(qkv, s, false);
  const bf16* dobase = dout + int64_t(b) * s.T * C + int64_t(h) * HD;
  const int64_t stat_base = (int64_t(b) * s.H + h) * s.T;
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int k0 = kt * kTileK, wk0 = k0 + warp * 16;  // the warp's keys: wk0 + g and wk0 + g + 8
  const int key[2] = {wk0 + g, wk0 + g + 8};
  const int qt0 = k0 / kTileQ;  // earlier query tiles see none of these keys

  static_assert(kThreads == 2 * kTileQ, "one lse or D value per thread");
  auto issue = [&](int qt, int st) {  // asynchronous loads of query tile qt into stage st
    bf16* dst = sQdO + 2 * st * TE;
    load_tile<HD>(dst, base, rs, qt * kTileQ, s.T);
    load_tile<HD>(dst + TE, dobase, C, qt * kTileQ, s.T);
    // lse (threads 0..63) and D (64..127) of the tile's rows, 4 bytes each: rows of [B, H, T] are not
    // 16-byte aligned. Rows past T read 0, which is harmless: their Q and dO rows are zero, so their
    // P^T dO and dS^T = P^T (V dO^T - D) are exactly 0.
    const int r = int(threadIdx.x) % kTileQ, q = qt * kTileQ + r;
    const bool is_d = int(threadIdx.x) >= kTileQ;
    const float* src = is_d ? D : lse;
    cp_async4(sStat + 2 * st * kTileQ + (is_d ? kTileQ : 0) + r, q < s.T ? src + stat_base + q : src, q < s.T);
  };
  load_tile<HD>(sK, base + C, rs, k0, s.T);
  load_tile<HD>(sV, base + 2 * C, rs, k0, s.T);
  issue(qt0, 0);
  cp_async_commit();

  uint32_t kf[HD / 16][4], vf[HD / 16][4];
  float dk[HD / 8][4] = {}, dv[HD / 8][4] = {};
  for (int qt = qt0; qt < nqt; ++qt) {
    const int st = (qt - qt0) & 1;
    cp_async_wait<0>();
    __syncthreads();
    if constexpr (kRegKV) {
      if (qt == qt0) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
          ldsm_a<HD>(kf[kk], sK, warp * 16, kk * 16, lane);
          ldsm_a<HD>(vf[kk], sV, warp * 16, kk * 16, lane);
        }
      }
    }
    if (qt + 1 < nqt) {
      issue(qt + 1, st ^ 1);
      cp_async_commit();
    }
    const bf16* sQ = sQdO + 2 * st * TE;
    const bf16* sdO = sQ + TE;
    const float* sL = sStat + 2 * st * kTileQ;
    const float* sD = sL + kTileQ;
    const int q0 = qt * kTileQ;
    // This warp's 16 rows of the stored dS^T tile (key tile kt, query tile qt).
    bf16* ds_rows = kStoreDS ? dsT + ds_tile(bh, kt, qt, nqt) + warp * 16 * kTileQ : nullptr;
#pragma unroll 1
    for (int c0 = 0; c0 < kTileQ; c0 += QC) {
      if (q0 + c0 >= s.T) break;                 // only padding rows from here on
      if (q0 + c0 + QC - 1 < wk0) {              // every query of the chunk is before every key of the warp
        if constexpr (kStoreDS) {
#pragma unroll
          for (int j = 0; j < QC / 8; ++j) {
            *reinterpret_cast<uint32_t*>(ds_rows + g * kTileQ + c0 + j * 8 + 2 * t) = 0u;
            *reinterpret_cast<uint32_t*>(ds_rows + (g + 8) * kTileQ + c0 + j * 8 + 2 * t) = 0u;
          }
        }
        continue;
      }
      float sT[QC / 8][4] = {}, dpT[QC / 8][4] = {};  // S^T, dP^T: [key g / g+8][query]
      if constexpr (!kRegKV) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) ldsm_a<HD>(kf[kk], sK, warp * 16, kk * 16, lane);
      }
      mma_a_tileT<HD, QC / 8>(sT, kf, sQ, c0, lane);
      if constexpr (!kRegKV) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) ldsm_a<HD>(vf[kk], sV, warp * 16, kk * 16, lane);
      }
      mma_a_tileT<HD, QC / 8>(dpT, vf, sdO, c0, lane);
      const bool diag = q0 + c0 < wk0 + 15;  // some query of the chunk precedes some key of the warp
#pragma unroll
      for (int j = 0; j < QC / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = c0 + j * 8 + 2 * t + (e & 1);
          float p = exp2f(fmaf(sT[j][e], s.scale_log2, -sL[qi] * kLog2e));
          if (diag && q0 + qi < key[e >> 1]) p = 0.f;
          sT[j][e] = p;
          dpT[j][e] = p * (dpT[j][e] - sD[qi]);
        }
      uint32_t pf[QC / 16][4], dsf[QC / 16][4];
      c_to_a<QC / 16>(pf, sT);
      c_to_a<QC / 16>(dsf, dpT);
      if constexpr (kStoreDS) {  // the A fragments' halves are exactly the tile's bf16 pairs
#pragma unroll
        for (int kk = 0; kk < QC / 16; ++kk) {
          bf16* p0 = ds_rows + g * kTileQ + c0 + kk * 16 + 2 * t;
          *reinterpret_cast<uint32_t*>(p0) = dsf[kk][0];
          *reinterpret_cast<uint32_t*>(p0 + 8 * kTileQ) = dsf[kk][1];
          *reinterpret_cast<uint32_t*>(p0 + 8) = dsf[kk][2];
          *reinterpret_cast<uint32_t*>(p0 + 8 * kTileQ + 8) = dsf[kk][3];
        }
      }
      mma_p_tile<HD, QC / 16>(dv, pf, sdO, c0, lane);   // dV += P^T dO
      mma_p_tile<HD, QC / 16>(dk, dsf, sQ, c0, lane);   // dK += dS^T Q   (times scale below)
    }
  }
  // The warp's own rows of sK / sV (only this warp ever read them) stage the results.
  bf16* dbase = dqkv + int64_t(b) * s.T * rs + int64_t(h) * HD;
  const float mk[2] = {s.scale, s.scale}, one[2] = {1.f, 1.f};
  store_rows<HD>(dk, mk, sK + warp * 16 * ld<HD>(), dbase + C, rs, wk0, s.T, lane);
  store_rows<HD>(dv, one, sV + warp * 16 * ld<HD>(), dbase + 2 * C, rs, wk0, s.T, lane);
}

// dQ: one CTA per (query tile, b, h), late (heavy) query tiles first; loops over the key tiles the
// query tile can see, recomputing P. A warp owns MT blocks of 16 query rows (tiles of 64 MT rows).
// smem: the Q and dO tiles (MT x 64 rows each), then two stages of (K tile, V tile).
// KC: keys per inner step (32 keeps S and dP at 16 registers per block); MINB as for the dK, dV kernel.
template <int HD, int KC, int MINB, int MT = 1>
__global__ void __launch_bounds__(kThreads, MINB)
    attn_bf16_dq_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dout, const float* __restrict__ lse,
                        const float* __restrict__ D, bf16* __restrict__ dqkv, Dims s) {
  constexpr int TE = tile_elems<HD>(), kRows = kTileQ * MT, kWarpRows = 16 * MT;
  static_assert(KC % 16 == 0 && kTileK % KC == 0, "whole 16-key chunks per tile");
  bf16* sQ = smem_base();  // row r of the query tile at sQ + r ld (MT tiles of one pitch)
  bf16* sdO = sQ + MT * TE;
  bf16* sKV = sdO + MT * TE;  // stage st: K at sKV + 2 st TE, V right after
  const auto [nqt, bh, qt, b, h, C, rs, base] = cta_tile<HD, kRows>(qkv, s, true);
  const int64_t stat_base = (int64_t(b) * s.H + h) * s.T;
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int q0 = qt * kRows, wq0 = q0 + warp * kWarpRows;  // block i's rows: wq0 + 16 i + g and + 8
  const int nkt = visible_key_tiles<kRows>(qt, s.T);
  float L[MT][2], Dr[MT][2];  // lse (log2 units) and D of rows g, g + 8; rows past T get P = 0, dS = 0
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = wq0 + 16 * i + g + 8 * r;
      L[i][r] = row < s.T ? lse[stat_base + row] * kLog2e : INFINITY;
      Dr[i][r] = row < s.T ? D[stat_base + row] : 0.f;
    }

  const bf16* dobase = dout + int64_t(b) * s.T * C + int64_t(h) * HD;
#pragma unroll
  for (int i = 0; i < MT; ++i) {
    load_tile<HD>(sQ + i * TE, base, rs, q0 + i * kTileQ, s.T);
    load_tile<HD>(sdO + i * TE, dobase, C, q0 + i * kTileQ, s.T);
  }
  load_tile<HD>(sKV, base + C, rs, 0, s.T);
  load_tile<HD>(sKV + TE, base + 2 * C, rs, 0, s.T);
  cp_async_commit();

  uint32_t qf[MT][HD / 16][4], dof[MT][HD / 16][4];
  float dq[MT][HD / 8][4] = {};
  for (int kt = 0; kt < nkt; ++kt) {
    cp_async_wait<0>();
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
          ldsm_a<HD>(qf[i][kk], sQ, warp * kWarpRows + 16 * i, kk * 16, lane);
          ldsm_a<HD>(dof[i][kk], sdO, warp * kWarpRows + 16 * i, kk * 16, lane);
        }
    }
    if (kt + 1 < nkt) prefetch_kv_tile<HD>(sKV, TE, base, C, rs, kt + 1, s.T);
    const bf16* sK = sKV + 2 * (kt & 1) * TE;
    const bf16* sV = sK + TE;
    const int k0 = kt * kTileK;
#pragma unroll 1
    for (int c0 = 0; c0 < kTileK; c0 += KC) {
      if (k0 + c0 > wq0 + kWarpRows - 1) break;  // this chunk and the later ones are after every row of the warp
      float sc[MT][KC / 8][4] = {}, dp[MT][KC / 8][4] = {};
      mma_a_tileT_mt<HD, KC / 8, MT>(sc, qf, sK, c0, lane);
      mma_a_tileT_mt<HD, KC / 8, MT>(dp, dof, sV, c0, lane);
      uint32_t dsf[MT][KC / 16][4];
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int bq0 = wq0 + 16 * i;
        const bool diag = k0 + c0 + KC - 1 > bq0;  // some key of the chunk is after some row of the block
#pragma unroll
        for (int j = 0; j < KC / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            float p = exp2f(fmaf(sc[i][j][e], s.scale_log2, -L[i][r]));
            if (diag && k0 + c0 + j * 8 + 2 * t + (e & 1) > bq0 + g + 8 * r) p = 0.f;
            dp[i][j][e] = p * (dp[i][j][e] - Dr[i][r]);
          }
        c_to_a<KC / 16>(dsf[i], dp[i]);
      }
      mma_p_tile_mt<HD, KC / 16, MT>(dq, dsf, sK, c0, lane);  // dQ += dS K   (times scale below)
    }
  }
  const float mq[2] = {s.scale, s.scale};
#pragma unroll
  for (int i = 0; i < MT; ++i)
    store_rows<HD>(dq[i], mq, sQ + (warp * kWarpRows + 16 * i) * ld<HD>(),
                   dqkv + int64_t(b) * s.T * rs + int64_t(h) * HD, rs, wq0 + 16 * i, s.T, lane);
}

// dQ from the stored dS^T tiles: one CTA per (query tile, b, h), late (heavy) query tiles first;
// dQ = scale * sum over visible key tiles of dS K, with dS read as transposed A fragments of the
// stored [key][query] tile. smem: two stages of (K tile, dS^T tile), both padded as ld<64>() rows.
template <int HD, int MINB>
__global__ void __launch_bounds__(kThreads, MINB)
    attn_bf16_dq_from_ds_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dsT, bf16* __restrict__ dqkv,
                                Dims s) {
  constexpr int TE = tile_elems<HD>(), DSE = tile_elems<kTileQ>();
  bf16* sbuf = smem_base();  // stage st: K at sbuf + st (TE + DSE), dS^T right after
  const auto [nqt, bh, qt, b, h, C, rs, base] = cta_tile<HD>(qkv, s, true);
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  const int q0 = qt * kTileQ, wq0 = q0 + warp * 16;
  const int nkt = visible_key_tiles(qt, s.T);
  auto issue = [&](int kt, int st) {  // K tile kt and the dS^T tile (kt, qt) into stage st
    bf16* dst = sbuf + st * (TE + DSE);
    load_tile<HD>(dst, base + C, rs, kt * kTileK, s.T);
    load_tile<kTileQ>(dst + TE, dsT + ds_tile(bh, kt, qt, nqt), kTileQ, 0, kTileK);  // whole tile is allocated
    cp_async_commit();
  };
  issue(0, 0);
  float dq[HD / 8][4] = {};
  for (int kt = 0; kt < nkt; ++kt) {
    cp_async_wait<0>();
    __syncthreads();
    if (kt + 1 < nkt) issue(kt + 1, (kt + 1) & 1);
    const bf16* sK = sbuf + (kt & 1) * (TE + DSE);
    const bf16* sDS = sK + TE;
    const int k0 = kt * kTileK;
#pragma unroll
    for (int c0 = 0; c0 < kTileK; c0 += 16) {
      if (k0 + c0 > wq0 + 15) break;  // keys after every row of the warp: dS = 0
      uint32_t a[1][4];
      ldsm_a_trans<kTileQ>(a[0], sDS, c0, warp * 16, lane);
      mma_p_tile<HD, 1>(dq, a, sK, c0, lane);  // dQ += dS K   (times scale below)
    }
  }
  __syncthreads();  // every warp is done with both stages: stage 0 stages the output
  const float mq[2] = {s.scale, s.scale};
  store_rows<HD>(dq, mq, sbuf + warp * 16 * ld<HD>(), dqkv + int64_t(b) * s.T * rs + int64_t(h) * HD, rs, wq0, s.T,
                 lane);
}
// ---- end kernels ----

template <int HD, int MT>
constexpr size_t fwd_smem() {
  return sizeof(bf16) * (MT + 4) * tile_elems<HD>();
}
template <int HD>
constexpr size_t dkdv_smem() {
  return sizeof(bf16) * 6 * tile_elems<HD>() + sizeof(float) * 4 * kTileQ;
}
template <int HD, int MT>
constexpr size_t dq_smem() {
  return sizeof(bf16) * (2 * MT + 4) * tile_elems<HD>();
}
template <int HD>
constexpr size_t dq_from_ds_smem() {
  return sizeof(bf16) * 2 * (tile_elems<HD>() + tile_elems<kTileQ>());
}

// Opts a kernel into `bytes` of dynamic shared memory (past the 48 KiB default) and asks for the
// largest shared-memory carveout, so that the resident CTAs of min_ctas() fit beside each other (the
// kernels bypass L1 with cp.async.cg and need little of it).
template <typename Kernel>
void allow_smem(Kernel k, size_t bytes) {
  ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       int(cudaSharedmemCarveoutMaxShared)));
}

struct Problem {
  int64_t B, T, H, hd;
};

Problem check_qkv(const Tensor& qkv, int n_head, const char* what) {
  ARIA_CHECK(qkv.dtype() == DType::BF16 && qkv.is_contiguous() && qkv.dim() == 3, what,
             ": qkv must be a contiguous bfloat16 [B, T, 3C] tensor, got ", qkv.str());
  ARIA_CHECK(n_head > 0 && qkv.size(2) % (3 * int64_t(n_head)) == 0, what, ": ", qkv.str(), " does not split into 3 x ",
             n_head, " heads");
  return {qkv.size(0), qkv.size(1), n_head, qkv.size(2) / (3 * n_head)};
}

void check_tensor(const Tensor& t, DType dtype, int64_t numel, const char* what, const char* name) {
  ARIA_CHECK(t.dtype() == dtype && t.is_contiguous() && t.numel() == numel, what, ": ", name, " ", t.str(),
             " must be contiguous ", dtype_name(dtype), " with ", numel, " elements");
}

// The tensor-core kernels read and write 16-byte pieces: hd 64 or 128 and 16-byte aligned data.
bool native(const Problem& p, std::initializer_list<const Tensor*> ts) {
  if (p.hd != 64 && p.hd != 128) return false;
  for (const Tensor* t : ts)
    if (reinterpret_cast<uintptr_t>(t->raw_data()) % 16 != 0) return false;
  return true;
}

Dims dims(const Problem& p) {
  ARIA_CHECK(p.B * p.H * ((p.T + kTileQ - 1) / kTileQ) <= INT32_MAX && p.T < INT32_MAX, "attention: too large");
  Dims d;
  d.B = int(p.B);
  d.T = int(p.T);
  d.H = int(p.H);
  d.scale_log2 = float(1.4426950408889634 / std::sqrt(double(p.hd)));
  d.scale = float(1.0 / std::sqrt(double(p.hd)));
  return d;
}

Tensor f32_copy(const Tensor& t) {
  Tensor r = Tensor::empty(t.shape(), DType::F32, t.device());
  copy_cast(t, r);
  return r;
}

template <int HD, int MT>
void forward_launch(const Dims& d, const Tensor& qkv, const Tensor& out, const Tensor& lse) {
  static bool init = (allow_smem(attn_bf16_forward_kernel<HD, MT>, fwd_smem<HD, MT>()), true);
  (void)init;
  const unsigned blocks = unsigned(int64_t(d.B) * d.H * ceil_div(d.T, kTileQ * MT));
  attn_bf16_forward_kernel<HD, MT><<<blocks, kThreads, fwd_smem<HD, MT>(), stream()>>>(
      static_cast<const bf16*>(qkv.raw_data()), static_cast<bf16*>(out.raw_data()), lse.data<float>(), d);
  ARIA_CUDA_LAUNCH_CHECK();
}

// One configuration of the two backward kernels (their register caps and inner chunk widths; with
// STORE_DS the dQ pass reads the stored dS^T tiles and DQ_KC is unused).
template <int HD, int DKV_QC, int DKV_MINB, int DQ_KC, int DQ_MINB, bool STORE_DS = false, int DQ_MT = 1>
void backward_launch(const Dims& d, const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                     const Tensor& dqkv) {
  constexpr auto dkdv_kernel = attn_bf16_dkdv_kernel<HD, DKV_QC, DKV_MINB, STORE_DS>;
  constexpr auto dq_kernel = attn_bf16_dq_kernel<HD, DQ_KC, DQ_MINB, DQ_MT>;
  constexpr auto dq_ds_kernel = attn_bf16_dq_from_ds_kernel<HD, DQ_MINB>;
  static bool init = (allow_smem(dkdv_kernel, dkdv_smem<HD>()),
                      STORE_DS ? allow_smem(dq_ds_kernel, dq_from_ds_smem<HD>()) : allow_smem(dq_kernel, dq_smem<HD, DQ_MT>()),
                      true);
  (void)init;
  const auto* q = static_cast<const bf16*>(qkv.raw_data());
  const auto* o = static_cast<const bf16*>(out.raw_data());
  const auto* dO = static_cast<const bf16*>(dout.raw_data());
  auto* dq = static_cast<bf16*>(dqkv.raw_data());
  Tensor D = Tensor::empty({int64_t(d.B), int64_t(d.H), int64_t(d.T)}, DType::F32, qkv.device());
  const int64_t lanes = int64_t(d.B) * d.T * d.H * (HD / 8);
  attn_bf16_rowdot_kernel<HD><<<unsigned(ceil_div(lanes, 256)), 256, 0, stream()>>>(dO, o, D.data<float>(), d.B,
                                                                                      d.T, d.H);
  ARIA_CUDA_LAUNCH_CHECK();
  const int64_t bh = int64_t(d.B) * d.H;
  const unsigned kblocks = unsigned(bh * ceil_div(d.T, kTileK));
  const unsigned qblocks = unsigned(bh * ceil_div(d.T, kTileQ));  // stored-dS pass
  const unsigned dq_blocks = unsigned(bh * ceil_div(d.T, kTileQ * DQ_MT));
  Tensor ds;  // the stored dS^T tiles (STORE_DS), freed when this returns: stream order keeps it for the dQ pass
  if constexpr (STORE_DS)
    ds = Tensor::empty({bh * ds_tiles_per_bh(int((d.T + kTileQ - 1) / kTileQ)) * kTileK * kTileQ}, DType::BF16,
                       qkv.device());
  bf16* dsT = STORE_DS ? static_cast<bf16*>(ds.raw_data()) : nullptr;
  dkdv_kernel<<<kblocks, kThreads, dkdv_smem<HD>(), stream()>>>(q, dO, lse.data<float>(), D.data<float>(), dq, dsT,
                                                                 d);
  ARIA_CUDA_LAUNCH_CHECK();
  if constexpr (STORE_DS) {
    dq_ds_kernel<<<qblocks, kThreads, dq_from_ds_smem<HD>(), stream()>>>(q, dsT, dq, d);
  } else {
    dq_kernel<<<dq_blocks, kThreads, dq_smem<HD, DQ_MT>(), stream()>>>(q, dO, lse.data<float>(), D.data<float>(), dq, d);
  }
  ARIA_CUDA_LAUNCH_CHECK();
}

using BackwardLaunch = void (*)(const Dims&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                const Tensor&);

// The hd-64 backward configurations (the tuning sweep of the ARIA_ATTN_BENCH test times them all;
// ARIA_ATTN_BWD_VARIANT picks one at run time); entry 0 is the default. Rows 5, 6 and 1 each change
// one kernel of the first configuration (row 2), so the sweep also times each kernel's options alone.
// Fields: dK/dV queries per inner step and CTAs per SM, dQ keys per inner step and
// CTAs per SM; MINB caps registers at 65536 / (128 MINB), at most 255: 4 -> 128, 3 -> 168, 2 -> 255.
struct BwdVariant {
  const char* name;
  BackwardLaunch launch;
};
#define ARIA_ATTN_BWD_VARIANT(a, b, c, e) \
  BwdVariant { "dkdv qc" #a " min" #b " | dq kc" #c " min" #e, backward_launch<64, a, b, c, e> }
#define ARIA_ATTN_BWD_DS_VARIANT(a, b, e) \
  BwdVariant { "dkdv qc" #a " min" #b " + stored dS | dq from dS min" #e, backward_launch<64, a, b, 16, e, true> }
#define ARIA_ATTN_BWD_DQ32_VARIANT(a, b, c, e)                                              \
  BwdVariant {                                                                               \
    "dkdv qc" #a " min" #b " | dq 32 rows/warp kc" #c " min" #e, backward_launch<64, a, b, c, e, false, 2> \
  }
const BwdVariant kBwdVariants[] = {
    // The default (session 6, H200, B16 T1024 H12): row 1's dK/dV kernel and a dQ pass with two 16-row
    // blocks per warp (128-row tiles), whose K / V fragments each feed two mma: 0.353 ms vs 0.368.
    ARIA_ATTN_BWD_DQ32_VARIANT(64, 2, 32, 2),
    // The default until session 5, from the H100 sweep: dK/dV with 64-wide query chunks at 2 CTAs/SM,
    // dQ as first written. 0.375 ms vs 0.380 for the first configuration (row 2). On the H200 rows 1-4
    // and 6 are within 1.5% of each other, row 5 15% slower: the structure, not these knobs, sets the speed.
    ARIA_ATTN_BWD_VARIANT(64, 2, 32, 4),
    ARIA_ATTN_BWD_VARIANT(32, 3, 32, 4),  // the first configuration: 128 / 168 / 128 register caps
    ARIA_ATTN_BWD_VARIANT(32, 2, 32, 3),  // looser register caps, fewer CTAs in flight
    ARIA_ATTN_BWD_VARIANT(64, 2, 64, 3),  // wider chunks: longer independent mma chains
    ARIA_ATTN_BWD_VARIANT(16, 4, 32, 4),  // dK/dV only: narrower chunks, 4 CTAs per SM (112 B spill)
    ARIA_ATTN_BWD_VARIANT(32, 3, 64, 3),  // dQ only: wider key chunks
    // Stored dS: the dQ pass multiplies the dS^T tiles the dK/dV kernel wrote instead of recomputing
    // them. Slower on the H200 (0.387 vs 0.367 ms): writing and re-reading ~210 MB costs more than the
    // two products it saves (docs/perf.md, session 5); kept for the sweep on other GPUs.
    ARIA_ATTN_BWD_DS_VARIANT(64, 2, 4),
    // The two-block dQ pass with narrower key chunks (0.361 ms), and at 3 CTAs/SM (spills: 0.470 ms).
    ARIA_ATTN_BWD_DQ32_VARIANT(64, 2, 16, 2),
    ARIA_ATTN_BWD_DQ32_VARIANT(64, 2, 16, 3),
};
#undef ARIA_ATTN_BWD_VARIANT
#undef ARIA_ATTN_BWD_DS_VARIANT
#undef ARIA_ATTN_BWD_DQ32_VARIANT
constexpr int kNumBwdVariants = int(sizeof(kBwdVariants) / sizeof(kBwdVariants[0]));

// The hd-64 forward configurations (ARIA_ATTN_FWD_VARIANT picks one at run time; entry 0 is the
// default): query rows per warp, which set the ldmatrix traffic per product and the registers.
using ForwardLaunch = void (*)(const Dims&, const Tensor&, const Tensor&, const Tensor&);
struct FwdVariant {
  const char* name;
  ForwardLaunch launch;
};
const FwdVariant kFwdVariants[] = {
    // The default: each K / V fragment read from shared memory feeds two mma. H200, B16 T1024 H12:
    // 0.111 ms vs 0.114 for row 1 (docs/perf.md, session 6).
    {"32 rows per warp, 128-row tiles, 2 CTAs/SM", forward_launch<64, 2>},
    {"16 rows per warp, 64-row tiles, 4 CTAs/SM", forward_launch<64, 1>},
};
constexpr int kNumFwdVariants = int(sizeof(kFwdVariants) / sizeof(kFwdVariants[0]));

// The environment variable `name` as an index in [0, count), read by the caller once; unset means 0.
int env_variant(const char* name, int count) {
  const char* e = std::getenv(name);
  if (!e || !*e) return 0;
  char* end = nullptr;
  const long i = std::strtol(e, &end, 10);
  ARIA_CHECK(*end == '\0' && i >= 0 && i < count, name, "=", e, " must be an integer in [0, ", count, ")");
  return int(i);
}

}  // namespace

int attention_forward_bf16_variants() { return kNumFwdVariants; }

const char* attention_forward_bf16_variant_name(int variant) {
  ARIA_CHECK(variant >= 0 && variant < kNumFwdVariants, "attention forward variant ", variant, " out of range");
  return kFwdVariants[variant].name;
}

void attention_forward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, int n_head, int variant) {
  const Problem p = check_qkv(qkv, n_head, "attention_forward");
  check_tensor(out, DType::BF16, p.B * p.T * p.H * p.hd, "attention_forward", "out");
  check_tensor(lse, DType::F32, p.B * p.H * p.T, "attention_forward", "lse");
  if (p.B == 0 || p.T == 0 || p.hd == 0) return;
  if (!native(p, {&qkv, &out})) {  // the float32 kernel on float32 copies
    Tensor out32 = Tensor::empty(out.shape(), DType::F32, out.device());
    attention_forward(f32_copy(qkv), out32, lse, n_head);
    copy_cast(out32, out);
    return;
  }
  static const int env = env_variant("ARIA_ATTN_FWD_VARIANT", kNumFwdVariants);
  if (variant < 0) variant = env;
  ARIA_CHECK(variant < kNumFwdVariants, "attention forward variant ", variant, " out of range");
  const Dims d = dims(p);
  if (p.hd == 64) kFwdVariants[variant].launch(d, qkv, out, lse);
  else forward_launch<128, 1>(d, qkv, out, lse);  // hd 128: no variants
}

int attention_backward_bf16_variants() { return kNumBwdVariants; }

const char* attention_backward_bf16_variant_name(int variant) {
  ARIA_CHECK(variant >= 0 && variant < kNumBwdVariants, "attention backward variant ", variant, " out of range");
  return kBwdVariants[variant].name;
}

void attention_backward_bf16(const Tensor& qkv, const Tensor& out, const Tensor& lse, const Tensor& dout,
                             const Tensor& dqkv, int n_head, int variant) {
  const Problem p = check_qkv(qkv, n_head, "attention_backward");
  const int64_t n = p.B * p.T * p.H * p.hd;
  check_tensor(out, DType::BF16, n, "attention_backward", "out");
  check_tensor(dout, DType::BF16, n, "attention_backward", "dout");
  check_tensor(lse, DType::F32, p.B * p.H * p.T, "attention_backward", "lse");
  check_tensor(dqkv, DType::BF16, qkv.numel(), "attention_backward", "dqkv");
  if (p.B == 0 || p.T == 0 || p.hd == 0) return;
  if (!native(p, {&qkv, &out, &dout, &dqkv})) {
    Tensor dqkv32 = Tensor::empty(dqkv.shape(), DType::F32, dqkv.device());
    attention_backward(f32_copy(qkv), f32_copy(out), lse, f32_copy(dout), dqkv32, n_head);
    copy_cast(dqkv32, dqkv);
    return;
  }
  static const int env = env_variant("ARIA_ATTN_BWD_VARIANT", kNumBwdVariants);
  if (variant < 0) variant = env;
  ARIA_CHECK(variant < kNumBwdVariants, "attention backward variant ", variant, " out of range");
  const Dims d = dims(p);
  if (p.hd == 64) kBwdVariants[variant].launch(d, qkv, out, lse, dout, dqkv);
  else backward_launch<128, 16, 1, 32, 1>(d, qkv, out, lse, dout, dqkv);  // hd 128: no variants
}

}  // namespace aria::cuda
