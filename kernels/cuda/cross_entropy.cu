// Cross-entropy over logits [N, V] (float32 or bfloat16; losses, lse and dlosses float32): one block
// per row, one online (max, sum) sweep; the softmax is never stored. Backward recomputes
// exp(logit - lse) in the sweep that writes dlogits. The fused classifier does both in one kernel:
// the online sweep, then a second sweep over the same row (still in L2: with blocks of 1024 threads
// at most two rows per SM are resident, about 26 MB of bf16 vocabulary rows on an H100) that
// overwrites the logits with softmax - onehot.
// On sm_90, rows of at most kStagedMaxBytes whose size is a multiple of 16 bytes (GPT-2's padded
// 50304-entry bf16 vocabulary: 100,608 bytes) take the staged form of the fused classifier instead:
// one bulk asynchronous copy lands the whole row in shared memory, both sweeps read it there, and the
// row crosses DRAM once in and once out, with no dependence on L2 keeping it between sweeps.
// masked_mean reduces the losses on the device in one block, in a fixed order.
// Rows are swept 16 bytes at a time where alignment allows (a row of 50257 bf16 logits starts at any
// even address: a few scalar head elements, then 16-byte packs, then a scalar tail).
// Targets outside [0, V) other than ignore_index give a NaN loss (the caller checks them on the host).
#include <type_traits>

#include "aria/kernels/cuda/bulk_copy.cuh"
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kMaxBlock = 1024;

// Elements of `row` before its first 16-byte boundary (when VW > 1), capped at V.
template <typename T, int VW>
__device__ __forceinline__ int64_t head_len(const T* row, int64_t V) {
  if (VW == 1) return 0;
  const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(row) & 15) / int64_t(sizeof(T));
  return min(V, mis ? VW - mis : int64_t(0));
}

// Calls f(i, x) for every element of the row (x in fp32), each i by exactly one thread of the block.
template <typename T, int VW, typename F>
__device__ __forceinline__ void for_row(const T* row, int64_t V, F&& f) {
  const int64_t head = head_len<T, VW>(row, V);
  for (int64_t i = threadIdx.x; i < head; i += blockDim.x) f(i, load(row + i));
  const int64_t npacks = VW == 1 ? 0 : (V - head) / VW;
  const Pack<T, VW>* packs = reinterpret_cast<const Pack<T, VW>*>(row + head);
  for (int64_t j = threadIdx.x; j < npacks; j += blockDim.x) {
    const Pack<T, VW> pk = packs[j];
#pragma unroll
    for (int k = 0; k < VW; ++k) f(head + j * VW + k, load(&pk.v[k]));
  }
  for (int64_t i = head + npacks * VW + threadIdx.x; i < V; i += blockDim.x) f(i, load(row + i));
}

// out[i] = f(i, in[i]) over the row. `out` may be `in` (in place); when it is not, both must have the
// same alignment modulo 16 (the caller picks VW = 1 otherwise).
template <typename T, int VW, typename F>
__device__ __forceinline__ void map_row(const T* in, T* out, int64_t V, F&& f) {
  const int64_t head = head_len<T, VW>(in, V);
  for (int64_t i = threadIdx.x; i < head; i += blockDim.x) store(out + i, f(i, load(in + i)));
  const int64_t npacks = VW == 1 ? 0 : (V - head) / VW;
  const Pack<T, VW>* src = reinterpret_cast<const Pack<T, VW>*>(in + head);
  Pack<T, VW>* dst = reinterpret_cast<Pack<T, VW>*>(out + head);
  for (int64_t j = threadIdx.x; j < npacks; j += blockDim.x) {
    const Pack<T, VW> pk = src[j];
    Pack<T, VW> o;
#pragma unroll
    for (int k = 0; k < VW; ++k) store(&o.v[k], f(head + j * VW + k, load(&pk.v[k])));
    dst[j] = o;
  }
  for (int64_t i = head + npacks * VW + threadIdx.x; i < V; i += blockDim.x) store(out + i, f(i, load(in + i)));
}

