// CUDA elementwise kernels: binary with broadcast strides, unary ops and their backward, sum_to
// (deterministic two-pass reduction, with a vectorized column-sum path), add_bias, and GELU's
// backward fused with the bias gradient (on the column-sum path). float32, float64
// and bfloat16 storage; math in Acc<T> (fp32 for bfloat16), every bf16 result rounded once, to
// nearest even, when stored.
//
// Every map (binary, unary, unary_backward) has two kernels: a contiguous one where each thread
// moves 16 bytes per operand per step (8 bf16 / 4 f32 / 2 f64: the residual adds and activations of
// a transformer block are pure bandwidth) with the op fixed at compile time, and a strided one (N-d
// offsets, stride 0 for broadcasting) that picks the op at run time.
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/cuda/gelu.cuh"
#include "aria/kernels/gelu_bias_grad_check.h"

namespace aria::cuda {

namespace {

#define ARIA_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

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

void check_map_operand(const Tensor& t, const Tensor& out, const char* what) {
  ARIA_CHECK(t.dtype() == out.dtype(), what, ": dtypes differ: ", t.str(), " vs ", out.str());
  check_same_shape(t, out, what);
  check_same_device(t, out, what);
}

}  // namespace

void binary(int op, const Tensor& a, const Tensor& b, const Tensor& out) {
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

void unary(int op, const Tensor& x, const Tensor& y, double alpha, double beta) {
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

void unary_backward(int op, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& dx, double alpha) {
  ARIA_CHECK(op >= 0 && op <= int(UnaryOp::Square), "unary_backward: unknown op ", op);
  ARIA_CHECK(op != int(UnaryOp::Affine),
             "unary_backward: Affine has no kernel backward (it is unary(Affine, dy, dx, alpha, 0))");
  ARIA_CHECK(alpha == 0 || alpha == 1, "unary_backward: alpha must be 0 (write) or 1 (accumulate), got ", alpha);
  // Only the operand the derivative is read from is loaded (x or y; the other may be undefined).
  const bool use_y = needs_y(op);
  const Tensor& s = use_y ? y : x;
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

// ---- sum_to ------------------------------------------------------------------------------------
// out[k] = sum_r x[kept(k) + reduced(r)]. Two layouts: "rows" when x's fastest dimension is reduced
// (a block reads a contiguous run), "columns" when it is kept (a warp reads 32 neighbouring outputs
// at once). Each block sums one chunk of r in a fixed order; with more than one chunk the partial
// sums (in Acc<T>: fp32 for bf16 data) go to a buffer that a second kernel adds up in chunk order.
// No atomics: deterministic; a bf16 output is rounded once, at the end. A contiguous column sum
// ([R, C] -> [C], bias gradients) takes its own vectorized pass (column_sum_kernel below).

namespace {

template <typename T>
__device__ __forceinline__ void write_sum(Acc<T> s, int64_t k, int64_t chunk, int64_t M, int nchunks,
                                          Acc<T>* partial, T* out, const Indexer<2>& kept) {
  if (nchunks == 1) {
    int64_t ko[2];
    kept.offsets(k, ko);
    store(out + ko[1], s);
  } else {
    partial[chunk * M + k] = s;
  }
}

template <typename T>
__global__ void sum_rows_kernel(const T* __restrict__ x, T* __restrict__ out, Acc<T>* __restrict__ partial,
                                Indexer<2> kept, Indexer<1> red, int64_t M, int64_t R, int64_t chunk_len,
                                int nchunks) {
  using A = Acc<T>;
  __shared__ A scratch[32];
  const int64_t k = blockIdx.x;
  const int64_t chunk = blockIdx.y;
  int64_t ko[2];
  kept.offsets(k, ko);
  const T* xk = x + ko[0];
  const int64_t r0 = chunk * chunk_len;
  const int64_t r1 = min(R, r0 + chunk_len);
  A acc = 0;
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
    int64_t ro[1];
    red.offsets(r, ro);
    acc += load(xk + ro[0]);
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) write_sum(acc, k, chunk, M, nchunks, partial, out, kept);
}

constexpr int kColX = 32, kColY = 8;

template <typename T>
__global__ void sum_cols_kernel(const T* __restrict__ x, T* __restrict__ out, Acc<T>* __restrict__ partial,
                                Indexer<2> kept, Indexer<1> red, int64_t M, int64_t R, int64_t chunk_len,
                                int nchunks) {
  using A = Acc<T>;
  __shared__ A tile[kColY][kColX + 1];
  const int64_t k = blockIdx.x * int64_t(kColX) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * chunk_len;
  const int64_t r1 = min(R, r0 + chunk_len);
  A acc = 0;
  if (k < M) {
    int64_t ko[2];
    kept.offsets(k, ko);
    const T* xk = x + ko[0];
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) {
      int64_t ro[1];
      red.offsets(r, ro);
      acc += load(xk + ro[0]);
    }
  }
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && k < M) {
    A s = tile[0][threadIdx.x];
    for (int j = 1; j < kColY; ++j) s += tile[j][threadIdx.x];
    write_sum(s, k, chunk, M, nchunks, partial, out, kept);
  }
}

// out[k] = sum over chunks of partial[c, k], in chunk order (0 when there are no chunks).
template <typename T>
__global__ void sum_partials_kernel(const Acc<T>* __restrict__ partial, T* __restrict__ out, Indexer<2> kept,
                                    int64_t M, int nchunks) {
  using A = Acc<T>;
  ARIA_GRID_STRIDE(k, M) {
    A s = nchunks > 0 ? partial[k] : A(0);
    for (int c = 1; c < nchunks; ++c) s += partial[c * M + k];
    int64_t ko[2];
    kept.offsets(k, ko);
    store(out + ko[1], s);
  }
}

// ---- column sums: contiguous [R, C] -> [C] ---------------------------------------------------------
// The layout of every bias gradient ([B*T, C] -> [C]) and of the position-embedding gradient
// ([B, T*C] -> [T*C]) has its own pass near the bandwidth floor. A thread owns VW consecutive
// columns (one 16-byte pack when C and every pointer allow, else VW = 1) and walks the rows of its
// block's chunk with a batch of loads in flight before it adds any; the threadIdx.y rows of a
// block are then added in shared memory by a fixed pairwise tree. One row chunk: the block stores
// straight into out. Several: each chunk stores an Acc<T> row of partial sums and a second launch
// of the same kernel (one chunk, Acc<T> in, T out) adds those rows up. Fixed order everywhere, no
// atomics: bit-for-bit repeatable for a given shape on a given GPU, bf16 rounded once at the end.
// The kernel reads its rows through a row source: SumRows (sum_to: the rows of x) or GeluGradRows
// (gelu_backward_bias_grad: each loaded (pre, dh) pair gives dpre, which is stored and summed in
// the same pass, so that the bias gradient does not read dpre back).

constexpr int kColThreads = 256;    // threads per block: tx columns x ty rows
constexpr int kColBlocksPerSm = 4;  // resident blocks per SM (__launch_bounds__: <= 64 registers)
constexpr int kColWaves = 1;        // grids of up to kColWaves full waves when rows must be chunked
constexpr int kColMaxTy = 32;       // threads splitting the rows of a chunk, unless columns are few

// Rows a thread loads before adding any of them: 128 bytes in flight per thread (8 packs of 16
// bytes), at most 8 loads; raw packs take 32 registers, which keeps 4 blocks of 256 per SM.
template <typename T, int VW>
constexpr int kColRowBatch = std::min(8, std::max(1, int(128 / (VW * sizeof(T)))));

// How a row source holds a loaded row of VW values of T until it uses them: bf16 as raw 32-bit
// words, two values each (one register per pair, not one per value: a batch of 8 16-byte loads
// takes 32 registers, and the loads stay 16-byte vector loads), everything else as T.
template <typename T, int VW>
using RowWord = std::conditional_t<std::is_same_v<T, __nv_bfloat16> && VW % 2 == 0, uint32_t, T>;

// VW consecutive values of T as loaded (RowWord words), widened one at a time by (*this)[k].
template <typename T, int VW>
struct RawPack {
  using W = RowWord<T, VW>;
  using Words = Pack<W, VW * int(sizeof(T)) / int(sizeof(W))>;
  Words w;

  __device__ __forceinline__ void load_from(const T* p) { w = *reinterpret_cast<const Words*>(p); }
  __device__ __forceinline__ Acc<T> operator[](int k) const {
    if constexpr (std::is_same_v<W, uint32_t>) {  // bf16 pair, the lower address in the low half
      const uint32_t x = w.v[k / 2];
      return __uint_as_float(k % 2 == 0 ? x << 16 : x & 0xffff0000u);  // bf16 -> fp32 is exact: the bits, shifted
    } else {
      return load(&w.v[k]);
    }
  }
};

// Row sources. add(acc, off, step, n) adds the n <= kBatch rows at element offsets off, off + step,
// ... (VW columns each) into acc, every row loaded before any is used (n == kBatch: no predicates).

// sum_to's: the rows of x. __restrict__ (x is only read) lets its loads take the read-only path.
template <typename TIn, int VW>
struct SumRows {
  using Sum = Acc<TIn>;
  static constexpr int kBatch = kColRowBatch<TIn, VW>;
  const TIn* __restrict__ x;

  __device__ __forceinline__ void add(Sum (&acc)[VW], int64_t off, int64_t step, int n) const {
    RawPack<TIn, VW> raw[kBatch];
    const TIn* q = x + off;
#pragma unroll
    for (int j = 0; j < kBatch; ++j, q += step)
      if (j < n) raw[j].load_from(q);
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      if (j < n) {
#pragma unroll
        for (int k = 0; k < VW; ++k) acc[k] += raw[j][k];
      }
    }
  }
};

// gelu_backward_bias_grad's: dpre = dh * gelu'(pre) (unary_backward's product, bit for bit), stored,
// and its Acc<T> values (bf16: before rounding) added. Rows per batch: 32 bytes of each operand,
// at most 4 (two 16-byte packs of pre and dh: 64 bytes in flight per thread; a batch of 4 such rows
// spills under the 64-register bound, once the GELU math needs its registers). Plain loads: dpre may
// be dh (each element is read before the thread that reads it writes it).
template <typename T, int VW>
struct GeluGradRows {
  using Sum = Acc<T>;
  static constexpr int kBatch = std::min(4, std::max(1, int(32 / (VW * sizeof(T)))));
  const T* pre;
  const T* dh;
  T* dpre;

