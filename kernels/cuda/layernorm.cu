// LayerNorm over the last dimension, float32 statistics.
// Forward: one warp per row (mean, then the variance around it, then the output; the row is re-read
// from L1/L2). Backward: dx one warp per row; dw/db as a column reduction in fixed row chunks whose
// partial sums a last kernel adds in chunk order (no float atomics: deterministic).
#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

__global__ void layernorm_forward_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ y,
                                         float* __restrict__ mean, float* __restrict__ rstd, int64_t N, int C,
                                         float eps) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const float* xr = x + row * C;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) s += xr[c];
  const float m = warp_sum(s) / float(C);
  float v = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float d = xr[c] - m;
    v += d * d;
  }
  const float rs = rsqrtf(warp_sum(v) / float(C) + eps);
  float* yr = y + row * C;
  for (int c = lane; c < C; c += 32) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = rs;
  }
}

__global__ void layernorm_dx_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                    const float* __restrict__ mean, const float* __restrict__ rstd,
                                    const float* __restrict__ dy, float* __restrict__ dx, int64_t N, int C) {
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const float* xr = x + row * C;
  const float* dyr = dy + row * C;
  const float m = mean[row], rs = rstd[row];
  float s1 = 0.f, s2 = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float g = dyr[c] * w[c];
    s1 += g;
    s2 += g * (xr[c] - m) * rs;
  }
  s1 = warp_sum(s1) / float(C);
  s2 = warp_sum(s2) / float(C);
  float* dxr = dx + row * C;
  for (int c = lane; c < C; c += 32) {
    const float xhat = (xr[c] - m) * rs;
    dxr[c] = rs * (dyr[c] * w[c] - s1 - xhat * s2);
  }
}

constexpr int kColX = 32, kColY = 8;

// grid (ceil(C/32), nchunks); rows [chunk*chunk_len, ...) of columns blockIdx.x*32 + threadIdx.x.
// With one chunk it adds straight into dw/db, else it writes partials [nchunks, C] for each.
__global__ void layernorm_dwdb_kernel(const float* __restrict__ x, const float* __restrict__ mean,
                                      const float* __restrict__ rstd, const float* __restrict__ dy,
                                      float* __restrict__ dw, float* __restrict__ db, float* __restrict__ pw,
                                      float* __restrict__ pb, int64_t N, int C, int64_t chunk_len, int nchunks) {
  __shared__ float tw[kColY][kColX + 1], tb[kColY][kColX + 1];
  const int c = blockIdx.x * kColX + threadIdx.x;
  const int64_t r0 = blockIdx.y * chunk_len;
  const int64_t r1 = min(N, r0 + chunk_len);
  float aw = 0.f, ab = 0.f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) {
      const float g = dy[r * C + c];
      aw += g * (x[r * C + c] - mean[r]) * rstd[r];
      ab += g;
    }
  }
  tw[threadIdx.y][threadIdx.x] = aw;
  tb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float sw = tw[0][threadIdx.x], sb = tb[0][threadIdx.x];
    for (int j = 1; j < kColY; ++j) {
      sw += tw[j][threadIdx.x];
      sb += tb[j][threadIdx.x];
    }
    if (nchunks == 1) {
      if (dw) dw[c] += sw;
      if (db) db[c] += sb;
    } else {
      pw[blockIdx.y * int64_t(C) + c] = sw;
      pb[blockIdx.y * int64_t(C) + c] = sb;
    }
  }
}

__global__ void layernorm_dwdb_finish_kernel(const float* __restrict__ pw, const float* __restrict__ pb,
                                             float* __restrict__ dw, float* __restrict__ db, int C, int nchunks) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sw = 0.f, sb = 0.f;
  for (int k = 0; k < nchunks; ++k) {
    sw += pw[int64_t(k) * C + c];
    sb += pb[int64_t(k) * C + c];
  }
  if (dw) dw[c] += sw;
  if (db) db[c] += sb;
}

