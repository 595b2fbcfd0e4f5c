// CUDA elementwise kernels: binary with broadcast strides, unary ops and their backward, sum_to
// (deterministic two-pass reduction), add_bias. float32 and float64.
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

#define ARIA_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

void check_float_dtype(const Tensor& t, const char* what) {
  ARIA_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, what, ": CUDA supports float32 and float64, got ",
             dtype_name(t.dtype()));
}

// ---- binary ------------------------------------------------------------------------------------

template <typename T>
__device__ __forceinline__ T apply_binary(int op, T a, T b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
  }
}

template <typename T>
__global__ void binary_kernel(int op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                              Indexer<3> ix, int64_t n, bool flat) {
  ARIA_GRID_STRIDE(i, n) {
    if (flat) {
      out[i] = apply_binary(op, a[i], b[i]);
    } else {
      int64_t off[3];
      ix.offsets(i, off);
      out[off[2]] = apply_binary(op, a[off[0]], b[off[1]]);
    }
  }
}

// ---- unary -------------------------------------------------------------------------------------

template <typename T> __device__ __forceinline__ T exp_t(T x);
template <> __device__ __forceinline__ float exp_t<float>(float x) { return __expf(x); }
template <> __device__ __forceinline__ double exp_t<double>(double x) { return exp(x); }
template <typename T> __device__ __forceinline__ T log_t(T x);
template <> __device__ __forceinline__ float log_t<float>(float x) { return __logf(x); }
template <> __device__ __forceinline__ double log_t<double>(double x) { return log(x); }

constexpr double kGeluK0 = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluK1 = 0.044715;

template <typename T>
__device__ __forceinline__ T apply_unary(int op, T x, T alpha, T beta) {
  switch (op) {
    case int(UnaryOp::Affine): return alpha * x + beta;
    case int(UnaryOp::Gelu): {
      const T u = T(kGeluK0) * (x + T(kGeluK1) * x * x * x);
      return T(0.5) * x * (T(1) + tanh_accurate(u));
    }
    case int(UnaryOp::Sigmoid): return T(1) / (T(1) + exp_t(-x));
    case int(UnaryOp::Relu): return x > T(0) ? x : T(0);
    case int(UnaryOp::Exp): return exp_t(x);
    case int(UnaryOp::Log): return log_t(x);
    case int(UnaryOp::Tanh): return tanh_accurate(x);
    default: return x * x;  // Square
  }
}

template <typename T>
__global__ void unary_kernel(int op, const T* __restrict__ x, T* __restrict__ y, T alpha, T beta, Indexer<2> ix,
                             int64_t n, bool flat) {
  ARIA_GRID_STRIDE(i, n) {
    if (flat) {
      y[i] = apply_unary(op, x[i], alpha, beta);
    } else {
      int64_t off[2];
      ix.offsets(i, off);
      y[off[1]] = apply_unary(op, x[off[0]], alpha, beta);
    }
  }
}

// d op(x) / dx, from x and/or y = op(x) (whichever the op needs; the other may be a copy).
template <typename T>
__device__ __forceinline__ T unary_derivative(int op, T x, T y) {
  switch (op) {
    case int(UnaryOp::Affine): return T(1);  // not reached: refused by unary_backward (as on the CPU)
    case int(UnaryOp::Gelu): {
      const T x2 = x * x;
      const T u = T(kGeluK0) * (x + T(kGeluK1) * x2 * x);
      const T t = tanh_accurate(u);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kGeluK0) * (T(1) + T(3 * kGeluK1) * x2);
    }
    case int(UnaryOp::Sigmoid): return y * (T(1) - y);
    case int(UnaryOp::Relu): return x > T(0) ? T(1) : T(0);
    case int(UnaryOp::Exp): return y;
    case int(UnaryOp::Log): return T(1) / x;
    case int(UnaryOp::Tanh): return T(1) - y * y;
    default: return T(2) * x;  // Square
  }
}

// dx = dy * op'(x) (alpha == 0: dx is never read) or dx += dy * op'(x) (alpha == 1), as on the CPU.
// Operands: 0 x, 1 y, 2 dy, 3 dx.
template <typename T>
__global__ void unary_backward_kernel(int op, const T* __restrict__ x, const T* __restrict__ y,
                                      const T* __restrict__ dy, T* __restrict__ dx, T alpha, Indexer<4> ix,
                                      int64_t n, bool flat) {
  ARIA_GRID_STRIDE(i, n) {
    int64_t off[4];
    if (flat) {
      off[0] = off[1] = off[2] = off[3] = i;
    } else {
      ix.offsets(i, off);
    }
    T g = dy[off[2]] * unary_derivative(op, x[off[0]], y[off[1]]);
    if (alpha != T(0)) g += alpha * dx[off[3]];
    dx[off[3]] = g;
  }
}

