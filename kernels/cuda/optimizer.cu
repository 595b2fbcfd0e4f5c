// Optimizer and statistics kernels. Moments, masters and statistics are float32 (sum_squares also
// reads float64); gradients and squared samples may be bfloat16 (read as fp32).
// adamw_update: one launch for every parameter tensor. The per-tensor pointers and settings go to a
// small device array (one host->device copy per call, from the caching allocator); the grid is the
// concatenation of each tensor's chunks, and a block finds its tensor by binary search over the
// tensors' first block indices. An item with a float32 master updates the master with the fp32 math
// and stores param = bf16(master); without one it updates a float32 param in place. Both run the
// same per-element function, so a master step equals the float32 step of the same values bit for bit.
// With a clipping source (AdamWItemView::clip_sumsq) thread 0 of each block reads the float64 sum of
// squares once, with its item, and the block clips with it or, when it is not finite, returns at once:
// the step is skipped everywhere, and the host never waits for the norm.
// sum_squares: per-block partial sums in double, then one block adds them in block order (no
// atomics: deterministic), and adds the total to out.
#include <vector>

#include "aria/kernels/adamw_clip.h"
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int64_t kChunk = 16384;  // elements per block
constexpr int kUnroll = 4;         // elements in flight per thread (all loads issued before the math)

struct AdamWDev {
  void* p;        // float32, or bfloat16 when master is set
  const void* g;  // float32 or bfloat16
  float* m;
  float* v;
  float* master;  // null: p is the float32 master itself
  int64_t n;
  int64_t first_block;
  float lr, b1, b2, eps, wd, bc1, bc2, gscale;
  float clip_max;  // AdamWItemView::clip_max_norm (used only with a clipping source)
  int p_bf16, g_bf16;
};

// One element's AdamW step on fp32 values: updates m, v and returns the new parameter.
__device__ __forceinline__ float adamw_step(const AdamWDev& it, float p, float g, float& m, float& v, float inv_bc1,
                                            float inv_bc2) {
  g *= it.gscale;
  m = it.b1 * m + (1.f - it.b1) * g;
  v = it.b2 * v + (1.f - it.b2) * g * g;
  return p - it.lr * ((m * inv_bc1) / (sqrtf(v * inv_bc2) + it.eps) + it.wd * p);
}

// Elements [start, end) of one item: TP the param storage, TG the grad storage, kMaster whether the
// fp32 value lives in `master` (param then only receives its rounded copy).
template <typename TP, typename TG, bool kMaster>
__device__ __forceinline__ void adamw_range(const AdamWDev& it, int64_t start, int64_t end) {
  TP* p = static_cast<TP*>(it.p);
  const TG* g = static_cast<const TG*>(it.g);
  const float inv_bc1 = 1.f / it.bc1, inv_bc2 = 1.f / it.bc2;
  for (int64_t base = start + threadIdx.x; base < end; base += int64_t(kBlock) * kUnroll) {
    float pv[kUnroll], gv[kUnroll], mv[kUnroll], vv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kBlock;
      if (i < end) {
        pv[u] = kMaster ? it.master[i] : load(p + i);
        gv[u] = load(g + i);
        mv[u] = it.m[i];
        vv[u] = it.v[i];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kBlock;
      if (i < end) {
        const float np = adamw_step(it, pv[u], gv[u], mv[u], vv[u], inv_bc1, inv_bc2);
        it.m[i] = mv[u];
        it.v[i] = vv[u];
        if (kMaster) it.master[i] = np;
        store(p + i, np);
      }
    }
  }
}

// clip_sumsq: null, or the float64 sum of squares of every gradient (read here, once per block).
__global__ void adamw_kernel(const AdamWDev* __restrict__ items, int n_items, const double* __restrict__ clip_sumsq) {
  __shared__ AdamWDev it;
  __shared__ bool skip;
  if (threadIdx.x == 0) {
    it = items[find_item(items, n_items, blockIdx.x)];
    skip = false;
    if (clip_sumsq) {
      const double norm = sqrt(*clip_sumsq);
      skip = !isfinite(norm);
      if (!skip) it.gscale = clipped_grad_scale(it.gscale, norm, it.clip_max);
    }
  }
  __syncthreads();
  if (skip) return;  // non-finite gradient norm: nothing of this call is updated
  const int64_t start = (int64_t(blockIdx.x) - it.first_block) * kChunk;
  const int64_t end = min(it.n, start + kChunk);
  // The storage combination is uniform over the block (one item per block): no divergence.
  using bf16 = __nv_bfloat16;
  if (it.master) {
    if (it.p_bf16) {
      if (it.g_bf16) adamw_range<bf16, bf16, true>(it, start, end);
      else adamw_range<bf16, float, true>(it, start, end);
    } else {
      if (it.g_bf16) adamw_range<float, bf16, true>(it, start, end);
      else adamw_range<float, float, true>(it, start, end);
    }
  } else {
    if (it.g_bf16) adamw_range<float, bf16, false>(it, start, end);
    else adamw_range<float, float, false>(it, start, end);
  }
}

