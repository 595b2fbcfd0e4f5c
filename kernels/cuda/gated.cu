// CUDA kernels of ARIA's gated MLP mix, of its gate's head and of the SPC penalty gradient. float32,
// float64 and bfloat16 storage; math in Acc<T> (fp32 for bfloat16), each bf16 result rounded once
// when stored.
//
// gate_mix: one warp per row [C] of the mix, so that the gate value pi[n] is read once per row and
// the backward's row sum dpi[n] = sum_c dout * (fast - slow) is a lane-private fp32 partial plus a
// warp butterfly: a fixed order, no atomics, no second pass. Each lane moves 16-byte packs and
// issues kUnroll of them per operand before using any (bandwidth-bound: keep loads in flight).
// gate_head: the gate's C -> 1 head and its sigmoid, where a generic GEMM with N = 1 wastes a
// tensor-core tile. Forward: one warp per row, as gate_mix, the dot product relu(h) . w2 as lane
// partials and a warp butterfly; the logit is also kept in fp32, so that the backward's sigmoid
// derivative does not lose 1 - pi to pi's bf16 rounding. Backward: a 2-D grid of column tiles x row
// chunks; each lane owns VW columns of its tile, writes dh for every row of its chunk and keeps its
// columns' sums of dz * relu(h) in registers; the block adds its warps' sums in warp order into one
// partial row per chunk, and a finishing kernel adds the chunks in order into dw2 (and db2):
// deterministic, and h is read once.
// spc_penalty_grad: one launch over every tensor of the list (the multi-tensor scheme of
// optimizer.cu: an uploaded array of per-tensor descriptors, blocks mapped to (tensor, chunk) by
// binary search), each block a flat map over its chunk in 16-byte packs when the tensor's four
// operands are aligned (a per-tensor flag), element by element otherwise.
#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/gated_check.h"