bool needs_x(int op) { return op != int(UnaryOp::Sigmoid) && op != int(UnaryOp::Exp) && op != int(UnaryOp::Tanh); }

template <typename T>
void launch_unary(int op, const Tensor& x, const Tensor& y, double alpha, double beta) {
  const Shape* st[2] = {&x.strides(), &y.strides()};
  Indexer<2> ix = make_indexer<2>(y.shape(), st, "unary");
  const int64_t n = y.numel();
  unary_kernel<T><<<grid_for(n, 256), 256, 0, stream()>>>(op, x.data<T>(), y.data<T>(), T(alpha), T(beta), ix, n,
                                                          indexer_is_flat(ix));
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void binary(int op, const Tensor& a, const Tensor& b, const Tensor& out) {
  ARIA_CHECK(op >= 0 && op <= 3, "binary: unknown op ", op);
  check_float_dtype(out, "binary");
  ARIA_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "binary: dtypes differ: ", a.str(), ", ", b.str(),
             ", ", out.str());
  check_same_shape(a, out, "binary");
  check_same_shape(b, out, "binary");
  check_same_device(a, out, "binary");
  check_same_device(b, out, "binary");
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape* st[3] = {&a.strides(), &b.strides(), &out.strides()};
  Indexer<3> ix = make_indexer<3>(out.shape(), st, "binary");
  const bool flat = indexer_is_flat(ix);
  if (out.dtype() == DType::F32)
    binary_kernel<float><<<grid_for(n, 256), 256, 0, stream()>>>(op, a.data<float>(), b.data<float>(),
                                                                 out.data<float>(), ix, n, flat);
  else
    binary_kernel<double><<<grid_for(n, 256), 256, 0, stream()>>>(op, a.data<double>(), b.data<double>(),
                                                                  out.data<double>(), ix, n, flat);
  ARIA_CUDA_LAUNCH_CHECK();
}

void unary(int op, const Tensor& x, const Tensor& y, double alpha, double beta) {
  ARIA_CHECK(op >= 0 && op <= int(UnaryOp::Square), "unary: unknown op ", op);
  check_float_dtype(y, "unary");
  ARIA_CHECK(x.dtype() == y.dtype(), "unary: dtypes differ: ", x.str(), " vs ", y.str());
  check_same_shape(x, y, "unary");
  check_same_device(x, y, "unary");
  if (y.numel() == 0) return;
  if (y.dtype() == DType::F32) launch_unary<float>(op, x, y, alpha, beta);
  else launch_unary<double>(op, x, y, alpha, beta);
}

void unary_backward(int op, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& dx, double alpha) {
  ARIA_CHECK(op >= 0 && op <= int(UnaryOp::Square), "unary_backward: unknown op ", op);
  ARIA_CHECK(op != int(UnaryOp::Affine),
             "unary_backward: Affine has no kernel backward (it is unary(Affine, dy, dx, alpha, 0))");
  ARIA_CHECK(alpha == 0 || alpha == 1, "unary_backward: alpha must be 0 (write) or 1 (accumulate), got ", alpha);
  check_float_dtype(dx, "unary_backward");
  // Either of x / y may be undefined when the op does not need it; the other stands in for it.
  ARIA_CHECK(x.defined() || !needs_x(op), "unary_backward: op ", op, " needs x");
  ARIA_CHECK(y.defined() || needs_x(op), "unary_backward: op ", op, " needs y");
  const Tensor& xx = x.defined() ? x : y;
  const Tensor& yy = y.defined() ? y : x;
  for (const Tensor* t : {&xx, &yy, &dy}) {
    ARIA_CHECK(t->dtype() == dx.dtype(), "unary_backward: dtypes differ: ", t->str(), " vs ", dx.str());
    check_same_shape(*t, dx, "unary_backward");
    check_same_device(*t, dx, "unary_backward");
  }
  const int64_t n = dx.numel();
  if (n == 0) return;
  const Shape* st[4] = {&xx.strides(), &yy.strides(), &dy.strides(), &dx.strides()};
  Indexer<4> ix = make_indexer<4>(dx.shape(), st, "unary_backward");
  const bool flat = indexer_is_flat(ix);
  if (dx.dtype() == DType::F32)
    unary_backward_kernel<float><<<grid_for(n, 256), 256, 0, stream()>>>(
        op, xx.data<float>(), yy.data<float>(), dy.data<float>(), dx.data<float>(), float(alpha), ix, n, flat);
  else
    unary_backward_kernel<double><<<grid_for(n, 256), 256, 0, stream()>>>(
        op, xx.data<double>(), yy.data<double>(), dy.data<double>(), dx.data<double>(), alpha, ix, n, flat);
  ARIA_CUDA_LAUNCH_CHECK();
}