  __device__ __forceinline__ void add(Sum (&acc)[VW], int64_t off, int64_t step, int n) const {
    RawPack<T, VW> p[kBatch], d[kBatch];
    int64_t o = off;
#pragma unroll
    for (int j = 0; j < kBatch; ++j, o += step) {
      if (j < n) {
        p[j].load_from(pre + o);
        d[j].load_from(dh + o);
      }
    }
    o = off;
#pragma unroll
    for (int j = 0; j < kBatch; ++j, o += step) {
      if (j < n) {
        Sum g[VW];
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          g[k] = d[j][k] * gelu_tanh_grad(p[j][k]);
          acc[k] += g[k];
        }
        store_pack<T, VW>(dpre + o, g);
      }
    }
  }
};

// out[chunk, c] = sum of the rows r of chunk blockIdx.y (chunk_len rows, the last one shorter) of
// the row source at column c, rows row-major [R, C]; out has one row per chunk. blockDim = (tx,
// ty), tx * ty = kColThreads; thread (tx, ty) takes rows ty, ty + ty_n, ... of the chunk in order.
template <typename Rows, typename TOut, int VW>
__global__ void __launch_bounds__(kColThreads, kColBlocksPerSm)
    column_reduce_kernel(Rows rows, TOut* __restrict__ out, int64_t R, int64_t C, int64_t chunk_len) {
  using A = typename Rows::Sum;
  static_assert(std::is_same_v<A, Acc<TOut>>, "column_reduce_kernel: one accumulation type in and out");
  constexpr int U = Rows::kBatch;
  __shared__ A tree[VW * kColThreads];
  const int tx = threadIdx.x, ty = threadIdx.y, ntx = blockDim.x, nty = blockDim.y;
  const int64_t c = (blockIdx.x * int64_t(ntx) + tx) * VW;
  const int64_t r0 = blockIdx.y * chunk_len;
  const int64_t r1 = min(R, r0 + chunk_len);
  A acc[VW];
#pragma unroll
  for (int k = 0; k < VW; ++k) acc[k] = A(0);
  if (c < C) {  // threads past the last column still take part in the tree below
    const int64_t step = int64_t(nty) * C;
    int64_t r = r0 + ty, off = r * C + c;
    for (; r + int64_t(U - 1) * nty < r1; r += int64_t(U) * nty, off += U * step) rows.add(acc, off, step, U);
    if (r < r1) rows.add(acc, off, step, (int(r1 - r) + nty - 1) / nty);  // r1 - r < U * nty here
  }
  // tree[k][row][tx]: a warp's threads touch consecutive words (no bank conflicts)
  auto cell = [&](int k, int row) -> A& { return tree[(k * nty + row) * ntx + tx]; };
#pragma unroll
  for (int k = 0; k < VW; ++k) cell(k, ty) = acc[k];
  for (int s = nty / 2; s > 0; s /= 2) {  // level s: rows [s, 2s) are read, rows [0, s) written
    __syncthreads();
    if (ty < s) {
#pragma unroll
      for (int k = 0; k < VW; ++k) {
        acc[k] += cell(k, ty + s);
        cell(k, ty) = acc[k];
      }
    }
  }
  if (ty == 0 && c < C) store_pack<TOut, VW>(out + blockIdx.y * C + c, acc);
}

