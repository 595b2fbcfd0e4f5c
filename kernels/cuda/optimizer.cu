// Optimizer and statistics kernels, float32 (sum_squares also reads float64).
// adamw_update: one launch for every parameter tensor. The per-tensor pointers and settings go to a
// small device array (one host->device copy per call, from the caching allocator); the grid is the
// concatenation of each tensor's chunks, and a block finds its tensor by binary search over the
// tensors' first block indices.
// sum_squares: per-block partial sums in double, then one block adds them in block order (no
// atomics: deterministic), and adds the total to out.
#include <vector>

#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int64_t kChunk = 16384;  // elements per block

struct AdamWDev {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  int64_t first_block;
  float lr, b1, b2, eps, wd, bc1, bc2, gscale;
};

template <typename Item>
__device__ __forceinline__ int find_item(const Item* items, int n_items, int64_t blk) {
  int lo = 0, hi = n_items - 1;  // largest i with items[i].first_block <= blk
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (items[mid].first_block <= blk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__global__ void adamw_kernel(const AdamWDev* __restrict__ items, int n_items) {
  __shared__ AdamWDev it;
  if (threadIdx.x == 0) it = items[find_item(items, n_items, blockIdx.x)];
  __syncthreads();
  const int64_t start = (int64_t(blockIdx.x) - it.first_block) * kChunk;
  const int64_t end = min(it.n, start + kChunk);
  const float inv_bc1 = 1.f / it.bc1, inv_bc2 = 1.f / it.bc2;
  for (int64_t i = start + threadIdx.x; i < end; i += kBlock) {
    const float g = it.g[i] * it.gscale;
    const float m = it.b1 * it.m[i] + (1.f - it.b1) * g;
    const float v = it.b2 * it.v[i] + (1.f - it.b2) * g * g;
    it.m[i] = m;
    it.v[i] = v;
    const float p = it.p[i];
    it.p[i] = p - it.lr * ((m * inv_bc1) / (sqrtf(v * inv_bc2) + it.eps) + it.wd * p);
  }
}

struct SumSqDev {
  const void* p;
  int64_t n;
  int64_t first_block;
  int is_double;
};

__global__ void sum_squares_partial_kernel(const SumSqDev* __restrict__ items, int n_items,
                                           double* __restrict__ partial) {
  __shared__ SumSqDev it;
  __shared__ double scratch[32];
  if (threadIdx.x == 0) it = items[find_item(items, n_items, blockIdx.x)];
  __syncthreads();
  const int64_t start = (int64_t(blockIdx.x) - it.first_block) * kChunk;
  const int64_t end = min(it.n, start + kChunk);
  double acc = 0.0;
  if (it.is_double) {
    const double* x = static_cast<const double*>(it.p);
    for (int64_t i = start + threadIdx.x; i < end; i += kBlock) acc += x[i] * x[i];
  } else {
    const float* x = static_cast<const float*>(it.p);
    float facc = 0.f;  // a thread adds at most kChunk / kBlock = 64 squares: fine in float
    for (int64_t i = start + threadIdx.x; i < end; i += kBlock) facc += x[i] * x[i];
    acc = facc;
  }
  acc = block_sum(acc, scratch);
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

template <typename T>
__global__ void square_accumulate_kernel(T* __restrict__ acc, const T* __restrict__ g, int64_t n, int64_t S,
                                         T alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T s = 0;
    for (int64_t k = 0; k < S; ++k) {
      const T x = g[k * n + i];
      s += x * x;
    }
    acc[i] += alpha * s;
  }
}

// Copies a host array of items to a fresh device buffer (the caching allocator reuses it next call).
template <typename Item>
Tensor upload(const std::vector<Item>& items, Device dev) {
  const int64_t words = int64_t((items.size() * sizeof(Item) + 7) / 8);
  Tensor buf = Tensor::empty({words}, DType::I64, dev);
  ARIA_CUDA_CHECK(cudaMemcpyAsync(buf.raw_data(), items.data(), items.size() * sizeof(Item), cudaMemcpyHostToDevice,
                                  stream()));
  return buf;
}

void check_adamw_tensor(const Tensor& t, const Tensor& p, const char* what) {
  ARIA_CHECK(t.defined(), "adamw_update: ", what, " is undefined");
  ARIA_CHECK(t.dtype() == DType::F32 && t.is_contiguous() && t.device().is_cuda(), "adamw_update: ", what,
             " must be a contiguous float32 CUDA tensor, got ", t.str());
  ARIA_CHECK(t.numel() == p.numel(), "adamw_update: ", what, " ", t.str(), " does not match param ", p.str());
}

}  // namespace

void adamw_update(const std::vector<AdamWItem>& items) {
  std::vector<AdamWDev> dev;
  int64_t blocks = 0;
  Device device = Device::cuda(0);
  for (const AdamWItem& it : items) {
    check_adamw_tensor(it.param, it.param, "param");
    check_adamw_tensor(it.grad, it.param, "grad");
    check_adamw_tensor(it.m, it.param, "m");
    check_adamw_tensor(it.v, it.param, "v");
    const int64_t n = it.param.numel();
    if (n == 0) continue;
    device = it.param.device();
    dev.push_back({it.param.data<float>(), it.grad.data<float>(), it.m.data<float>(), it.v.data<float>(), n, blocks,
                   it.lr, it.beta1, it.beta2, it.eps, it.weight_decay, it.bias_correction1, it.bias_correction2,
                   it.grad_scale});
    blocks += ceil_div(n, kChunk);
  }
  if (dev.empty()) return;
  ARIA_CHECK(blocks <= INT32_MAX, "adamw_update: too many parameters");
  Tensor buf = upload(dev, device);
  adamw_kernel<<<unsigned(blocks), kBlock, 0, stream()>>>(static_cast<const AdamWDev*>(buf.raw_data()),
                                                          int(dev.size()));
  ARIA_CUDA_LAUNCH_CHECK();
}

void sum_squares(const std::vector<Tensor>& xs, const Tensor& out) {
  ARIA_CHECK(out.numel() == 1 && (out.dtype() == DType::F32 || out.dtype() == DType::F64) && out.device().is_cuda(),
             "sum_squares: out must be a float32 or float64 CUDA scalar, got ", out.str());
  std::vector<SumSqDev> dev;
  int64_t blocks = 0;
  for (const Tensor& x : xs) {
    ARIA_CHECK((x.dtype() == DType::F32 || x.dtype() == DType::F64) && x.is_contiguous() && x.device() == out.device(),
               "sum_squares: inputs must be contiguous float32/float64 tensors on ", out.device().str(), ", got ",
               x.str());
    const int64_t n = x.numel();
    if (n == 0) continue;
    dev.push_back({x.raw_data(), n, blocks, x.dtype() == DType::F64 ? 1 : 0});
    blocks += ceil_div(n, kChunk);
  }
  if (dev.empty()) return;
  ARIA_CHECK(blocks <= INT32_MAX, "sum_squares: too many elements");
  Tensor buf = upload(dev, out.device());
  Tensor partial = Tensor::empty({blocks}, DType::F64, out.device());
  sum_squares_partial_kernel<<<unsigned(blocks), kBlock, 0, stream()>>>(static_cast<const SumSqDev*>(buf.raw_data()),
                                                                        int(dev.size()), partial.data<double>());
  ARIA_CUDA_LAUNCH_CHECK();
  if (out.dtype() == DType::F32)
    sum_partials_into_kernel<float><<<1, 1024, 0, stream()>>>(partial.data<double>(), blocks, out.data<float>());
  else
    sum_partials_into_kernel<double><<<1, 1024, 0, stream()>>>(partial.data<double>(), blocks, out.data<double>());
  ARIA_CUDA_LAUNCH_CHECK();
}

void square_accumulate(const Tensor& acc, const Tensor& g, double alpha) {
  ARIA_CHECK(acc.dtype() == g.dtype() && (acc.dtype() == DType::F32 || acc.dtype() == DType::F64),
             "square_accumulate: float32 or float64 tensors of one dtype expected, got ", acc.str(), " and ", g.str());
  ARIA_CHECK(acc.is_contiguous() && g.is_contiguous(), "square_accumulate: tensors must be contiguous");
  check_same_device(acc, g, "square_accumulate");
  const int64_t n = acc.numel();
  if (n == 0) return;
  ARIA_CHECK(g.numel() % n == 0, "square_accumulate: g ", g.str(), " is not [S, ", shape_str(acc.shape()), "]");
  const int64_t S = g.numel() / n;
  if (acc.dtype() == DType::F32)
    square_accumulate_kernel<float><<<grid_for(n, 256), 256, 0, stream()>>>(acc.data<float>(), g.data<float>(), n, S,
                                                                            float(alpha));
  else
    square_accumulate_kernel<double><<<grid_for(n, 256), 256, 0, stream()>>>(acc.data<double>(), g.data<double>(), n,
                                                                             S, alpha);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