void check_f32_contig(const Tensor& t, const char* what) {
  ARIA_CHECK(t.dtype() == DType::F32, what, ": CUDA supports float32 only, got ", t.str());
  ARIA_CHECK(t.is_contiguous(), what, ": tensors must be contiguous, got ", t.str());
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const Tensor& mean,
                       const Tensor& rstd, double eps) {
  for (const Tensor* t : {&x, &w, &b, &y, &mean, &rstd}) check_f32_contig(*t, "layernorm_forward");
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  ARIA_CHECK(w.numel() == C && b.numel() == C && y.numel() == x.numel() && mean.numel() == N && rstd.numel() == N,
             "layernorm_forward: shapes do not agree: x ", x.str(), ", w ", w.str(), ", b ", b.str());
  ARIA_CHECK(C < INT32_MAX, "layernorm_forward: row too long");
  if (N == 0) return;
  layernorm_forward_kernel<<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
      x.data<float>(), w.data<float>(), b.data<float>(), y.data<float>(), mean.data<float>(), rstd.data<float>(), N,
      int(C), float(eps));
  ARIA_CUDA_LAUNCH_CHECK();
}

void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                        const Tensor& dx, const Tensor& dw, const Tensor& db) {
  for (const Tensor* t : {&x, &w, &mean, &rstd, &dy}) check_f32_contig(*t, "layernorm_backward");
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  ARIA_CHECK(w.numel() == C && dy.numel() == x.numel() && mean.numel() == N && rstd.numel() == N,
             "layernorm_backward: shapes do not agree: x ", x.str(), ", w ", w.str(), ", dy ", dy.str());
  ARIA_CHECK(C < INT32_MAX, "layernorm_backward: row too long");
  if (N == 0) return;
  if (dx.defined()) {
    check_f32_contig(dx, "layernorm_backward");
    ARIA_CHECK(dx.numel() == x.numel(), "layernorm_backward: dx ", dx.str(), " vs x ", x.str());
    layernorm_dx_kernel<<<unsigned(ceil_div(N, kRowsPerBlock)), 32 * kRowsPerBlock, 0, stream()>>>(
        x.data<float>(), w.data<float>(), mean.data<float>(), rstd.data<float>(), dy.data<float>(), dx.data<float>(),
        N, int(C));
    ARIA_CUDA_LAUNCH_CHECK();
  }
  if (!dw.defined() && !db.defined()) return;
  for (const Tensor* t : {&dw, &db}) {
    if (!t->defined()) continue;
    check_f32_contig(*t, "layernorm_backward");
    ARIA_CHECK(t->numel() == C, "layernorm_backward: ", t->str(), " is not [", C, "]");
  }
  float* pdw = dw.defined() ? dw.data<float>() : nullptr;
  float* pdb = db.defined() ? db.data<float>() : nullptr;
  const int64_t bx = ceil_div(C, kColX);
  const int64_t chunk_len = reduction_chunk_len(N, bx, 64);
  const int64_t nchunks = ceil_div(N, chunk_len);
  Tensor partial;
  float *pw = nullptr, *pb = nullptr;
  if (nchunks > 1) {
    partial = Tensor::empty({2, nchunks, C}, DType::F32, x.device());
    pw = partial.data<float>();
    pb = pw + nchunks * C;
  }
  layernorm_dwdb_kernel<<<dim3(unsigned(bx), unsigned(nchunks)), dim3(kColX, kColY), 0, stream()>>>(
      x.data<float>(), mean.data<float>(), rstd.data<float>(), dy.data<float>(), pdw, pdb, pw, pb, N, int(C),
      chunk_len, int(nchunks));
  ARIA_CUDA_LAUNCH_CHECK();
  if (nchunks > 1) {
    layernorm_dwdb_finish_kernel<<<unsigned(ceil_div(C, 256)), 256, 0, stream()>>>(pw, pb, pdw, pdb, int(C),
                                                                                   int(nchunks));
    ARIA_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace aria::cuda