struct ColumnPlan {
  dim3 block;
  int64_t gx = 1;         // column groups (grid.x)
  int64_t nchunks = 1;    // row chunks (grid.y)
  int64_t chunk_len = 1;  // rows per chunk (the last may be shorter)
};

int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

// Launch shape of column_reduce_kernel over R rows of `packs` packs (pack_bytes each). ty: up to
// kColMaxTy threads split the rows, fewer when R is short, so that each gets min_rows rows (a full
// batch of loads); tx: the rest of the block along the columns, at least 128 bytes of a row per
// group of tx threads (whole cache lines) and no more than the columns need (few columns give the
// spare threads back to the rows). With split_rows, the rows are cut into chunks until the grid
// fills kColWaves waves of kColBlocksPerSm blocks per SM. One wave of equal blocks, all resident at
// once (1024 threads per SM, each with 128 bytes of loads in flight: ~17 MB in flight on 132 SMs,
// several times what the bandwidth floor needs), finishes together; more waves only mean more
// partial sums to write and read back. Wide, short inputs get their parallelism from the columns
// alone (one chunk, no partials).
ColumnPlan plan_column_sum(int64_t R, int64_t packs, int64_t pack_bytes, int64_t min_rows, bool split_rows) {
  int64_t ty = 1;
  while (ty < kColMaxTy && 2 * ty * min_rows <= R) ty *= 2;
  const int64_t tx_min = std::max<int64_t>(1, 128 / pack_bytes);
  const int64_t tx = std::min(pow2_ceil(packs), std::max(tx_min, kColThreads / ty));
  ColumnPlan p;
  p.block = dim3(unsigned(tx), unsigned(kColThreads / tx));
  p.gx = ceil_div(packs, tx);
  const int64_t target = int64_t(num_sms()) * kColBlocksPerSm * kColWaves;
  int64_t n = 1;
  if (split_rows && p.gx < target) {
    n = target / p.gx;
    n = std::min<int64_t>({n, std::max<int64_t>(1, R / (int64_t(p.block.y) * min_rows)), 65535});
  }
  p.chunk_len = std::max<int64_t>(1, ceil_div(R, n));
  p.nchunks = ceil_div(R, p.chunk_len);
  return p;
}

