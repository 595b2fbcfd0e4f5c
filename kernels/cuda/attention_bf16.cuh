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
// every dqkv element is written once, deterministically. The pass recomputes P and dS (3 products per
// tile, as the float32 kernel does): storing dS^T from the dK/dV kernel instead costs more in bytes
// than it saves in products (docs/perf.md, "attention variants").
// Causal masking: tiles (and 16/32-wide chunks of them) that no row of a warp can see are skipped;
// the mask is applied only where a chunk straddles the diagonal. Scores are kept in the log2
// domain (exp2 with log2(e)/sqrt(hd) folded into the scale). P and dS are rounded to bf16 only as
// mma operands; row statistics (max, sum, lse, D) stay fp32.
//
// Head dims 64 (every GPT-2) and 128 are compiled; any other head dim (or unaligned tensors) runs the
// float32 kernel on float32 copies.
//
// This header holds what the forward (attention_bf16_forward.cu) and backward
// (attention_bf16_backward.cu) kernels share: the PTX primitives, fragment helpers, tile loaders
// and the host-side checks.
#pragma once
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda::attn_bf16 {

using bf16 = __nv_bfloat16;

// ---- PTX primitives: the only inline assembly of the attention kernels ----
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

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileQ = 16 * kWarps;  // query rows per tile (one 16-row slice per warp)
constexpr int kTileK = 64;           // key rows per tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;
// Resident CTAs per SM the hd-64 forward is compiled for (register cap 128 with no meaningful
// spills): more warps in flight hide the latency of the short mma chains of 64-wide tiles. hd 128
// keeps every register it wants. The backward kernels take theirs as template parameters.
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
  // Grouped-query form (the forward's kGqa instantiation only): KV k/v heads after the H query heads
  // of each row ((H + 2 KV) hd columns), query head h reading k/v head h / (H / KV); window > 0: query
  // i sees keys i - window < j <= i. dims() sets the plain form, KV = H and window 0.
  int KV, window;
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
// what bounds the one-block form (docs/perf.md).
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

// Opts a kernel into `bytes` of dynamic shared memory (past the 48 KiB default) and asks for the
// largest shared-memory carveout, so that the resident CTAs of min_ctas() fit beside each other (the
// kernels bypass L1 with cp.async.cg and need little of it).
template <typename Kernel>
inline void allow_smem(Kernel k, size_t bytes) {
  ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       int(cudaSharedmemCarveoutMaxShared)));
}

struct Problem {
  int64_t B, T, H, hd;
};

inline Problem check_qkv(const TensorView& qkv, int n_head, const char* what) {
  ARIA_CHECK(qkv.dtype() == DType::BF16 && qkv.is_contiguous() && qkv.dim() == 3, what,
             ": qkv must be a contiguous bfloat16 [B, T, 3C] tensor, got ", qkv.str());
  ARIA_CHECK(n_head > 0 && qkv.size(2) % (3 * int64_t(n_head)) == 0, what, ": ", qkv.str(), " does not split into 3 x ",
             n_head, " heads");
  return {qkv.size(0), qkv.size(1), n_head, qkv.size(2) / (3 * n_head)};
}

inline void check_tensor(const TensorView& t, DType dtype, int64_t numel, const char* what, const char* name) {
  ARIA_CHECK(t.dtype() == dtype && t.is_contiguous() && t.numel() == numel, what, ": ", name, " ", t.str(),
             " must be contiguous ", dtype_name(dtype), " with ", numel, " elements");
}

// The tensor-core kernels read and write 16-byte pieces: hd 64 or 128 and 16-byte aligned data.
inline bool native(const Problem& p, std::initializer_list<const TensorView*> ts) {
  if (p.hd != 64 && p.hd != 128) return false;
  for (const TensorView* t : ts)
    if (reinterpret_cast<uintptr_t>(t->raw_data()) % 16 != 0) return false;
  return true;
}

inline Dims dims(const Problem& p) {
  ARIA_CHECK(p.B * p.H * ((p.T + kTileQ - 1) / kTileQ) <= INT32_MAX && p.T < INT32_MAX, "attention: too large");
  Dims d;
  d.B = int(p.B);
  d.T = int(p.T);
  d.H = int(p.H);
  d.scale_log2 = float(1.4426950408889634 / std::sqrt(double(p.hd)));
  d.scale = float(1.0 / std::sqrt(double(p.hd)));
  d.KV = int(p.H);
  d.window = 0;
  return d;
}

inline KernelBuffer f32_copy(const TensorView& t) {
  KernelBuffer r(t.shape(), DType::F32, t.device());
  copy_cast(t, r);
  return r;
}

}  // namespace aria::cuda::attn_bf16