__device__ __forceinline__ float nan_f() { return __int_as_float(0x7fc00000); }

// The row's (max, sum of exp(x - max)), merged over the block; valid in every thread.
template <typename T, int VW>
__device__ __forceinline__ MaxSum row_maxsum(const T* x, int64_t V, MaxSum* scratch) {
  MaxSum ms{-INFINITY, 0.f};
  for_row<T, VW>(x, V, [&](int64_t, float v) { ms = maxsum_add(ms, v); });
  return block_maxsum(ms, scratch);
}

template <typename T, int VW>
__global__ void __launch_bounds__(kMaxBlock)
    cross_entropy_forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                                 float* __restrict__ losses, float* __restrict__ lse, int64_t V, int ignore_index) {
  __shared__ MaxSum scratch[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  const MaxSum ms = row_maxsum<T, VW>(x, V, scratch);
  if (threadIdx.x == 0) {
    const float l = ms.m + __logf(ms.s);
    lse[row] = l;
    const int t = targets[row];
    float loss;
    if (t == ignore_index) loss = 0.f;
    else if (t < 0 || t >= V) loss = nan_f();
    else loss = l - load(x + t);
    losses[row] = loss;
  }
}

template <typename T, int VW>
__global__ void __launch_bounds__(kMaxBlock)
    cross_entropy_backward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                                  const float* __restrict__ lse, const float* __restrict__ dlosses,
                                  T* __restrict__ dlogits, int64_t V, int ignore_index) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  T* dx = dlogits + row * V;
  const int t = targets[row];
  if (t == ignore_index) {
    map_row<T, VW>(x, dx, V, [](int64_t, float) { return 0.f; });
    return;
  }
  const float l = lse[row], g = dlosses[row];
  map_row<T, VW>(x, dx, V, [&](int64_t v, float xv) {
    const float p = __expf(xv - l);
    return g * (v == t ? p - 1.f : p);
  });
}

// The fused classifier: losses[row], then logits[row, :] = softmax - onehot in place. The loss reads
// the target logit in the rewriting sweep (by the one thread that owns it, before it overwrites it).
template <typename T, int VW>
__global__ void __launch_bounds__(kMaxBlock)
    cross_entropy_fused_kernel(T* __restrict__ logits, const int32_t* __restrict__ targets,
                               float* __restrict__ losses, int64_t V, int ignore_index) {
  __shared__ MaxSum scratch[32];
  const int64_t row = blockIdx.x;
  T* x = logits + row * V;
  const int t = targets[row];
  if (t == ignore_index) {
    map_row<T, VW>(x, x, V, [](int64_t, float) { return 0.f; });
    if (threadIdx.x == 0) losses[row] = 0.f;
    return;
  }
  const MaxSum ms = row_maxsum<T, VW>(x, V, scratch);
  const float l = ms.m + __logf(ms.s);
  if (threadIdx.x == 0 && (t < 0 || t >= V)) losses[row] = nan_f();
  map_row<T, VW>(x, x, V, [&](int64_t v, float xv) {
    const float p = __expf(xv - l);
    if (v != t) return p;
    losses[row] = l - xv;
    return p - 1.f;
  });
}

// The staged fused classifier: row `blockIdx.x` in shared memory (after a 16-byte slot for the
// barrier), V a multiple of VW = 16 / sizeof(T) and rows 16-byte aligned. The same sweeps, in the same
// order per thread, as cross_entropy_fused_kernel: the losses match it bit for bit.
constexpr int64_t kStagedMaxBytes = 112 * 1024;  // two rows per SM in the 227 KiB of an H100's shared memory

