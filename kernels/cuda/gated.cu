// CUDA kernels of ARIA's gated MLP mix and of the SPC penalty gradient. float32, float64 and
// bfloat16 storage; math in Acc<T> (fp32 for bfloat16), each bf16 result rounded once when stored.
//
// gate_mix: one warp per row [C] of the mix, so that the gate value pi[n] is read once per row and
// the backward's row sum dpi[n] = sum_c dout * (fast - slow) is a lane-private fp32 partial plus a
// warp butterfly: a fixed order, no atomics, no second pass. Each lane moves 16-byte packs and
// issues kUnroll of them per operand before using any (bandwidth-bound: keep loads in flight).
// spc_penalty_grad: a flat map over 16-byte packs.
#include "kernels/cuda/common.cuh"
#include "kernels/gated_check.h"

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

// grad[i] += lambda * (A[i] * p[i] - B[i]) over n elements: packs of VW, then the tail one per thread.
template <typename T, int VW>
__global__ void spc_penalty_grad_kernel(T* __restrict__ grad, const T* __restrict__ a, const T* __restrict__ x,
                                        const T* __restrict__ b, Acc<T> lambda, int64_t n) {
  using A = Acc<T>;
  const int64_t packs = n / VW;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = tid; i < packs; i += step) {
    A gv[VW], av[VW], xv[VW], bv[VW];
    load_pack<T, VW>(grad + i * VW, gv);
    load_pack<T, VW>(a + i * VW, av);
    load_pack<T, VW>(x + i * VW, xv);
    load_pack<T, VW>(b + i * VW, bv);
#pragma unroll
    for (int k = 0; k < VW; ++k) gv[k] += lambda * (av[k] * xv[k] - bv[k]);
    store_pack<T, VW>(grad + i * VW, gv);
  }
  for (int64_t i = packs * VW + tid; i < n; i += step)
    store(grad + i, load(grad + i) + lambda * (load(a + i) * load(x + i) - load(b + i)));
}

// ---- host side ----

// 16-byte aligned data, or an undefined (unused) operand.
bool aligned_or_null(const Tensor& t) { return !t.defined() || aligned16(t.raw_data()); }

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? dptr<T>(t) : nullptr;
}

unsigned row_grid(int64_t N) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(N, kWarps), int64_t(num_sms()) * 32)));
}

}  // namespace

void gate_mix_forward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& out) {
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

void gate_mix_backward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& dout,
                       const Tensor& dslow, const Tensor& dfast, const Tensor& dpi) {
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

void spc_penalty_grad(const Tensor& grad, const Tensor& A, const Tensor& p, const Tensor& B, double lambda) {
  const char* what = "spc_penalty_grad";
  const int64_t n = check_spc_penalty_grad(grad, A, p, B, true);
  if (n == 0) return;
  dispatch_float(grad.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    const bool vec = aligned_or_null(grad) && aligned_or_null(A) && aligned_or_null(p) && aligned_or_null(B);
    auto go = [&](auto kernel, int64_t work) {
      kernel<<<grid_for(work, 256), 256, 0, stream()>>>(dptr<T>(grad), dptr<T>(A), dptr<T>(p), dptr<T>(B),
                                                        Acc<T>(lambda), n);
    };
    if (vec) go(spc_penalty_grad_kernel<T, kVec<T>>, n / kVec<T> + n % kVec<T>);
    else go(spc_penalty_grad_kernel<T, 1>, n);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