namespace aria::cuda {

namespace {

constexpr int kWarps = 8;   // rows per block, one per warp
// Packs per operand a lane loads before computing. 4 took the bf16 backward to 126 registers (2
// blocks per SM) for no more bytes in flight per SM than 2 (78 registers, 3 blocks).
constexpr int kUnroll = 2;

// A pack as stored; its elements are widened to Acc<T> where they are used.
template <typename T, int VW>
__device__ __forceinline__ Pack<T, VW> load_raw(const T* p) {
  return *reinterpret_cast<const Pack<T, VW>*>(p);
}

// Rows row = blockIdx.x * kWarps + warp, stepping by the grid. C % VW == 0 when VW > 1, so a pack
// starting inside the row ends inside it.
template <typename T, int VW>
__global__ void __launch_bounds__(32 * kWarps)
    gate_mix_forward_kernel(const T* __restrict__ slow, const T* __restrict__ fast, const T* __restrict__ pi,
                            T* __restrict__ out, int64_t N, int C) {
  using A = Acc<T>;
  const int lane = threadIdx.x & 31;
  for (int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); row < N; row += int64_t(gridDim.x) * kWarps) {
    const A p = load(pi + row);
    const int64_t base = row * C;
    for (int c0 = lane * VW; c0 < C; c0 += 32 * VW * kUnroll) {
      Pack<T, VW> s[kUnroll], f[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * 32 * VW;
        if (c < C) {
          s[u] = load_raw<T, VW>(slow + base + c);
          f[u] = load_raw<T, VW>(fast + base + c);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * 32 * VW;
        if (c >= C) continue;
        A o[VW];
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A sv = load(&s[u].v[k]);
          o[k] = sv + p * (load(&f[u].v[k]) - sv);
        }
        store_pack<T, VW>(out + base + c, o);
      }
    }
  }
}

// As the forward; null outputs are skipped (slow and fast are read only for dpi).
template <typename T, int VW>
__global__ void __launch_bounds__(32 * kWarps)
    gate_mix_backward_kernel(const T* __restrict__ slow, const T* __restrict__ fast, const T* __restrict__ pi,
                             const T* __restrict__ dout, T* __restrict__ dslow, T* __restrict__ dfast,
                             T* __restrict__ dpi, int64_t N, int C) {
  using A = Acc<T>;
  const int lane = threadIdx.x & 31;
  for (int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); row < N; row += int64_t(gridDim.x) * kWarps) {
    const A p = load(pi + row), q = A(1) - p;
    const int64_t base = row * C;
    A acc = 0;  // this lane's share of dpi[row]
    for (int c0 = lane * VW; c0 < C; c0 += 32 * VW * kUnroll) {
      Pack<T, VW> g[kUnroll], s[kUnroll], f[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * 32 * VW;
        if (c < C) {
          g[u] = load_raw<T, VW>(dout + base + c);
          if (dpi) {
            s[u] = load_raw<T, VW>(slow + base + c);
            f[u] = load_raw<T, VW>(fast + base + c);
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * 32 * VW;
        if (c >= C) continue;
        A gv[VW], o[VW];
#pragma unroll
        for (int k = 0; k < VW; ++k) gv[k] = load(&g[u].v[k]);
        if (dfast) {
#pragma unroll
          for (int k = 0; k < VW; ++k) o[k] = gv[k] * p;
          store_pack<T, VW>(dfast + base + c, o);
        }
        if (dslow) {
#pragma unroll
          for (int k = 0; k < VW; ++k) o[k] = gv[k] * q;
          store_pack<T, VW>(dslow + base + c, o);
        }
        if (dpi) {
#pragma unroll
          for (int k = 0; k < VW; ++k) acc += gv[k] * (load(&f[u].v[k]) - load(&s[u].v[k]));
        }
      }
    }
    if (dpi) {
      acc = warp_sum(acc);
      if (lane == 0) store(dpi + row, acc);
    }
  }
}

__device__ __forceinline__ float exp_acc(float x) { return __expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }

template <typename A>
__device__ __forceinline__ A relu_acc(A v) {
  return v > A(0) ? v : A(0);
}

// z = relu(h[row]) . w2 + b2, pi[row] = sigmoid(z), logit[row] = z when logit is non-null; rows as
// gate_mix_forward_kernel.
template <typename T, int VW>
__global__ void __launch_bounds__(32 * kWarps)
    gate_head_forward_kernel(const T* __restrict__ h, const T* __restrict__ w2, const T* __restrict__ b2,
                             T* __restrict__ pi, Acc<T>* __restrict__ logit, int64_t N, int C) {
  using A = Acc<T>;
  const int lane = threadIdx.x & 31;
  const A bias = load(b2);
  for (int64_t row = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); row < N; row += int64_t(gridDim.x) * kWarps) {
    const int64_t base = row * C;
    A acc = 0;  // this lane's share of the logit
    for (int c0 = lane * VW; c0 < C; c0 += 32 * VW * kUnroll) {
      Pack<T, VW> hp[kUnroll], wp[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * 32 * VW;
        if (c < C) {
          hp[u] = load_raw<T, VW>(h + base + c);
          wp[u] = load_raw<T, VW>(w2 + c);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (c0 + u * 32 * VW >= C) continue;
#pragma unroll
        for (int k = 0; k < VW; ++k) acc += relu_acc(load(&hp[u].v[k])) * load(&wp[u].v[k]);
      }
    }
    const A z = warp_sum(acc) + bias;
    if (lane == 0) {
      store(pi + row, A(1) / (A(1) + exp_acc(-z)));
      if (logit) logit[row] = z;
    }
  }
}

constexpr int kHeadRows = 4;  // rows a warp of the head's backward loads before computing any

// Block (blockIdx.x, blockIdx.y): columns [tile0, tile0 + 32 * VW) of rows [r0, r0 + chunk_len); warp
// w takes rows r0 + w, r0 + w + kWarps, ... dz = dpi sigmoid(z) sigmoid(-z) from the saved logit z.
// With `partial` ([chunks, C + 1]) the block writes its
// column sums of dz * relu(h) to partial[chunk][c] and, in the first column tile, its sum of dz to
// partial[chunk][C]. C % VW == 0 when VW > 1.
template <typename T, int VW>
__global__ void __launch_bounds__(32 * kWarps)
    gate_head_backward_kernel(const T* __restrict__ h, const T* __restrict__ w2, const Acc<T>* __restrict__ logit,
                              const T* __restrict__ dpi, T* __restrict__ dh, Acc<T>* __restrict__ partial, int64_t N,
                              int C, int64_t chunk_len) {
  using A = Acc<T>;
  constexpr int kTile = 32 * VW;
  __shared__ A col_sums[kWarps][kTile];
  __shared__ A dz_sums[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tile0 = blockIdx.x * kTile, c = tile0 + lane * VW;
  const bool active = c < C;
  const int64_t r0 = blockIdx.y * chunk_len, r1 = min(N, r0 + chunk_len);
  A wv[VW], acc[VW];
#pragma unroll
  for (int k = 0; k < VW; ++k) acc[k] = wv[k] = 0;
  if (active) load_pack<T, VW>(w2 + c, wv);
  A dz_sum = 0;  // the same in every lane of the warp
  for (int64_t r = r0 + warp; r < r1; r += int64_t(kWarps) * kHeadRows) {
    Pack<T, VW> hp[kHeadRows];
    A dz[kHeadRows];
#pragma unroll
    for (int u = 0; u < kHeadRows; ++u) {
      const int64_t row = r + int64_t(u) * kWarps;
      if (row < r1) {
        const A z = logit[row];
        dz[u] = load(dpi + row) / ((A(1) + exp_acc(-z)) * (A(1) + exp_acc(z)));
        if (active) hp[u] = load_raw<T, VW>(h + row * C + c);
      }
    }
#pragma unroll
    for (int u = 0; u < kHeadRows; ++u) {
      const int64_t row = r + int64_t(u) * kWarps;
      if (row >= r1) break;
      dz_sum += dz[u];
      if (!active) continue;
      A o[VW];
#pragma unroll
      for (int k = 0; k < VW; ++k) {
        const A hv = load(&hp[u].v[k]);
        o[k] = hv > A(0) ? dz[u] * wv[k] : A(0);
        acc[k] += dz[u] * relu_acc(hv);
      }
      if (dh) store_pack<T, VW>(dh + row * C + c, o);
    }
  }
  if (!partial) return;  // the same for the whole block
#pragma unroll
  for (int k = 0; k < VW; ++k) col_sums[warp][lane * VW + k] = acc[k];
  if (lane == 0) dz_sums[warp] = dz_sum;
  __syncthreads();
  A* out = partial + int64_t(blockIdx.y) * (C + 1);
  for (int t = threadIdx.x; t < kTile && tile0 + t < C; t += blockDim.x) {
    A s = col_sums[0][t];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) s += col_sums[w][t];
    out[tile0 + t] = s;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    A s = dz_sums[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) s += dz_sums[w];
    out[C] = s;
  }
}

constexpr int kFinX = 32, kFinY = 16;

// Column j < C + 1 of the [chunks, C + 1] partials summed in chunk order by a (32, 16) block: thread
// row y adds chunks y, y + 16, ..., then the 16 sums are added in y order. j < C goes to dw2[j], j ==
// C to db2 (each skipped when null); written, rounded once.
template <typename T>
__global__ void gate_head_finish_kernel(const Acc<T>* __restrict__ partial, int chunks, int C, T* __restrict__ dw2,
                                        T* __restrict__ db2) {
  using A = Acc<T>;
  __shared__ A tile[kFinY][kFinX + 1];
  const int j = blockIdx.x * kFinX + threadIdx.x;
  A s = 0;
  if (j <= C)
    for (int k = threadIdx.y; k < chunks; k += kFinY) s += partial[int64_t(k) * (C + 1) + j];
  tile[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || j > C) return;
  A t = tile[0][threadIdx.x];
  for (int y = 1; y < kFinY; ++y) t += tile[y][threadIdx.x];
  T* dst = j < C ? (dw2 ? dw2 + j : nullptr) : db2;
  if (dst) store(dst, t);
}

constexpr int kSpcBlock = 256;
constexpr int64_t kSpcChunk = 16384;  // elements per block: a multiple of every pack width

// One tensor of a spc_penalty_grad call.
struct SpcDev {
  void* grad;
  const void *a, *x, *b;
  int64_t n;
  int64_t first_block;
  int vec;  // all four operands 16-byte aligned: the chunk moves in packs
};

// a * b rounded on its own (never contracted into a multiply-add with the subtraction that follows):
// B holds the rounded products F theta*, so at an anchor that one consolidated task alone constrains,
// A p - B is exactly 0, as on the CPU (kernels/cpu/gated.cpp says why it matters).
__device__ __forceinline__ float rounded_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double rounded_mul(double a, double b) { return __dmul_rn(a, b); }

// grad[i] += lambda * (a[i] * x[i] - b[i]) for i in [start, end), by the block, VW elements at a time
// (start and end - start multiples of VW), kUnroll packs per operand loaded before any is used.
// S: the dtype of a and b (T's, or float for bfloat16 T: the float32 SPC buffers).
template <typename T, int VW, typename S = T>
__device__ __forceinline__ void spc_range(T* __restrict__ g, const S* __restrict__ a, const T* __restrict__ x,
                                          const S* __restrict__ b, Acc<T> lambda, int64_t start, int64_t end) {
  using A = Acc<T>;
  constexpr int64_t kStride = int64_t(kSpcBlock) * VW;
  for (int64_t i0 = start + int64_t(threadIdx.x) * VW; i0 < end; i0 += kStride * kUnroll) {
    A gv[kUnroll][VW], av[kUnroll][VW], xv[kUnroll][VW], bv[kUnroll][VW];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * kStride;
      if (i < end) {
        load_pack<T, VW>(g + i, gv[u]);
        load_pack<S, VW>(a + i, av[u]);
        load_pack<T, VW>(x + i, xv[u]);
        load_pack<S, VW>(b + i, bv[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * kStride;
      if (i >= end) continue;
#pragma unroll
      for (int k = 0; k < VW; ++k) gv[u][k] += lambda * (rounded_mul(av[u][k], xv[u][k]) - bv[u][k]);
      store_pack<T, VW>(g + i, gv[u]);
    }
  }
}

// Block -> (tensor, chunk); the chunk in packs (the tensor's last chunk ends with its odd elements
// one at a time) or element by element. vec is uniform over the block: no divergence.
// S: the dtype of the As and Bs (T's, or float with bfloat16 T). Packs of the wider dtype's 16 bytes
// (kVec<S> elements when S is wider than T: 8-byte bfloat16 packs next to 16-byte float ones).
template <typename T, typename S = T>
__global__ void __launch_bounds__(kSpcBlock)
    spc_penalty_grad_kernel(const SpcDev* __restrict__ items, int n_items, Acc<T> lambda) {
  __shared__ SpcDev it;
  if (threadIdx.x == 0) it = items[find_item(items, n_items, blockIdx.x)];
  __syncthreads();
  const int64_t start = (int64_t(blockIdx.x) - it.first_block) * kSpcChunk;
  const int64_t end = min(it.n, start + kSpcChunk);
  T* g = static_cast<T*>(it.grad);
  const S *a = static_cast<const S*>(it.a), *b = static_cast<const S*>(it.b);
  const T* x = static_cast<const T*>(it.x);
  if (it.vec) {
    constexpr int VW = kVec<T> < kVec<S> ? kVec<T> : kVec<S>;
    const int64_t packed_end = start + (end - start) / VW * VW;
    spc_range<T, VW, S>(g, a, x, b, lambda, start, packed_end);
    spc_range<T, 1, S>(g, a, x, b, lambda, packed_end, end);
  } else {
    spc_range<T, 1, S>(g, a, x, b, lambda, start, end);
  }
}

// ---- host side ----

// 16-byte aligned data, or an undefined (unused) operand.
bool aligned_or_null(const TensorView& t) { return !t.defined() || aligned16(t.raw_data()); }

template <typename T>
T* ptr_or_null(const TensorView& t) {
  return t.defined() ? dptr<T>(t) : nullptr;
}

unsigned row_grid(int64_t N) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(N, kWarps), int64_t(num_sms()) * 32)));
}

}  // namespace

