// CUDA elementwise maps: binary with broadcast strides, unary ops and their backward, and add_bias.
// float32, float64 and bfloat16 storage; math in Acc<T> (fp32 for bfloat16), every bf16 result
// rounded once, to nearest even, when stored. The reductions (sum_to, GELU's backward fused with
// the bias gradient) are in elementwise_reduce.cu.
//
// Every map (binary, unary, unary_backward) has two kernels: a contiguous one where each thread
// moves 16 bytes per operand per step (8 bf16 / 4 f32 / 2 f64: the residual adds and activations of
// a transformer block are pure bandwidth) with the op fixed at compile time, and a strided one (N-d
// offsets, stride 0 for broadcasting) that picks the op at run time.
#include <type_traits>
#include <utility>

#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/cuda/gelu.cuh"

namespace aria::cuda {

namespace {
// Calls fn(std::integral_constant<int, K>{}) for the K in [0, N) equal to v (none when out of range):
// turns a run-time op code into a template argument for the contiguous kernels.
template <typename Fn, int... Ks>
void static_switch_impl(int v, Fn&& fn, std::integer_sequence<int, Ks...>) {
  ((v == Ks ? (fn(std::integral_constant<int, Ks>{}), 0) : 0), ...);
}
template <int N, typename Fn>
void static_switch(int v, Fn&& fn) {
  static_switch_impl(v, fn, std::make_integer_sequence<int, N>{});
}

// ---- the op functions (in Acc<T>: float for float and bfloat16, double for double) -------------

template <typename A>
__device__ __forceinline__ A apply_binary(int op, A a, A b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
  }
}

template <typename A> __device__ __forceinline__ A exp_t(A x);
template <> __device__ __forceinline__ float exp_t<float>(float x) { return __expf(x); }
template <> __device__ __forceinline__ double exp_t<double>(double x) { return exp(x); }
template <typename A> __device__ __forceinline__ A log_t(A x);
template <> __device__ __forceinline__ float log_t<float>(float x) { return __logf(x); }
template <> __device__ __forceinline__ double log_t<double>(double x) { return log(x); }

template <typename A>
__device__ __forceinline__ A apply_unary(int op, A x, A alpha, A beta) {
  switch (op) {
    case int(UnaryOp::Affine): return alpha * x + beta;
    case int(UnaryOp::Gelu): return gelu_tanh(x);
    case int(UnaryOp::Sigmoid): return A(1) / (A(1) + exp_t(-x));
    case int(UnaryOp::Relu): return x > A(0) ? x : A(0);
    case int(UnaryOp::Exp): return exp_t(x);
    case int(UnaryOp::Log): return log_t(x);
    case int(UnaryOp::Tanh): return tanh_accurate(x);
    default: return x * x;  // Square
  }
}

// Ops whose derivative is read from y = op(x) rather than from x.
__host__ __device__ constexpr bool needs_y(int op) {
  return op == int(UnaryOp::Sigmoid) || op == int(UnaryOp::Exp) || op == int(UnaryOp::Tanh);
}

// d op(x) / dx from s: s is y = op(x) for the needs_y ops, x for the others.
template <typename A>
__device__ __forceinline__ A unary_derivative(int op, A s) {
  switch (op) {
    case int(UnaryOp::Affine): return A(1);  // not reached: refused by unary_backward (as on the CPU)
    case int(UnaryOp::Gelu): return gelu_tanh_grad(s);
    case int(UnaryOp::Sigmoid): return s * (A(1) - s);
    case int(UnaryOp::Relu): return s > A(0) ? A(1) : A(0);
    case int(UnaryOp::Exp): return s;
    case int(UnaryOp::Log): return A(1) / s;
    case int(UnaryOp::Tanh): return A(1) - s * s;
    default: return A(2) * s;  // Square
  }
}

// Map functors: out = f(in[0..NIN), old out). kOp >= 0 fixes the op at compile time; kOp < 0 reads
// `op`. reads_out() says whether the kernel must load the old output.
template <typename A, int kOp>
struct BinaryFn {
  int op;
  __device__ __forceinline__ bool reads_out() const { return false; }
  __device__ __forceinline__ A operator()(const A (&in)[2], A) const {
    return apply_binary(kOp >= 0 ? kOp : op, in[0], in[1]);
  }
};

template <typename A, int kOp>
struct UnaryFn {
  int op;
  A alpha, beta;
  __device__ __forceinline__ bool reads_out() const { return false; }
  __device__ __forceinline__ A operator()(const A (&in)[1], A) const {
    return apply_unary(kOp >= 0 ? kOp : op, in[0], alpha, beta);
  }
};

// in = {s, dy} (s as unary_derivative); dx = dy * op'(s), plus the old dx when accumulating.
template <typename A, int kOp>
struct UnaryBackwardFn {
  int op;
  bool accumulate;
  __device__ __forceinline__ bool reads_out() const { return accumulate; }
  __device__ __forceinline__ A operator()(const A (&in)[2], A old) const {
    A g = in[1] * unary_derivative(kOp >= 0 ? kOp : op, in[0]);
    if (accumulate) g += old;
    return g;
  }
};

template <typename T, int NIN>
struct Inputs {
  const T* p[NIN];
};

// Contiguous operands, every pointer 16-byte aligned: packs of kVec<T> elements, then the < kVec<T>
// tail elements one per thread. In-place use (out == an input) is fine: each element is read and
// written by the same thread.
template <typename T, int NIN, typename F>
__global__ void map_flat_kernel(F f, Inputs<T, NIN> in, T* out, int64_t n) {
  using A = Acc<T>;
  constexpr int VW = kVec<T>;
  const int64_t packs = n / VW;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  const bool rd = f.reads_out();
  for (int64_t p = tid; p < packs; p += step) {
    A v[NIN][VW], o[VW];
#pragma unroll
    for (int j = 0; j < NIN; ++j) load_pack<T, VW>(in.p[j] + p * VW, v[j]);
    if (rd) {
      load_pack<T, VW>(out + p * VW, o);
    } else {
#pragma unroll
      for (int k = 0; k < VW; ++k) o[k] = A(0);
    }
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      A x[NIN];
#pragma unroll
      for (int j = 0; j < NIN; ++j) x[j] = v[j][k];
      o[k] = f(x, o[k]);
    }
    store_pack<T, VW>(out + p * VW, o);
  }
  for (int64_t i = packs * VW + tid; i < n; i += step) {
    A x[NIN];
#pragma unroll
    for (int j = 0; j < NIN; ++j) x[j] = load(in.p[j] + i);
    store(out + i, f(x, rd ? load(out + i) : A(0)));
  }
}