struct SumSqDev {
  const void* p;
  int64_t n;
  int64_t first_block;
  int dtype;  // 0 float32, 1 float64, 2 bfloat16
};

// Sum of squares of x[start, end) by one block, in double (each thread adds at most kChunk / kBlock
// = 64 squares in Acc<T> first: fine in float).
template <typename T>
__device__ __forceinline__ double block_squares(const T* x, int64_t start, int64_t end, double* scratch) {
  Acc<T> a = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += kBlock) {
    const Acc<T> v = load(x + i);
    a += v * v;
  }
  return block_sum(double(a), scratch);
}

__global__ void sum_squares_partial_kernel(const SumSqDev* __restrict__ items, int n_items,
                                           double* __restrict__ partial) {
  __shared__ SumSqDev it;
  __shared__ double scratch[32];
  if (threadIdx.x == 0) it = items[find_item(items, n_items, blockIdx.x)];
  __syncthreads();
  const int64_t start = (int64_t(blockIdx.x) - it.first_block) * kChunk;
  const int64_t end = min(it.n, start + kChunk);
  double acc;
  if (it.dtype == 1) acc = block_squares(static_cast<const double*>(it.p), start, end, scratch);
  else if (it.dtype == 2) acc = block_squares(static_cast<const __nv_bfloat16*>(it.p), start, end, scratch);
  else acc = block_squares(static_cast<const float*>(it.p), start, end, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <typename T>
__global__ void sum_partials_into_kernel(const double* __restrict__ partial, int64_t n, T* __restrict__ out) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[0] = T(double(out[0]) + acc);
}

// acc[i] += alpha * sum_k g[k, i]^2 with TA the accumulator type (float or double) and TG the
// sample storage (TA, or bfloat16 with a float accumulator).
template <typename TA, typename TG>
__global__ void square_accumulate_kernel(TA* __restrict__ acc, const TG* __restrict__ g, int64_t n, int64_t S,
                                         TA alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    TA s = 0;
    for (int64_t k = 0; k < S; ++k) {
      const TA x = TA(load(g + k * n + i));
      s += x * x;
    }
    acc[i] += alpha * s;
  }
}

// t: defined, contiguous, on `dev`, param's element count, and one of the allowed dtypes.
void check_adamw_tensor(const TensorView& t, const TensorView& p, Device dev, std::initializer_list<DType> dtypes,
                        const char* what) {
  ARIA_CHECK(t.defined(), "adamw_update: ", what, " is undefined");
  bool ok = false;
  for (DType d : dtypes) ok = ok || t.dtype() == d;
  ARIA_CHECK(ok && t.is_contiguous() && t.device().is_cuda() && t.device() == dev, "adamw_update: ", what,
             " must be a contiguous ", dtypes.size() == 1 ? "float32" : "float32 or bfloat16", " tensor on ",
             dev.str(), ", got ", t.str());
  ARIA_CHECK(t.numel() == p.numel(), "adamw_update: ", what, " ", t.str(), " does not match param ", p.str());
}

}  // namespace

void adamw_update(const std::vector<AdamWItemView>& items) {
  std::vector<AdamWDev> dev;
  int64_t blocks = 0;
  Device device = Device::cuda(0);
  bool first = true;
  for (const AdamWItemView& it : items) {
    ARIA_CHECK(it.param.defined(), "adamw_update: param is undefined");
    if (first) device = it.param.device();
    first = false;
    const bool master = it.master.defined();
    // Without a master the param is the float32 value itself; with one it is its (bf16) copy.
    if (master) {
      check_adamw_tensor(it.param, it.param, device, {DType::F32, DType::BF16}, "param");
      check_adamw_tensor(it.master, it.param, device, {DType::F32}, "master");
    } else {
      check_adamw_tensor(it.param, it.param, device, {DType::F32}, "param");
    }
    check_adamw_tensor(it.grad, it.param, device, {DType::F32, DType::BF16}, "grad");
    check_adamw_tensor(it.m, it.param, device, {DType::F32}, "m");
    check_adamw_tensor(it.v, it.param, device, {DType::F32}, "v");
    const int64_t n = it.param.numel();
    if (n == 0) continue;
    AdamWDev d{};
    d.p = it.param.raw_data();
    d.g = it.grad.raw_data();
    d.m = it.m.data<float>();
    d.v = it.v.data<float>();
    d.master = master ? it.master.data<float>() : nullptr;
    d.n = n;
    d.first_block = blocks;
    d.lr = it.lr;
    d.b1 = it.beta1;
    d.b2 = it.beta2;
    d.eps = it.eps;
    d.wd = it.weight_decay;
    d.bc1 = it.bias_correction1;
    d.bc2 = it.bias_correction2;
    d.gscale = it.grad_scale;
    d.clip_max = it.clip_max_norm;
    d.p_bf16 = it.param.dtype() == DType::BF16;
    d.g_bf16 = it.grad.dtype() == DType::BF16;
    dev.push_back(d);
    blocks += ceil_div(n, kChunk);
  }
  const TensorView clip = check_adamw_clip(items, true);
  if (dev.empty()) return;
  ARIA_CHECK(blocks <= INT32_MAX, "adamw_update: too many parameters");
  KernelBuffer buf = upload(dev, device);
  adamw_kernel<<<unsigned(blocks), kBlock, 0, stream()>>>(static_cast<const AdamWDev*>(buf.raw_data()),
                                                          int(dev.size()),
                                                          clip.defined() ? clip.data<double>() : nullptr);
  ARIA_CUDA_LAUNCH_CHECK();
}