template <typename T>
__global__ void __launch_bounds__(kMaxBlock)
    cross_entropy_fused_staged_kernel(T* __restrict__ logits, const int32_t* __restrict__ targets,
                                      float* __restrict__ losses, int64_t V, int ignore_index) {
  constexpr int VW = 16 / int(sizeof(T));
  extern __shared__ __align__(16) unsigned char ce_smem[];
  __shared__ MaxSum scratch[32];
  uint64_t* bar = reinterpret_cast<uint64_t*>(ce_smem);
  const Pack<T, VW>* srow = reinterpret_cast<const Pack<T, VW>*>(ce_smem + 16);
  const int64_t row = blockIdx.x, npacks = V / VW;
  Pack<T, VW>* x = reinterpret_cast<Pack<T, VW>*>(logits + row * V);
  const int t = targets[row];
  if (t == ignore_index) {
    Pack<T, VW> z;
#pragma unroll
    for (int k = 0; k < VW; ++k) store(&z.v[k], 0.f);
    for (int64_t j = threadIdx.x; j < npacks; j += blockDim.x) x[j] = z;
    if (threadIdx.x == 0) losses[row] = 0.f;
    return;
  }
  if (threadIdx.x == 0) {
    mbarrier_init(bar);
    mbarrier_arrive_expect_bytes(bar, uint32_t(V * int64_t(sizeof(T))));
    bulk_copy_to_shared(ce_smem + 16, x, uint32_t(V * int64_t(sizeof(T))), bar);
  }
  __syncthreads();  // the barrier is initialised before anyone waits on it
  mbarrier_wait(bar, 0);
  MaxSum ms{-INFINITY, 0.f};
  for (int64_t j = threadIdx.x; j < npacks; j += blockDim.x) {
    const Pack<T, VW> pk = srow[j];
#pragma unroll
    for (int k = 0; k < VW; ++k) ms = maxsum_add(ms, load(&pk.v[k]));
  }
  ms = block_maxsum(ms, scratch);
  const float l = ms.m + __logf(ms.s);
  if (threadIdx.x == 0 && (t < 0 || t >= V)) losses[row] = nan_f();
  for (int64_t j = threadIdx.x; j < npacks; j += blockDim.x) {
    const Pack<T, VW> pk = srow[j];
    Pack<T, VW> o;
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      const float xv = load(&pk.v[k]);
      float p = __expf(xv - l);
      if (j * VW + k == t) {
        losses[row] = l - xv;
        p -= 1.f;
      }
      store(&o.v[k], p);
    }
    x[j] = o;
  }
}

// out[0] = sum(losses) / max(1, count), count[0] = #(targets != ignore_index). One block; each
// thread adds a fixed strided subset in double, then a fixed-order block sum: deterministic.
template <typename T, typename TO>
__global__ void masked_mean_kernel(const T* __restrict__ losses, const int32_t* __restrict__ targets, int64_t N,
                                   int ignore_index, TO* __restrict__ out, TO* __restrict__ count) {
  __shared__ double scratch[32];
  double s = 0, c = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    s += double(load(losses + i));
    c += targets[i] != ignore_index ? 1.0 : 0.0;
  }
  s = block_sum(s, scratch);
  c = block_sum(c, scratch);
  if (threadIdx.x == 0) {
    out[0] = TO(s / (c > 1.0 ? c : 1.0));
    count[0] = TO(c);
  }
}

// ---- host side ----
struct Rows {
  int64_t N, V;
};

Rows check_logits(const TensorView& logits, const TensorView& targets, const char* what) {
  ARIA_CHECK(logits.defined() && targets.defined(), what, ": logits and targets must be defined");
  ARIA_CHECK(logits.dtype() == DType::F32 || logits.dtype() == DType::BF16, what,
             ": CUDA needs float32 or bfloat16 logits, got ", logits.str());
  ARIA_CHECK(targets.dtype() == DType::I32, what, ": targets must be int32, got ", targets.str());
  ARIA_CHECK(logits.is_contiguous() && targets.is_contiguous(), what, ": tensors must be contiguous");
  ARIA_CHECK(logits.device().is_cuda() && targets.device() == logits.device(), what,
             ": logits and targets must be on one CUDA device");
  ARIA_CHECK(logits.dim() >= 1, what, ": logits need a class dimension");
  const int64_t V = logits.size(-1), N = V ? logits.numel() / V : 0;
  ARIA_CHECK(targets.numel() == N, what, ": targets ", targets.str(), " do not match logits ", logits.str());
  ARIA_CHECK(V > 0 || N == 0, what, ": no classes");
  ARIA_CHECK(N <= INT32_MAX, what, ": too many rows");
  return {N, V};
}