// Any strides (operand NIN is the output). `flat`: every operand contiguous, offsets are i.
template <typename T, int NIN, typename F>
__global__ void map_strided_kernel(F f, Inputs<T, NIN> in, T* out, Indexer<NIN + 1> ix, int64_t n, bool flat) {
  using A = Acc<T>;
  const bool rd = f.reads_out();
  ARIA_GRID_STRIDE(i, n) {
    int64_t off[NIN + 1];
    if (flat) {
#pragma unroll
      for (int j = 0; j <= NIN; ++j) off[j] = i;
    } else {
      ix.offsets(i, off);
    }
    A x[NIN];
#pragma unroll
    for (int j = 0; j < NIN; ++j) x[j] = load(in.p[j] + off[j]);
    store(out + off[NIN], f(x, rd ? load(out + off[NIN]) : A(0)));
  }
}

// Launches the map `Fn<Acc<T>, op>` (constructed by make(tag) from the op as a compile-time constant
// tag, or from kRuntime) over n elements. `strides` lists the inputs' strides then the output's.
constexpr int kRuntime = -1;

template <typename T, int NIN, int kNumOps, typename Make>
void launch_map(int op, Make&& make, const Inputs<T, NIN>& in, T* out, const Shape& shape,
                const Shape* const (&strides)[NIN + 1], int64_t n, const char* what) {
  Indexer<NIN + 1> ix = make_indexer<NIN + 1>(shape, strides, what);
  const bool flat = indexer_is_flat(ix);
  bool aligned = aligned16(out);
  for (int j = 0; j < NIN; ++j) aligned = aligned && aligned16(in.p[j]);
  if (flat && aligned) {
    const int64_t work = n / kVec<T> + n % kVec<T>;
    auto go = [&](auto f) {
      map_flat_kernel<T, NIN><<<grid_for(work, 256), 256, 0, stream()>>>(f, in, out, n);
    };
    if constexpr (std::is_same_v<T, double>) {  // float64 is the exact reference, not a fast path
      go(make(std::integral_constant<int, kRuntime>{}));
    } else {
      static_switch<kNumOps>(op, [&](auto k) { go(make(k)); });
    }
  } else {
    map_strided_kernel<T, NIN><<<grid_for(n, 256), 256, 0, stream()>>>(make(std::integral_constant<int, kRuntime>{}),
                                                                        in, out, ix, n, flat);
  }
  ARIA_CUDA_LAUNCH_CHECK();
}

void check_map_operand(const TensorView& t, const TensorView& out, const char* what) {
  ARIA_CHECK(t.dtype() == out.dtype(), what, ": dtypes differ: ", t.str(), " vs ", out.str());
  check_same_shape(t, out, what);
  check_same_device(t, out, what);
}

// y[r, :] += b for y viewed as [N, C]. Thread x owns one pack of VW columns (its bias loaded once),
// thread y walks rows: a warp touches 32 consecutive packs of a row per step.
template <typename T, int VW>
__global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t N, int64_t C) {
  using A = Acc<T>;
  const int64_t c = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * VW;
  if (c >= C) return;
  A bv[VW];
  load_pack<T, VW>(b + c, bv);
  for (int64_t r = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; r < N; r += int64_t(gridDim.y) * blockDim.y) {
    T* p = y + r * C + c;
    A v[VW];
    load_pack<T, VW>(p, v);
#pragma unroll
    for (int k = 0; k < VW; ++k) v[k] += bv[k];
    store_pack<T, VW>(p, v);
  }
}