// ---- sum_to ------------------------------------------------------------------------------------
// out[k] = sum_r x[kept(k) + reduced(r)]. Two layouts: "rows" when x's fastest dimension is reduced
// (a block reads a contiguous run), "columns" when it is kept (a warp reads 32 neighbouring outputs
// at once). Each block sums one chunk of r in a fixed order; with more than one chunk the partial
// sums go to a buffer that a second kernel adds up in chunk order. No atomics: deterministic.

namespace {

template <typename T>
__device__ __forceinline__ void write_sum(T s, int64_t k, int64_t chunk, int64_t M, int nchunks, T* partial, T* out,
                                          const Indexer<2>& kept) {
  if (nchunks == 1) {
    int64_t ko[2];
    kept.offsets(k, ko);
    out[ko[1]] = s;
  } else {
    partial[chunk * M + k] = s;
  }
}

template <typename T>
__global__ void sum_rows_kernel(const T* __restrict__ x, T* __restrict__ out, T* __restrict__ partial,
                                Indexer<2> kept, Indexer<1> red, int64_t M, int64_t R, int64_t chunk_len,
                                int nchunks) {
  __shared__ T scratch[32];
  const int64_t k = blockIdx.x;
  const int64_t chunk = blockIdx.y;
  int64_t ko[2];
  kept.offsets(k, ko);
  const T* xk = x + ko[0];
  const int64_t r0 = chunk * chunk_len;
  const int64_t r1 = min(R, r0 + chunk_len);
  T acc = 0;
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
    int64_t ro[1];
    red.offsets(r, ro);
    acc += xk[ro[0]];
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) write_sum(acc, k, chunk, M, nchunks, partial, out, kept);
}

constexpr int kColX = 32, kColY = 8;

template <typename T>
__global__ void sum_cols_kernel(const T* __restrict__ x, T* __restrict__ out, T* __restrict__ partial,
                                Indexer<2> kept, Indexer<1> red, int64_t M, int64_t R, int64_t chunk_len,
                                int nchunks) {
  __shared__ T tile[kColY][kColX + 1];
  const int64_t k = blockIdx.x * int64_t(kColX) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * chunk_len;
  const int64_t r1 = min(R, r0 + chunk_len);
  T acc = 0;
  if (k < M) {
    int64_t ko[2];
    kept.offsets(k, ko);
    const T* xk = x + ko[0];
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) {
      int64_t ro[1];
      red.offsets(r, ro);
      acc += xk[ro[0]];
    }
  }
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && k < M) {
    T s = tile[0][threadIdx.x];
    for (int j = 1; j < kColY; ++j) s += tile[j][threadIdx.x];
    write_sum(s, k, chunk, M, nchunks, partial, out, kept);
  }
}

template <typename T>
__global__ void sum_partials_kernel(const T* __restrict__ partial, T* __restrict__ out, Indexer<2> kept, int64_t M,
                                    int nchunks) {
  ARIA_GRID_STRIDE(k, M) {
    T s = partial[k];
    for (int c = 1; c < nchunks; ++c) s += partial[c * M + k];
    int64_t ko[2];
    kept.offsets(k, ko);
    out[ko[1]] = s;
  }
}