void gate_mix_forward(const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& out) {
  const char* what = "gate_mix_forward";
  const GateRows r = check_gate_mix_forward(slow, fast, pi, out, true);
  if (r.N * r.C == 0) return;
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    // 16-byte packs need every row start aligned: C a multiple of the pack and aligned bases.
    const bool vec =
        r.C % kVec<T> == 0 && aligned_or_null(slow) && aligned_or_null(fast) && aligned_or_null(out);
    auto go = [&](auto kernel) {
      kernel<<<row_grid(r.N), 32 * kWarps, 0, stream()>>>(dptr<T>(slow), dptr<T>(fast), dptr<T>(pi), dptr<T>(out),
                                                          r.N, int(r.C));
    };
    if (vec) go(gate_mix_forward_kernel<T, kVec<T>>);
    else go(gate_mix_forward_kernel<T, 1>);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void gate_mix_backward(const TensorView& slow, const TensorView& fast, const TensorView& pi, const TensorView& dout,
                       const TensorView& dslow, const TensorView& dfast, const TensorView& dpi) {
  const char* what = "gate_mix_backward";
  const GateRows r = check_gate_mix_backward(slow, fast, pi, dout, dslow, dfast, dpi, true);
  if (r.N == 0 || (!dslow.defined() && !dfast.defined() && !dpi.defined())) return;
  dispatch_float(slow.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    // C == 0 still runs when dpi is wanted: the sum over an empty row is 0.
    const bool vec = r.C % kVec<T> == 0 && aligned_or_null(slow) && aligned_or_null(fast) &&
                     aligned_or_null(dout) && aligned_or_null(dslow) && aligned_or_null(dfast);
    auto go = [&](auto kernel) {
      kernel<<<row_grid(r.N), 32 * kWarps, 0, stream()>>>(dptr<T>(slow), dptr<T>(fast), dptr<T>(pi), dptr<T>(dout),
                                                          ptr_or_null<T>(dslow), ptr_or_null<T>(dfast),
                                                          ptr_or_null<T>(dpi), r.N, int(r.C));
    };
    if (vec) go(gate_mix_backward_kernel<T, kVec<T>>);
    else go(gate_mix_backward_kernel<T, 1>);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void gate_head_forward(const TensorView& h, const TensorView& w2, const TensorView& b2, const TensorView& pi,
                       const TensorView& logit) {
  const char* what = "gate_head_forward";
  const GateRows r = check_gate_head_forward(h, w2, b2, pi, logit, true);
  if (r.N == 0) return;
  dispatch_float(h.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    // C == 0 still runs: each logit is then b2.
    const bool vec = r.C % kVec<T> == 0 && aligned_or_null(h) && aligned_or_null(w2);
    auto go = [&](auto kernel) {
      kernel<<<row_grid(r.N), 32 * kWarps, 0, stream()>>>(dptr<T>(h), dptr<T>(w2), dptr<T>(b2), dptr<T>(pi),
                                                          ptr_or_null<Acc<T>>(logit), r.N, int(r.C));
    };
    if (vec) go(gate_head_forward_kernel<T, kVec<T>>);
    else go(gate_head_forward_kernel<T, 1>);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void gate_head_backward(const TensorView& h, const TensorView& w2, const TensorView& logit, const TensorView& dpi,
                        const TensorView& dh, const TensorView& dw2, const TensorView& db2) {
  const char* what = "gate_head_backward";
  const GateRows r = check_gate_head_backward(h, w2, logit, dpi, dh, dw2, db2, true);
  const bool sums = dw2.defined() || db2.defined();
  if (!sums && (!dh.defined() || r.N * r.C == 0)) return;
  dispatch_float(h.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const bool vec = r.C % kVec<T> == 0 && aligned_or_null(h) && aligned_or_null(w2) && aligned_or_null(dh);
    auto go = [&](auto kernel, int vw) {
      // Enough (tile, chunk) blocks to fill the GPU; N == 0 still gives one chunk (zero sums).
      const int64_t tiles = std::max<int64_t>(1, ceil_div(r.C, 32 * vw));
      const int64_t chunk_len = reduction_chunk_len(std::max<int64_t>(r.N, 1), tiles, kWarps * kHeadRows);
      const int64_t chunks = std::max<int64_t>(1, ceil_div(r.N, chunk_len));
      KernelBuffer partial;
      if (sums)
        partial = KernelBuffer({chunks, r.C + 1}, h.dtype() == DType::F64 ? DType::F64 : DType::F32, h.device());
      kernel<<<dim3(unsigned(tiles), unsigned(chunks)), 32 * kWarps, 0, stream()>>>(
          dptr<T>(h), dptr<T>(w2), dptr<A>(logit), dptr<T>(dpi), ptr_or_null<T>(dh), ptr_or_null<A>(partial), r.N,
          int(r.C), chunk_len);
      ARIA_CUDA_LAUNCH_CHECK();
      if (!sums) return;
      gate_head_finish_kernel<T><<<unsigned(ceil_div(r.C + 1, kFinX)), dim3(kFinX, kFinY), 0, stream()>>>(
          dptr<A>(partial), int(chunks), int(r.C), ptr_or_null<T>(dw2), ptr_or_null<T>(db2));
      ARIA_CUDA_LAUNCH_CHECK();
    };
    if (vec) go(gate_head_backward_kernel<T, kVec<T>>, kVec<T>);
    else go(gate_head_backward_kernel<T, 1>, 1);
  });
}

void spc_penalty_grad(const std::vector<TensorView>& grads, const std::vector<TensorView>& As,
                      const std::vector<TensorView>& ps, const std::vector<TensorView>& Bs, double lambda) {
  const char* what = "spc_penalty_grad";
  if (check_spc_penalty_grad(grads, As, ps, Bs, true) == 0) return;
  std::vector<SpcDev> dev;
  int64_t blocks = 0;
  for (size_t k = 0; k < grads.size(); ++k) {
    const int64_t n = grads[k].numel();
    if (n == 0) continue;
    const bool vec = aligned16(grads[k].raw_data()) && aligned16(As[k].raw_data()) && aligned16(ps[k].raw_data()) &&
                     aligned16(Bs[k].raw_data());
    dev.push_back({grads[k].raw_data(), As[k].raw_data(), ps[k].raw_data(), Bs[k].raw_data(), n, blocks, int(vec)});
    blocks += ceil_div(n, kSpcChunk);
  }
  ARIA_CHECK(blocks <= INT32_MAX, what, ": too many elements");
  const KernelBuffer buf = upload(dev, grads[0].device());
  if (grads[0].dtype() == DType::BF16 && As[0].dtype() == DType::F32) {  // float32 buffers (checked above)
    spc_penalty_grad_kernel<__nv_bfloat16, float><<<unsigned(blocks), kSpcBlock, 0, stream()>>>(
        static_cast<const SpcDev*>(buf.raw_data()), int(dev.size()), float(lambda));
    ARIA_CUDA_LAUNCH_CHECK();
    return;
  }
  dispatch_float(grads[0].dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    spc_penalty_grad_kernel<T><<<unsigned(blocks), kSpcBlock, 0, stream()>>>(
        static_cast<const SpcDev*>(buf.raw_data()), int(dev.size()), Acc<T>(lambda));
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
