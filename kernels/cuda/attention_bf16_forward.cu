// Causal multi-head attention on tensor cores, forward: the bfloat16 path of attention_forward
// (kernels/kernel_list.h). One CTA per (query tile, b, h): S = Q K^T, online softmax in fp32
// registers, O += P V. The design, layouts and shared helpers: attention_bf16.cuh.
#include "aria/kernels/cuda/attention_bf16.h"

#include "aria/kernels/cuda/attention_bf16.cuh"

namespace aria::cuda {

namespace {

using namespace attn_bf16;

// Forward: one CTA per (query tile, b, h), late (heavy) query tiles first. A warp owns MT blocks of
// 16 query rows (the CTA's tile: 64 MT rows); smem: the Q tile, then two stages of (K tile, V tile).
// kGqa: the grouped-query form with an optional sliding window (Dims::KV, Dims::window); false is
// the plain form, whose code is unchanged by it.
template <int HD, int MT, bool kGqa>
__global__ void __launch_bounds__(kThreads, min_ctas<HD>(MT == 1 ? 4 : 2))
    attn_bf16_forward_kernel(const bf16* __restrict__ qkv, bf16* __restrict__ out, float* __restrict__ lse, Dims s) {
  constexpr int TE = tile_elems<HD>(), kRows = kTileQ * MT, kWarpRows = 16 * MT;
  bf16* sQ = smem_base();  // MT tiles of 64 rows, one pitch: row r at sQ + r ld
  bf16* sKV = sQ + MT * TE;  // stage st: K at sKV + 2 st TE, V right after
  auto [nqt, bh, qt, b, h, C, rs, base] = cta_tile<HD, kRows>(qkv, s, true);
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int q0 = qt * kRows, wq0 = q0 + warp * kWarpRows;  // block i's rows: wq0 + 16 i + g and + 8
  const int nkt = visible_key_tiles<kRows>(qt, s.T);
  // k and v of this head: +C and +2C from the q part in the plain form
  const bf16* kbase = base + C;
  const bf16* vbase = base + 2 * C;
  int kt0 = 0;  // the first key tile any row of the CTA sees
  if constexpr (kGqa) {
    rs = int64_t(s.H + 2 * s.KV) * HD;
    const bf16* row0 = qkv + int64_t(b) * s.T * rs;
    base = row0 + int64_t(h) * HD;
    kbase = row0 + int64_t(s.H + h / (s.H / s.KV)) * HD;
    vbase = kbase + int64_t(s.KV) * HD;
    if (s.window > 0) kt0 = max(0, q0 - s.window + 1) / kTileK;
  }

#pragma unroll
  for (int i = 0; i < MT; ++i) load_tile<HD>(sQ + i * TE, base, rs, q0 + i * kTileQ, s.T);
  load_tile<HD>(sKV + 2 * (kt0 & 1) * TE, kbase, rs, kt0 * kTileK, s.T);
  load_tile<HD>(sKV + 2 * (kt0 & 1) * TE + TE, vbase, rs, kt0 * kTileK, s.T);
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

  for (int kt = kt0; kt < nkt; ++kt) {
    cp_async_wait<0>();  // tile kt (the only group in flight) has landed ...
    __syncthreads();     // ... for every thread, and every warp is done with the other stage
    if (kt == kt0) {
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) ldsm_a<HD>(qf[i][kk], sQ, warp * kWarpRows + 16 * i, kk * 16, lane);
    }
    if (kt + 1 < nkt) {
      if constexpr (kGqa) {
        bf16* dst = sKV + 2 * ((kt + 1) & 1) * TE;
        load_tile<HD>(dst, kbase, rs, (kt + 1) * kTileK, s.T);
        load_tile<HD>(dst + TE, vbase, rs, (kt + 1) * kTileK, s.T);
        cp_async_commit();
      } else {
        prefetch_kv_tile<HD>(sKV, TE, base, C, rs, kt + 1, s.T);
      }
    }
    const bf16* sK = sKV + 2 * (kt & 1) * TE;
    const bf16* sV = sK + TE;
    const int k0 = kt * kTileK;
    if (k0 > wq0 + kWarpRows - 1) continue;  // every key of the tile is after every row of this warp
    // every key of the tile is before the window of every row of this warp
    if (kGqa && s.window > 0 && k0 + kTileK - 1 <= wq0 - s.window) continue;

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
      if (kGqa && s.window > 0 && k0 <= bq0 + 15 - s.window) {  // the tile reaches below some row's window
#pragma unroll
        for (int j = 0; j < kTileK / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (k0 + j * 8 + 2 * t + (e & 1) <= row[e >> 1] - s.window) sc[i][j][e] = -INFINITY;
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

template <int HD, int MT>
constexpr size_t fwd_smem() {
  return sizeof(bf16) * (MT + 4) * tile_elems<HD>();
}

template <int HD, int MT, bool kGqa = false>
void forward_launch(const Dims& d, const TensorView& qkv, const TensorView& out, const TensorView& lse) {
  static bool init = (allow_smem(attn_bf16_forward_kernel<HD, MT, kGqa>, fwd_smem<HD, MT>()), true);
  (void)init;
  const unsigned blocks = unsigned(int64_t(d.B) * d.H * ceil_div(d.T, kTileQ * MT));
  attn_bf16_forward_kernel<HD, MT, kGqa><<<blocks, kThreads, fwd_smem<HD, MT>(), stream()>>>(
      static_cast<const bf16*>(qkv.raw_data()), static_cast<bf16*>(out.raw_data()), lse.data<float>(), d);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void attention_forward_bf16(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head) {
  const Problem p = check_qkv(qkv, n_head, "attention_forward");
  check_tensor(out, DType::BF16, p.B * p.T * p.H * p.hd, "attention_forward", "out");
  check_tensor(lse, DType::F32, p.B * p.H * p.T, "attention_forward", "lse");
  if (p.B == 0 || p.T == 0 || p.hd == 0) return;
  if (!native(p, {&qkv, &out})) {  // the float32 kernel on float32 copies
    KernelBuffer out32(out.shape(), DType::F32, out.device());
    attention_forward(f32_copy(qkv), out32, lse, n_head);
    copy_cast(out32, out);
    return;
  }
  const Dims d = dims(p);
  // hd 64: two 16-row blocks per warp, so each K / V fragment read from shared memory feeds two mma
  // (docs/perf.md, "attention variants"); hd 128 keeps one block per warp for its registers.
  if (p.hd == 64) forward_launch<64, 2>(d, qkv, out, lse);
  else forward_launch<128, 1>(d, qkv, out, lse);
}

bool attention_forward_bf16_gqa(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head,
                                int n_kv_head, int window) {
  const int64_t heads = n_head + 2 * int64_t(n_kv_head);
  if (qkv.dtype() != DType::BF16 || qkv.dim() != 3 || qkv.size(2) % heads) return false;
  const Problem p{qkv.size(0), qkv.size(1), n_head, qkv.size(2) / heads};
  if (p.B == 0 || p.T == 0 || !native(p, {&qkv, &out})) return false;
  check_tensor(out, DType::BF16, p.B * p.T * p.H * p.hd, "attention_gqa_forward", "out");
  check_tensor(lse, DType::F32, p.B * p.H * p.T, "attention_gqa_forward", "lse");
  Dims d = dims(p);
  d.KV = n_kv_head;
  d.window = window;
  if (p.hd == 64) forward_launch<64, 2, true>(d, qkv, out, lse);
  else forward_launch<128, 1, true>(d, qkv, out, lse);
  return true;
}

}  // namespace aria::cuda