template <typename T, int VW>
void launch_add_bias(T* y, const T* b, int64_t N, int64_t C) {
  const int64_t packs = C / VW;
  const int bx = int(std::min<int64_t>(32, packs));
  const int by = 256 / bx;
  const int64_t gx = ceil_div(packs, bx);
  // enough row blocks to fill the GPU (about 16 blocks per SM), no more than the rows need
  const int64_t gy = std::min<int64_t>({ceil_div(N, by), std::max<int64_t>(1, int64_t(num_sms()) * 16 / gx), 65535});
  ARIA_CHECK(gx <= INT32_MAX, "add_bias: bias too long (", C, ")");
  add_bias_kernel<T, VW><<<dim3(unsigned(gx), unsigned(gy)), dim3(bx, by), 0, stream()>>>(y, b, N, C);
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void binary(int op, const TensorView& a, const TensorView& b, const TensorView& out) {
  ARIA_CHECK(op >= 0 && op <= 3, "binary: unknown op ", op);
  check_map_operand(a, out, "binary");
  check_map_operand(b, out, "binary");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const Shape* st[3] = {&a.strides(), &b.strides(), &out.strides()};
    Inputs<T, 2> in{{dptr<T>(a), dptr<T>(b)}};
    auto make = [op](auto k) { return BinaryFn<A, decltype(k)::value>{op}; };
    launch_map<T, 2, 4>(op, make, in, dptr<T>(out), out.shape(), st, n, "binary");
  });
}

void unary(int op, const TensorView& x, const TensorView& y, double alpha, double beta) {
  ARIA_CHECK(op >= 0 && op <= int(UnaryOp::Square), "unary: unknown op ", op);
  check_map_operand(x, y, "unary");
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_float(y.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const Shape* st[2] = {&x.strides(), &y.strides()};
    Inputs<T, 1> in{{dptr<T>(x)}};
    auto make = [=](auto k) { return UnaryFn<A, decltype(k)::value>{op, A(alpha), A(beta)}; };
    launch_map<T, 1, int(UnaryOp::Square) + 1>(op, make, in, dptr<T>(y), y.shape(), st, n, "unary");
  });
}

void unary_backward(int op, const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx,
                    double alpha) {
  ARIA_CHECK(op >= 0 && op <= int(UnaryOp::Square), "unary_backward: unknown op ", op);
  ARIA_CHECK(op != int(UnaryOp::Affine),
             "unary_backward: Affine has no kernel backward (it is unary(Affine, dy, dx, alpha, 0))");
  ARIA_CHECK(alpha == 0 || alpha == 1, "unary_backward: alpha must be 0 (write) or 1 (accumulate), got ", alpha);
  // Only the operand the derivative is read from is loaded (x or y; the other may be undefined).
  const bool use_y = needs_y(op);
  const TensorView& s = use_y ? y : x;
  ARIA_CHECK(s.defined(), "unary_backward: op ", op, " needs ", use_y ? "y" : "x");
  check_map_operand(s, dx, "unary_backward");
  check_map_operand(dy, dx, "unary_backward");
  const int64_t n = dx.numel();
  if (n == 0) return;
  const bool accumulate = alpha == 1;
  dispatch_float(dx.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const Shape* st[3] = {&s.strides(), &dy.strides(), &dx.strides()};
    Inputs<T, 2> in{{dptr<T>(s), dptr<T>(dy)}};
    auto make = [=](auto k) { return UnaryBackwardFn<A, decltype(k)::value>{op, accumulate}; };
    launch_map<T, 2, int(UnaryOp::Square) + 1>(op, make, in, dptr<T>(dx), dx.shape(), st, n, "unary_backward");
  });
}

void add_bias(const TensorView& y, const TensorView& b) {
  ARIA_CHECK(y.dtype() == b.dtype(), "add_bias: dtypes differ: ", y.str(), " vs ", b.str());
  ARIA_CHECK(y.is_contiguous() && b.is_contiguous(), "add_bias: tensors must be contiguous");
  check_same_device(y, b, "add_bias");
  const int64_t C = b.numel(), n = y.numel();
  ARIA_CHECK(C > 0 && n % C == 0, "add_bias: bias ", b.str(), " does not match ", y.str());
  if (n == 0) return;
  dispatch_float(y.dtype(), "add_bias", [&](auto tag) {
    using T = decltype(tag);
    T* yp = dptr<T>(y);
    const T* bp = dptr<T>(b);
    constexpr int VW = kVec<T>;
    // 16-byte packs need every row start aligned: C a multiple of the pack and aligned bases
    if (C % VW == 0 && aligned16(yp) && aligned16(bp)) launch_add_bias<T, VW>(yp, bp, n / C, C);
    else launch_add_bias<T, 1>(yp, bp, n / C, C);
  });
}

}  // namespace aria::cuda