// out[c] = the column sums of the R >= 1 rows of C columns (a multiple of VW) that `rows` gives,
// out contiguous with VW-aligned row starts: column_reduce_kernel straight into out when the plan
// has one row chunk, else into Acc<T> partial rows that the same kernel then adds up in chunk
// order (SumRows over them), rounded into out once.
template <typename T, int VW, typename Rows>
void launch_column_reduce(const Rows& rows, T* out, int64_t R, int64_t C, Device dev, const char* what) {
  using A = Acc<T>;
  const int64_t packs = C / VW;
  const ColumnPlan p = plan_column_sum(R, packs, VW * int64_t(sizeof(T)), Rows::kBatch, true);
  ARIA_CHECK(p.gx <= INT32_MAX, what, ": too many columns (", C, ")");
  const dim3 grid(unsigned(p.gx), unsigned(p.nchunks));
  if (p.nchunks == 1) {
    column_reduce_kernel<Rows, T, VW><<<grid, p.block, 0, stream()>>>(rows, out, R, C, p.chunk_len);
    ARIA_CUDA_LAUNCH_CHECK();
    return;
  }
  const DType acc_dtype = std::is_same_v<A, double> ? DType::F64 : DType::F32;
  Tensor partial = Tensor::empty({p.nchunks * C}, acc_dtype, dev);  // row-aligned: C % VW == 0
  A* pp = partial.data<A>();
  column_reduce_kernel<Rows, A, VW><<<grid, p.block, 0, stream()>>>(rows, pp, R, C, p.chunk_len);
  ARIA_CUDA_LAUNCH_CHECK();
  // the partial rows added up by the same kernel (one chunk of p.nchunks rows), rounded into out once
  const ColumnPlan f = plan_column_sum(p.nchunks, packs, VW * int64_t(sizeof(A)), 1, false);
  column_reduce_kernel<SumRows<A, VW>, T, VW>
      <<<dim3(unsigned(f.gx), 1), f.block, 0, stream()>>>(SumRows<A, VW>{pp}, out, p.nchunks, C, p.nchunks);
  ARIA_CUDA_LAUNCH_CHECK();
}

