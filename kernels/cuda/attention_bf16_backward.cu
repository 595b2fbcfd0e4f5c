// Causal multi-head attention on tensor cores, backward: the bfloat16 path of attention_backward
// (kernels/kernel_list.h). D = rowsum(dO * O), then one CTA per (key tile, b, h) for dK, dV and a
// second pass per query tile for dQ (no float atomics). The design, layouts and shared helpers:
// attention_bf16.cuh.
#include "aria/kernels/cuda/attention_bf16.h"

#include "aria/kernels/cuda/attention_bf16.cuh"

namespace aria::cuda {

namespace {

using namespace attn_bf16;

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

// dK, dV: one CTA per (key tile, b, h), early (heavy) key tiles first; loops over the query tiles
// that can see the key tile. smem: K, V tiles, then two stages of (Q tile, dO tile), then two stages
// of (lse, D) for the 64 query rows. QC: queries per inner step; MINB: resident CTAs per SM the
// registers are capped for: 65536 / (128 MINB) registers, at most 255 (4 -> 128, 3 -> 168, 2 -> 255).
template <int HD, int QC, int MINB>
__global__ void __launch_bounds__(kThreads, MINB)
    attn_bf16_dkdv_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ D, bf16* __restrict__ dqkv, Dims s) {
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
#pragma unroll 1
    for (int c0 = 0; c0 < kTileQ; c0 += QC) {
      if (q0 + c0 >= s.T) break;                 // only padding rows from here on
      if (q0 + c0 + QC - 1 < wk0) continue;  // every query of the chunk is before every key of the warp
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

template <int HD>
constexpr size_t dkdv_smem() {
  return sizeof(bf16) * 6 * tile_elems<HD>() + sizeof(float) * 4 * kTileQ;
}
template <int HD, int MT>
constexpr size_t dq_smem() {
  return sizeof(bf16) * (2 * MT + 4) * tile_elems<HD>();
}

// One configuration of the two backward kernels: dK/dV queries per inner step and CTAs per SM, dQ
// keys per inner step, CTAs per SM and 16-row blocks per warp.
template <int HD, int DKV_QC, int DKV_MINB, int DQ_KC, int DQ_MINB, int DQ_MT>
void backward_launch(const Dims& d, const TensorView& qkv, const TensorView& out, const TensorView& lse,
                     const TensorView& dout, const TensorView& dqkv) {
  constexpr auto dkdv_kernel = attn_bf16_dkdv_kernel<HD, DKV_QC, DKV_MINB>;
  constexpr auto dq_kernel = attn_bf16_dq_kernel<HD, DQ_KC, DQ_MINB, DQ_MT>;
  static bool init = (allow_smem(dkdv_kernel, dkdv_smem<HD>()), allow_smem(dq_kernel, dq_smem<HD, DQ_MT>()), true);
  (void)init;
  const auto* q = static_cast<const bf16*>(qkv.raw_data());
  const auto* o = static_cast<const bf16*>(out.raw_data());
  const auto* dO = static_cast<const bf16*>(dout.raw_data());
  auto* dq = static_cast<bf16*>(dqkv.raw_data());
  KernelBuffer D({int64_t(d.B), int64_t(d.H), int64_t(d.T)}, DType::F32, qkv.device());
  const int64_t lanes = int64_t(d.B) * d.T * d.H * (HD / 8);
  attn_bf16_rowdot_kernel<HD><<<unsigned(ceil_div(lanes, 256)), 256, 0, stream()>>>(dO, o, D.data<float>(), d.B,
                                                                                      d.T, d.H);
  ARIA_CUDA_LAUNCH_CHECK();
  const int64_t bh = int64_t(d.B) * d.H;
  const unsigned kblocks = unsigned(bh * ceil_div(d.T, kTileK));
  const unsigned dq_blocks = unsigned(bh * ceil_div(d.T, kTileQ * DQ_MT));
  dkdv_kernel<<<kblocks, kThreads, dkdv_smem<HD>(), stream()>>>(q, dO, lse.data<float>(), D.data<float>(), dq, d);
  ARIA_CUDA_LAUNCH_CHECK();
  dq_kernel<<<dq_blocks, kThreads, dq_smem<HD, DQ_MT>(), stream()>>>(q, dO, lse.data<float>(), D.data<float>(), dq, d);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void attention_backward_bf16(const TensorView& qkv, const TensorView& out, const TensorView& lse,
                             const TensorView& dout, const TensorView& dqkv, int n_head) {
  const Problem p = check_qkv(qkv, n_head, "attention_backward");
  const int64_t n = p.B * p.T * p.H * p.hd;
  check_tensor(out, DType::BF16, n, "attention_backward", "out");
  check_tensor(dout, DType::BF16, n, "attention_backward", "dout");
  check_tensor(lse, DType::F32, p.B * p.H * p.T, "attention_backward", "lse");
  check_tensor(dqkv, DType::BF16, qkv.numel(), "attention_backward", "dqkv");
  if (p.B == 0 || p.T == 0 || p.hd == 0) return;
  if (!native(p, {&qkv, &out, &dout, &dqkv})) {
    KernelBuffer dqkv32(dqkv.shape(), DType::F32, dqkv.device());
    attention_backward(f32_copy(qkv), f32_copy(out), lse, f32_copy(dout), dqkv32, n_head);
    copy_cast(dqkv32, dqkv);
    return;
  }
  const Dims d = dims(p);
  // hd 64: dK/dV with 64-query chunks and a dQ pass with two 16-row blocks per warp (each K / V
  // fragment feeds two mma), both at 2 CTAs per SM (docs/perf.md, "attention variants"). hd 128 keeps
  // its registers: one CTA per SM, 16-query chunks, one block per warp.
  if (p.hd == 64) backward_launch<64, 64, 2, 32, 2, 2>(d, qkv, out, lse, dout, dqkv);
  else backward_launch<128, 16, 1, 32, 1, 1>(d, qkv, out, lse, dout, dqkv);
}

}  // namespace aria::cuda
