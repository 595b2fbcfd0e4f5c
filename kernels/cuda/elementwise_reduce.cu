// CUDA reductions: sum_to (deterministic two-pass reduction, with a vectorized column-sum path) and
// GELU's backward fused with the bias gradient (on the column-sum path). float32, float64 and
// bfloat16 storage; math in Acc<T> (fp32 for bfloat16), a bf16 result rounded once, when stored.
// The elementwise maps are in elementwise_map.cu.
#include <initializer_list>
#include <type_traits>

#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/cuda/gelu.cuh"
#include "aria/kernels/gelu_bias_grad_check.h"

namespace aria::cuda {
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
  KernelBuffer partial({p.nchunks * C}, acc_dtype, dev);  // row-aligned: C % VW == 0
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
void launch_sum_to(const TensorView& x, const TensorView& out) {
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
  KernelBuffer partial;
  A* p = nullptr;
  if (nchunks > 1) {
    partial = KernelBuffer({nchunks * M}, acc_dtype, out.device());
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

}  // namespace

void sum_to(const TensorView& x, const TensorView& out) {
  ARIA_CHECK(x.dtype() == out.dtype(), "sum_to: dtypes differ: ", x.str(), " vs ", out.str());
  ARIA_CHECK(x.dim() == out.dim(), "sum_to: ranks differ: ", x.str(), " vs ", out.str());
  check_same_device(x, out, "sum_to");
  dispatch_float(x.dtype(), "sum_to", [&](auto tag) { launch_sum_to<decltype(tag)>(x, out); });
}

void gelu_backward_bias_grad(const TensorView& pre, const TensorView& dh, const TensorView& dpre,
                             const TensorView& db) {
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

}  // namespace aria::cuda