// Calls go(std::integral_constant<int, VW>{}) with VW = kVec<T> (16-byte packs) when C is a
// multiple of the pack and every pointer is 16-byte aligned (then so is every row start of every
// [R, C] operand), else VW = 1 (one column per thread).
template <typename T, typename Go>
void with_column_pack(int64_t C, std::initializer_list<const void*> ptrs, Go&& go) {
  bool packs = C % kVec<T> == 0;
  for (const void* q : ptrs) packs = packs && aligned16(q);
  if (packs) go(std::integral_constant<int, kVec<T>>{});
  else go(std::integral_constant<int, 1>{});
}

// out[c] = sum_r x[r * C + c] (R >= 1, C >= 1), out contiguous.
template <typename T>
void launch_column_sum(const T* x, T* out, int64_t R, int64_t C, Device dev) {
  with_column_pack<T>(C, {x, out}, [&](auto vw) {
    constexpr int VW = decltype(vw)::value;
    launch_column_reduce<T, VW>(SumRows<T, VW>{x}, out, R, C, dev, "sum_to");
  });
}

// sum_to's indexers describe a column sum: the kept elements contiguous in x and out (one merged
// dimension of stride 1) and the reduced ones whole rows of them (one dimension of stride M, or
// none when R == 1).
bool is_column_sum(const Indexer<2>& kept, const Indexer<1>& red, int64_t M) {
  if (kept.nd != 1 || kept.strides[0][0] != 1 || kept.strides[1][0] != 1) return false;
  return red.nd == 0 || (red.nd == 1 && red.strides[0][0] == M);
}

template <typename T>
void launch_sum_to(const Tensor& x, const Tensor& out) {
  using A = Acc<T>;
  const DType acc_dtype = std::is_same_v<A, double> ? DType::F64 : DType::F32;
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
  T* o = dptr<T>(out);
  if (R == 0) {  // empty sum: zeros
    sum_partials_kernel<T><<<grid_for(M, 256), 256, 0, stream()>>>(nullptr, o, kept, M, 0);
    ARIA_CUDA_LAUNCH_CHECK();
    return;
  }
  if (is_column_sum(kept, red, M)) {
    launch_column_sum<T>(dptr<T>(x), o, R, M, out.device());
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
  A* p = nullptr;
  if (nchunks > 1) {
    partial = Tensor::empty({nchunks * M}, acc_dtype, out.device());
    p = partial.data<A>();
  }
  const T* xp = dptr<T>(x);
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

void sum_to(const Tensor& x, const Tensor& out) {
  ARIA_CHECK(x.dtype() == out.dtype(), "sum_to: dtypes differ: ", x.str(), " vs ", out.str());
  ARIA_CHECK(x.dim() == out.dim(), "sum_to: ranks differ: ", x.str(), " vs ", out.str());
  check_same_device(x, out, "sum_to");
  dispatch_float(x.dtype(), "sum_to", [&](auto tag) { launch_sum_to<decltype(tag)>(x, out); });
}

void gelu_backward_bias_grad(const Tensor& pre, const Tensor& dh, const Tensor& dpre, const Tensor& db) {
  const char* what = "gelu_backward_bias_grad";
  const GeluBiasGradRows rows = check_gelu_backward_bias_grad_args(pre, dh, dpre, db, true);
  if (rows.C == 0) return;
  if (rows.R == 0) {  // no rows: db is an empty sum
    fill(db, 0.0);
    return;
  }
  dispatch_float(pre.dtype(), what, [&](auto tag) {
    using T = decltype(tag);
    const T *p = dptr<T>(pre), *d = dptr<T>(dh);
    T *dp = dptr<T>(dpre), *b = dptr<T>(db);
    with_column_pack<T>(rows.C, {p, d, dp, b}, [&](auto vw) {
      constexpr int VW = decltype(vw)::value;
      launch_column_reduce<T, VW>(GeluGradRows<T, VW>{p, d, dp}, b, rows.R, rows.C, db.device(), what);
    });
  });
}

void add_bias(const Tensor& y, const Tensor& b) {
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