void sum_squares(const std::vector<TensorView>& xs, const TensorView& out) {
  ARIA_CHECK(out.numel() == 1 && (out.dtype() == DType::F32 || out.dtype() == DType::F64) && out.device().is_cuda(),
             "sum_squares: out must be a float32 or float64 CUDA scalar, got ", out.str());
  std::vector<SumSqDev> dev;
  int64_t blocks = 0;
  for (const TensorView& x : xs) {
    const DType d = x.dtype();
    ARIA_CHECK((d == DType::F32 || d == DType::F64 || d == DType::BF16) && x.is_contiguous() &&
                   x.device() == out.device(),
               "sum_squares: inputs must be contiguous float32/float64/bfloat16 tensors on ", out.device().str(),
               ", got ", x.str());
    const int64_t n = x.numel();
    if (n == 0) continue;
    dev.push_back({x.raw_data(), n, blocks, d == DType::F64 ? 1 : d == DType::BF16 ? 2 : 0});
    blocks += ceil_div(n, kChunk);
  }
  if (dev.empty()) return;
  ARIA_CHECK(blocks <= INT32_MAX, "sum_squares: too many elements");
  KernelBuffer buf = upload(dev, out.device());
  KernelBuffer partial({blocks}, DType::F64, out.device());
  sum_squares_partial_kernel<<<unsigned(blocks), kBlock, 0, stream()>>>(static_cast<const SumSqDev*>(buf.raw_data()),
                                                                        int(dev.size()), partial.data<double>());
  ARIA_CUDA_LAUNCH_CHECK();
  if (out.dtype() == DType::F32)
    sum_partials_into_kernel<float><<<1, 1024, 0, stream()>>>(partial.data<double>(), blocks, out.data<float>());
  else
    sum_partials_into_kernel<double><<<1, 1024, 0, stream()>>>(partial.data<double>(), blocks, out.data<double>());
  ARIA_CUDA_LAUNCH_CHECK();
}

void square_accumulate(const TensorView& acc, const TensorView& g, double alpha) {
  const bool same = acc.dtype() == g.dtype() && (acc.dtype() == DType::F32 || acc.dtype() == DType::F64);
  const bool bf16_into_f32 = acc.dtype() == DType::F32 && g.dtype() == DType::BF16;
  ARIA_CHECK(same || bf16_into_f32,
             "square_accumulate: float32 or float64 tensors of one dtype (or bfloat16 g into a float32 acc) "
             "expected, got ",
             acc.str(), " and ", g.str());
  ARIA_CHECK(acc.is_contiguous() && g.is_contiguous(), "square_accumulate: tensors must be contiguous");
  check_same_device(acc, g, "square_accumulate");
  const int64_t n = acc.numel();
  if (n == 0) return;
  ARIA_CHECK(g.numel() % n == 0, "square_accumulate: g ", g.str(), " is not [S, ", shape_str(acc.shape()), "]");
  const int64_t S = g.numel() / n;
  const unsigned grid = grid_for(n, 256);
  if (bf16_into_f32)
    square_accumulate_kernel<float, __nv_bfloat16><<<grid, 256, 0, stream()>>>(
        acc.data<float>(), static_cast<const __nv_bfloat16*>(g.raw_data()), n, S, float(alpha));
  else if (acc.dtype() == DType::F32)
    square_accumulate_kernel<float, float><<<grid, 256, 0, stream()>>>(acc.data<float>(), g.data<float>(), n, S,
                                                                       float(alpha));
  else
    square_accumulate_kernel<double, double><<<grid, 256, 0, stream()>>>(acc.data<double>(), g.data<double>(), n, S,
                                                                         alpha);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