template <typename T>
void launch_sum_to(const Tensor& x, const Tensor& out) {
  const int nd = x.dim();
  Shape kshape, kxs, kos, rshape, rxs;
  for (int d = 0; d < nd; ++d) {
    const int64_t xs = x.shape()[d], os = out.shape()[d];
    ARIA_CHECK(os == xs || os == 1, "sum_to: cannot reduce ", x.str(), " to ", out.str());
    if (os == xs) {
      kshape.push_back(xs);
      kxs.push_back(x.strides()[d]);
      kos.push_back(out.strides()[d]);
    } else {
      rshape.push_back(xs);
      rxs.push_back(x.strides()[d]);
    }
  }
  const int64_t M = shape_numel(kshape), R = shape_numel(rshape);
  if (M == 0) return;
  const Shape* kst[2] = {&kxs, &kos};
  const Shape* rst[1] = {&rxs};
  Indexer<2> kept = make_indexer<2>(kshape, kst, "sum_to");
  Indexer<1> red = make_indexer<1>(rshape, rst, "sum_to");
  T* o = out.data<T>();
  if (R == 0) {  // empty sum: zeros
    Tensor zeros = Tensor::zeros({M}, out.dtype(), out.device());
    sum_partials_kernel<T><<<grid_for(M, 256), 256, 0, stream()>>>(zeros.data<T>(), o, kept, M, 1);
    ARIA_CUDA_LAUNCH_CHECK();
    return;
  }
  // Reduced fastest-moving in memory -> rows; else columns.
  const int64_t red_inner = red.nd ? red.strides[0][red.nd - 1] : INT64_MAX;
  const int64_t kept_inner = kept.nd ? kept.strides[0][kept.nd - 1] : INT64_MAX;
  const bool rows = red_inner < kept_inner;
  const int64_t bx = rows ? M : ceil_div(M, kColX);
  const int64_t chunk_len = reduction_chunk_len(R, bx, rows ? 2048 : 64);
  const int64_t nchunks = ceil_div(R, chunk_len);
  ARIA_CHECK(bx <= INT32_MAX, "sum_to: too many outputs (", M, ")");
  Tensor partial;
  T* p = nullptr;
  if (nchunks > 1) {
    partial = Tensor::empty({nchunks * M}, out.dtype(), out.device());
    p = partial.data<T>();
  }
  const T* xp = x.data<T>();
  const dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(nchunks));
  if (rows) {
    sum_rows_kernel<T><<<grid, 256, 0, stream()>>>(xp, o, p, kept, red, M, R, chunk_len, int(nchunks));
  } else {
    sum_cols_kernel<T><<<grid, dim3(kColX, kColY), 0, stream()>>>(xp, o, p, kept, red, M, R, chunk_len, int(nchunks));
  }
  ARIA_CUDA_LAUNCH_CHECK();
  if (nchunks > 1) {
    sum_partials_kernel<T><<<grid_for(M, 256), 256, 0, stream()>>>(p, o, kept, M, int(nchunks));
    ARIA_CUDA_LAUNCH_CHECK();
  }
}

template <typename T>
__global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t n, int64_t C) {
  ARIA_GRID_STRIDE(i, n) y[i] += b[i % C];
}

}  // namespace

void sum_to(const Tensor& x, const Tensor& out) {
  check_float_dtype(x, "sum_to");
  ARIA_CHECK(x.dtype() == out.dtype(), "sum_to: dtypes differ: ", x.str(), " vs ", out.str());
  ARIA_CHECK(x.dim() == out.dim(), "sum_to: ranks differ: ", x.str(), " vs ", out.str());
  check_same_device(x, out, "sum_to");
  if (x.dtype() == DType::F32) launch_sum_to<float>(x, out);
  else launch_sum_to<double>(x, out);
}

void add_bias(const Tensor& y, const Tensor& b) {
  check_float_dtype(y, "add_bias");
  ARIA_CHECK(y.dtype() == b.dtype(), "add_bias: dtypes differ: ", y.str(), " vs ", b.str());
  ARIA_CHECK(y.is_contiguous() && b.is_contiguous(), "add_bias: tensors must be contiguous");
  check_same_device(y, b, "add_bias");
  const int64_t C = b.numel(), n = y.numel();
  ARIA_CHECK(C > 0 && n % C == 0, "add_bias: bias ", b.str(), " does not match ", y.str());
  if (n == 0) return;
  if (y.dtype() == DType::F32)
    add_bias_kernel<float><<<grid_for(n, 256), 256, 0, stream()>>>(y.data<float>(), b.data<float>(), n, C);
  else
    add_bias_kernel<double><<<grid_for(n, 256), 256, 0, stream()>>>(y.data<double>(), b.data<double>(), n, C);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