void check_stat(const TensorView& t, int64_t N, const TensorView& logits, const char* what, const char* name) {
  ARIA_CHECK(t.defined() && t.dtype() == DType::F32 && t.is_contiguous() && t.numel() == N &&
                 t.device() == logits.device(),
             what, ": ", name, " must be a contiguous float32 [", N, "] on ", logits.device().str(), ", got ",
             t.defined() ? t.str() : "undefined");
}

// Threads per row: about four 16-byte packs per thread, a multiple of 32 in [32, 1024].
template <typename T>
int block_for(int64_t V) {
  const int64_t want = ceil_div(V, int64_t(kVec<T>) * 4);
  return int(std::min<int64_t>(kMaxBlock, std::max<int64_t>(32, ceil_div(want, 32) * 32)));
}

// Calls launch(kernel_for<T, VW>) with VW the pack width when every row pointer of every operand has
// the same alignment modulo 16 (rows of V elements apart), else 1.
template <typename T, typename L>
void with_width(bool same_alignment, L&& launch) {
  if (same_alignment) launch(std::integral_constant<int, kVec<T>>{});
  else launch(std::integral_constant<int, 1>{});
}

// Calls launch(T{}, width) for the logits' element type T (float32 or bfloat16: float64 logits are
// the CPU's business) and the pack width that with_width picks.
template <typename L>
void dispatch_logits(DType dtype, const char* what, bool same_alignment, L&& launch) {
  dispatch_float(dtype, what, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      ARIA_FAIL(what, ": float64 logits are not supported on CUDA");
    } else {
      with_width<T>(same_alignment, [&](auto vw) { launch(tag, vw); });
    }
  });
}

// Whether the staged fused classifier can take these logits: non-empty rows of whole 16-byte packs
// that fit twice in an SM's shared memory, a 16-byte aligned start, and the kernel compiled for sm_90
// (asked once per type).
template <typename T>
bool staged_fits(const TensorView& logits, int64_t row_bytes) {
  static const bool compiled = [] {
    const auto k = cross_entropy_fused_staged_kernel<T>;
    if (!bulk_copy_compiled(k)) return false;
    ARIA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(16 + kStagedMaxBytes)));
    ARIA_CUDA_CHECK(
        cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)));
    return true;
  }();
  return compiled && row_bytes > 0 && row_bytes % 16 == 0 && row_bytes <= kStagedMaxBytes &&
         reinterpret_cast<uintptr_t>(logits.raw_data()) % 16 == 0;
}

}  // namespace

void cross_entropy_forward(const TensorView& logits, const TensorView& targets, const TensorView& losses,
                           const TensorView& lse, int ignore_index) {
  const char* what = "cross_entropy_forward";
  const Rows r = check_logits(logits, targets, what);
  check_stat(losses, r.N, logits, what, "losses");
  check_stat(lse, r.N, logits, what, "lse");
  if (r.N == 0) return;
  dispatch_logits(logits.dtype(), what, true, [&](auto tag, auto vw) {
    using T = decltype(tag);
    cross_entropy_forward_kernel<T, decltype(vw)::value><<<unsigned(r.N), block_for<T>(r.V), 0, stream()>>>(
        static_cast<const T*>(logits.raw_data()), targets.data<int32_t>(), losses.data<float>(), lse.data<float>(),
        r.V, ignore_index);
  });
  ARIA_CUDA_LAUNCH_CHECK();
}

void cross_entropy_backward(const TensorView& logits, const TensorView& targets, const TensorView& lse,
                            const TensorView& dlosses, const TensorView& dlogits, int ignore_index) {
  const char* what = "cross_entropy_backward";
  const Rows r = check_logits(logits, targets, what);
  check_stat(lse, r.N, logits, what, "lse");
  check_stat(dlosses, r.N, logits, what, "dlosses");
  ARIA_CHECK(dlogits.defined() && dlogits.dtype() == logits.dtype() && dlogits.is_contiguous() &&
                 dlogits.numel() == logits.numel() && dlogits.device() == logits.device(),
             what, ": dlogits must be a contiguous tensor like logits ", logits.str(), ", got ",
             dlogits.defined() ? dlogits.str() : "undefined");
  if (r.N == 0) return;
  const bool same = reinterpret_cast<uintptr_t>(logits.raw_data()) % 16 ==
                    reinterpret_cast<uintptr_t>(dlogits.raw_data()) % 16;
  dispatch_logits(logits.dtype(), what, same, [&](auto tag, auto vw) {
    using T = decltype(tag);
    cross_entropy_backward_kernel<T, decltype(vw)::value><<<unsigned(r.N), block_for<T>(r.V), 0, stream()>>>(
        static_cast<const T*>(logits.raw_data()), targets.data<int32_t>(), lse.data<float>(), dlosses.data<float>(),
        static_cast<T*>(dlogits.raw_data()), r.V, ignore_index);
  });
  ARIA_CUDA_LAUNCH_CHECK();
}

void cross_entropy_fused(const TensorView& logits, const TensorView& targets, const TensorView& losses,
                         int ignore_index) {
  const char* what = "cross_entropy_fused";
  const Rows r = check_logits(logits, targets, what);
  check_stat(losses, r.N, logits, what, "losses");
  if (r.N == 0) return;
  dispatch_logits(logits.dtype(), what, true, [&](auto tag, auto vw) {
    using T = decltype(tag);
    const int64_t row_bytes = r.V * int64_t(sizeof(T));
    if (staged_fits<T>(logits, row_bytes)) {
      cross_entropy_fused_staged_kernel<T><<<unsigned(r.N), block_for<T>(r.V), size_t(16 + row_bytes), stream()>>>(
          static_cast<T*>(logits.raw_data()), targets.data<int32_t>(), losses.data<float>(), r.V, ignore_index);
      return;
    }
    cross_entropy_fused_kernel<T, decltype(vw)::value><<<unsigned(r.N), block_for<T>(r.V), 0, stream()>>>(
        static_cast<T*>(logits.raw_data()), targets.data<int32_t>(), losses.data<float>(), r.V, ignore_index);
  });
  ARIA_CUDA_LAUNCH_CHECK();
}

void masked_mean(const TensorView& losses, const TensorView& targets, const TensorView& out, const TensorView& count,
                 int ignore_index) {
  const char* what = "masked_mean";
  ARIA_CHECK(losses.defined() && targets.defined() && out.defined() && count.defined(), what,
             ": every tensor must be defined");
  ARIA_CHECK(losses.is_contiguous() && targets.is_contiguous() && targets.dtype() == DType::I32 &&
                 targets.numel() == losses.numel(),
             what, ": losses and int32 targets must be contiguous with one element per row, got ", losses.str(),
             " and ", targets.str());
  ARIA_CHECK(out.numel() == 1 && count.numel() == 1 && out.dtype() == count.dtype() &&
                 (out.dtype() == DType::F32 || out.dtype() == DType::F64),
             what, ": out and count must be float32 (or float64) scalars of one dtype, got ", out.str(), " and ",
             count.str());
  for (const TensorView* t : {&targets, &out, &count})
    ARIA_CHECK(t->device() == losses.device() && losses.device().is_cuda(), what, ": tensors must be on one CUDA device");
  dispatch_float(losses.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    const T* pl = static_cast<const T*>(losses.raw_data());
    if (out.dtype() == DType::F32)
      masked_mean_kernel<T, float><<<1, kMaxBlock, 0, stream()>>>(pl, targets.data<int32_t>(), losses.numel(),
                                                                  ignore_index, out.data<float>(), count.data<float>());
    else
      masked_mean_kernel<T, double><<<1, kMaxBlock, 0, stream()>>>(
          pl, targets.data<int32_t>(), losses.numel(), ignore_index, out.data<double>(), count.data<double>());
  });
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
