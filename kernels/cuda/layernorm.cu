// LayerNorm over the last dimension: float32, float64 and bfloat16 data, statistics (mean, rstd) in
// Acc<T> (float32, float64 for float64 data). Math in Acc<T>; bf16 stores round to nearest even.
// Forward (also fused with the residual add): one warp per row. Rows of at most 32 * 4 packs with
// 16-byte access are register-resident: a lane issues the loads of all its packs at once, then the
// mean, the variance around it and the output come from registers (a sweep issuing one pack's load at
// a time is latency-bound; docs/perf.md). Other rows take three sweeps (mean, variance, output);
// only the first comes from DRAM, the others hit L1.
// Backward: one warp per row computes dx (plus an optional residual gradient) and the dw/db column
// sums of dy * xhat and dy, each lane always owning the same columns. Rows of at most 32 * 4 packs
// (C <= 1024 in bf16) with 16-byte access take the register-resident kernel: a lane holds its packs of
// x, dy (and dres) from one read per row, its packs of w for all rows, and its column sums in
// registers across all the rows its warp walks. Other rows take a two-sweep kernel (the row means,
// then dx with the row re-read from L1) that adds into per-warp column accumulators in shared memory
// (each lane owns its slots, so no atomics; laid out lane-major, so no bank conflicts). Either way
// blocks add their warps' accumulators in warp order into per-block partial rows, and a last kernel
// adds those in block order into dw/db: deterministic, and dw/db are rounded once when they are bf16.
// Rows too wide for the shared accumulators fall back to a separate column reduction kernel.
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row at a time each
constexpr int kMaxPacksPerLane = 4;  // register-resident rows: up to 4 packs per lane (C <= 1024 in bf16)

// The value a store of v into a T holds (the residual sum is normalised as it is stored).
template <typename T>
__device__ __forceinline__ Acc<T> round_to(Acc<T> v) { return v; }
template <>
__device__ __forceinline__ float round_to<__nv_bfloat16>(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float rsqrt_acc(float v) { return rsqrtf(v); }
__device__ __forceinline__ double rsqrt_acc(double v) { return rsqrt(v); }

// ---- forward ----
// kAdd: the input row is round_T(x + r), also stored into `sum`; otherwise x.
template <typename T, int VW, bool kAdd>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    layernorm_forward_kernel(const T* __restrict__ x, const T* __restrict__ r, const T* __restrict__ w,
                             const T* __restrict__ b, T* __restrict__ sum, T* __restrict__ y, Acc<T>* __restrict__ mean,
                             Acc<T>* __restrict__ rstd, int64_t N, int C, Acc<T> eps) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const T* xr = x + row * C;
  const T* rr = kAdd ? r + row * C : nullptr;
  // Pass 2 and 3 recompute the rounded sum from x and r (L1-hot) rather than reading back `sum`.
  auto load_in = [&](int c, A (&v)[VW]) {
    load_pack<T, VW>(xr + c, v);
    if constexpr (kAdd) {
      A t[VW];
      load_pack<T, VW>(rr + c, t);
#pragma unroll
      for (int k = 0; k < VW; ++k) v[k] = round_to<T>(v[k] + t[k]);
    }
  };
  A s = 0;
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A v[VW];
    load_in(c, v);
    if constexpr (kAdd) store_pack<T, VW>(sum + row * C + c, v);
#pragma unroll
    for (int k = 0; k < VW; ++k) s += v[k];
  }
  const A m = warp_sum(s) / A(C);
  A q = 0;
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A v[VW];
    load_in(c, v);
#pragma unroll
    for (int k = 0; k < VW; ++k) q += (v[k] - m) * (v[k] - m);
  }
  const A rs = rsqrt_acc(warp_sum(q) / A(C) + eps);
  T* yr = y + row * C;
  for (int c = lane * VW; c < C; c += 32 * VW) {
    A v[VW], wv[VW], bv[VW];
    load_in(c, v);
    load_pack<T, VW>(w + c, wv);
    load_pack<T, VW>(b + c, bv);
#pragma unroll
    for (int k = 0; k < VW; ++k) v[k] = (v[k] - m) * rs * wv[k] + bv[k];
    store_pack<T, VW>(yr + c, v);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = rs;
  }
}

// The same for rows of at most 32 * VW * P elements (P packs per lane; C a multiple of VW), the row
// held in registers: one read of x (and r), one write of y (and sum).
template <typename T, int VW, bool kAdd, int P>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    layernorm_forward_regs_kernel(const T* __restrict__ x, const T* __restrict__ r, const T* __restrict__ w,
                                  const T* __restrict__ b, T* __restrict__ sum, T* __restrict__ y,
                                  Acc<T>* __restrict__ mean, Acc<T>* __restrict__ rstd, int64_t N, int C, Acc<T> eps) {
  using A = Acc<T>;
  const int64_t row = blockIdx.x * int64_t(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  A v[P][VW];
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int c = (p * 32 + lane) * VW;
    if (c < C) load_pack<T, VW>(x + row * C + c, v[p]);
  }
  if constexpr (kAdd) {
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int c = (p * 32 + lane) * VW;
      if (c < C) {
        A t[VW];
        load_pack<T, VW>(r + row * C + c, t);
#pragma unroll
        for (int k = 0; k < VW; ++k) v[p][k] = round_to<T>(v[p][k] + t[k]);
        store_pack<T, VW>(sum + row * C + c, v[p]);
      }
    }
  }
  A s = 0;
#pragma unroll
  for (int p = 0; p < P; ++p)
    if ((p * 32 + lane) * VW < C) {
#pragma unroll
      for (int k = 0; k < VW; ++k) s += v[p][k];
    }
  const A m = warp_sum(s) / A(C);
  A q = 0;
#pragma unroll
  for (int p = 0; p < P; ++p)
    if ((p * 32 + lane) * VW < C) {
#pragma unroll
      for (int k = 0; k < VW; ++k) q += (v[p][k] - m) * (v[p][k] - m);
    }
  const A rs = rsqrt_acc(warp_sum(q) / A(C) + eps);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int c = (p * 32 + lane) * VW;
    if (c < C) {
      A wv[VW], bv[VW];
      load_pack<T, VW>(w + c, wv);
      load_pack<T, VW>(b + c, bv);
#pragma unroll
      for (int k = 0; k < VW; ++k) v[p][k] = (v[p][k] - m) * rs * wv[k] + bv[k];
      store_pack<T, VW>(y + row * C + c, v[p]);
    }
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = rs;
  }
}

// ---- backward ----
// Per-warp column accumulators live in shared memory in a lane-major layout: the value of column
// c = it * 32 * VW + lane * VW + k sits in slot (it * VW + k) * 32 + lane, so the 32 lanes of a warp
// touch 32 consecutive words (no bank conflicts) and each lane owns the slots equal to its lane
// mod 32 (no sharing, no atomics). A warp's array holds acc_slots(C, VW) slots.
__host__ __device__ __forceinline__ int acc_slots(int C, int VW) { return (C + 32 * VW - 1) / (32 * VW) * 32 * VW; }

__device__ __forceinline__ int acc_slot_of_column(int c, int VW) {
  const int it = c / (32 * VW), rem = c % (32 * VW);
  return (it * VW + rem % VW) * 32 + rem / VW;
}

// Block blockIdx.x's partial row from its warps' accumulator arrays (`all`, 2 * P slots per warp: dw's
// then db's): partial[b][0..C) = dw sums, partial[b][C..2C) = db sums, warps added in warp order
// (deterministic). Every thread of the block must call it.
template <int VW, typename A>
__device__ __forceinline__ void write_block_partial(const A* all, int warps, int P, int C, A* __restrict__ partial) {
  __syncthreads();
  for (int j = threadIdx.x; j < 2 * C; j += blockDim.x) {
    const int arr = j < C ? 0 : 1, c = j - arr * C;
    const int64_t off = int64_t(arr) * P + acc_slot_of_column(c, VW);
    A s = 0;
    for (int k = 0; k < warps; ++k) s += all[int64_t(k) * 2 * P + off];  // warp order: deterministic
    partial[int64_t(blockIdx.x) * 2 * C + j] = s;
  }
}

// Rows row = blockIdx.x * warps + warp, stepping by gridDim.x * warps. dx (when non-null) = dres (when
// non-null; may alias dx) + rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w. When `partial`
// is non-null, block b writes partial[b][0..C) = its sum of dy * xhat and partial[b][C..2C) = its sum
// of dy; dynamic shared memory then holds two accumulator arrays (dw, db) per warp.
template <typename T, int VW>
__global__ void layernorm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                          const Acc<T>* __restrict__ mean, const Acc<T>* __restrict__ rstd,
                                          const T* __restrict__ dy, const T* dres, T* dx, Acc<T>* __restrict__ partial,
                                          int64_t N, int C) {
  using A = Acc<T>;
  extern __shared__ unsigned char smem_raw[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int P = acc_slots(C, VW);
  A* acc_w = reinterpret_cast<A*>(smem_raw) + int64_t(warp) * 2 * P;  // this warp's sums of dy * xhat
  A* acc_b = acc_w + P;                                                // and of dy
  if (partial)
    for (int s = lane; s < P; s += 32) acc_w[s] = acc_b[s] = A(0);  // only this lane's own slots
  for (int64_t row = int64_t(blockIdx.x) * warps + warp; row < N; row += int64_t(gridDim.x) * warps) {
    const T* xr = x + row * C;
    const T* dyr = dy + row * C;
    const A m = mean[row], rs = rstd[row];
    A s1 = 0, s2 = 0;
    if (dx) {
      for (int c = lane * VW; c < C; c += 32 * VW) {
        A xv[VW], gv[VW], wv[VW];
        load_pack<T, VW>(xr + c, xv);
        load_pack<T, VW>(dyr + c, gv);
        load_pack<T, VW>(w + c, wv);
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A g = gv[k] * wv[k];
          s1 += g;
          s2 += g * (xv[k] - m) * rs;
        }
      }
      s1 = warp_sum(s1) / A(C);
      s2 = warp_sum(s2) / A(C);
    }
    int slot = lane;  // (it * VW) * 32 + lane for the current iteration `it`
    for (int c = lane * VW; c < C; c += 32 * VW, slot += 32 * VW) {
      A xv[VW], gv[VW];
      load_pack<T, VW>(xr + c, xv);
      load_pack<T, VW>(dyr + c, gv);
      if (dx) {
        A wv[VW], out[VW];
        load_pack<T, VW>(w + c, wv);
        if (dres) load_pack<T, VW>(dres + row * C + c, out);  // read before dx (its alias) is written
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A xhat = (xv[k] - m) * rs;
          const A d = rs * (gv[k] * wv[k] - s1 - xhat * s2);
          out[k] = dres ? out[k] + d : d;
        }
        store_pack<T, VW>(dx + row * C + c, out);
      }
      if (partial) {
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          acc_w[slot + 32 * k] += gv[k] * ((xv[k] - m) * rs);
          acc_b[slot + 32 * k] += gv[k];
        }
      }
    }
  }
  if (partial) write_block_partial<VW>(reinterpret_cast<const A*>(smem_raw), warps, P, C, partial);
}

// Element k of a pack as Acc<T>. For bf16 the widening (a shift or a mask of the 32-bit word holding
// two elements) is volatile asm, so the compiler redoes it at each use instead of hoisting widened
// copies of the packs (x, dy across the warp sums, w out of the row loop): the register-resident
// kernel below then needs 127 registers for bf16 rows of 768 (two blocks per SM) instead of 187
// (one block per SM).
template <typename T, int VW>
__device__ __forceinline__ Acc<T> widen(const Pack<T, VW>& p, int k) { return load(&p.v[k]); }
template <int VW>
__device__ __forceinline__ float widen(const Pack<__nv_bfloat16, VW>& p, int k) {
  uint32_t word;
  __builtin_memcpy(&word, &p.v[k & ~1], sizeof word);  // elements k & ~1 (low half) and k | 1 (high half)
  float f;
  if (k & 1) asm volatile("and.b32 %0, %1, 0xffff0000;" : "=f"(f) : "r"(word));
  else asm volatile("shl.b32 %0, %1, 16;" : "=f"(f) : "r"(word));
  return f;
}

// Register-resident variant for rows of at most 32 * VW * IT elements, C a multiple of VW, 16-byte
// aligned data; same arguments, results and shared-memory layout as layernorm_backward_kernel, and
// the same summation order. Lane `lane` owns the packs starting at columns (it * 32 + lane) * VW,
// it < IT (those at or past C are skipped): it reads its packs of x, dy (and dres) once per row, w
// once for all rows, and keeps its column sums in registers until the warp has walked its rows.
// Up to IT = 3 it fits 128 registers (two blocks of 8 warps per SM). IT = 4 needs about 165: held to
// 128 it spills and runs slower than at one block per SM without spills (docs/perf.md).
template <typename T, int VW, int IT>
__global__ void __launch_bounds__(32 * kRowsPerBlock, IT < 4 ? 2 : 1)
    layernorm_backward_regs_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                   const Acc<T>* __restrict__ mean, const Acc<T>* __restrict__ rstd,
                                   const T* __restrict__ dy, const T* dres, T* dx, Acc<T>* __restrict__ partial,
                                   int64_t N, int C) {
  using A = Acc<T>;
  using Pk = Pack<T, VW>;  // packs stay in storage form (half the registers for bf16) until used
  extern __shared__ unsigned char smem_raw[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  auto column = [&](int it) { return (it * 32 + lane) * VW; };
  auto at = [](const T* p, int64_t off) { return *reinterpret_cast<const Pk*>(p + off); };
  Pk wp[IT];
  A acc_w[IT][VW], acc_b[IT][VW];  // this lane's sums of dy * xhat and of dy, column (it, k)
#pragma unroll
  for (int it = 0; it < IT; ++it) {
    if (dx && column(it) < C) wp[it] = at(w, column(it));  // w is only read for dx
#pragma unroll
    for (int k = 0; k < VW; ++k) acc_w[it][k] = acc_b[it][k] = A(0);
  }
  for (int64_t row = int64_t(blockIdx.x) * warps + warp; row < N; row += int64_t(gridDim.x) * warps) {
    const int64_t r0 = row * C;
    Pk xp[IT], gp[IT], rp[IT];
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      if (column(it) >= C) continue;
      xp[it] = at(x, r0 + column(it));
      gp[it] = at(dy, r0 + column(it));
      if (dres) rp[it] = at(dres, r0 + column(it));  // read before dx (its alias) is written
    }
    const A m = mean[row], rs = rstd[row];
    if (dx) {
      A s1 = 0, s2 = 0;
#pragma unroll
      for (int it = 0; it < IT; ++it) {
        if (column(it) >= C) continue;
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A g = widen(gp[it], k) * widen(wp[it], k);
          s1 += g;
          s2 += g * (widen(xp[it], k) - m) * rs;
        }
      }
      s1 = warp_sum(s1) / A(C);
      s2 = warp_sum(s2) / A(C);
#pragma unroll
      for (int it = 0; it < IT; ++it) {
        if (column(it) >= C) continue;
        A out[VW];
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A xhat = (widen(xp[it], k) - m) * rs;
          const A d = rs * (widen(gp[it], k) * widen(wp[it], k) - s1 - xhat * s2);
          out[k] = dres ? widen(rp[it], k) + d : d;
        }
        store_pack<T, VW>(dx + r0 + column(it), out);
      }
    }
    if (partial) {
#pragma unroll
      for (int it = 0; it < IT; ++it) {
        if (column(it) >= C) continue;
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const A g = widen(gp[it], k);
          acc_w[it][k] += g * ((widen(xp[it], k) - m) * rs);
          acc_b[it][k] += g;
        }
      }
    }
  }
  if (!partial) return;
  // Column (it, k) of this lane goes to slot (it * VW + k) * 32 + lane (acc_slot_of_column); columns
  // past C hold zeros and are never read.
  const int P = acc_slots(C, VW);
  A* sw = reinterpret_cast<A*>(smem_raw) + int64_t(warp) * 2 * P;
#pragma unroll
  for (int it = 0; it < IT; ++it)
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      sw[(it * VW + k) * 32 + lane] = acc_w[it][k];
      sw[P + (it * VW + k) * 32 + lane] = acc_b[it][k];
    }
  write_block_partial<VW>(reinterpret_cast<const A*>(smem_raw), warps, P, C, partial);
}

constexpr int kFinX = 32, kFinY = 32;

// Column j of the [nparts, 2C] partials (j < C: dw[j], else db[j - C]) summed in block order by a
// (32, 32) block: thread row y adds parts y, y + 32, ..., then the 32 sums are added in y order. Only
// 2C / 32 blocks run (48 for C = 768), so each thread keeps several loads in flight (the unroll).
// The total is added to dw/db (stored rounded once when TW is bf16).
template <typename TW, typename A>
__global__ void dwdb_finish_kernel(const A* __restrict__ partial, int nparts, int C, TW* __restrict__ dw,
                                   TW* __restrict__ db) {
  __shared__ A tile[kFinY][kFinX + 1];
  const int j = blockIdx.x * kFinX + threadIdx.x;
  A s = 0;
  if (j < 2 * C)
#pragma unroll 8
    for (int k = threadIdx.y; k < nparts; k += kFinY) s += partial[int64_t(k) * 2 * C + j];
  tile[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || j >= 2 * C) return;
  A t = tile[0][threadIdx.x];
  for (int y = 1; y < kFinY; ++y) t += tile[y][threadIdx.x];
  TW* out = j < C ? dw : db;
  const int c = j < C ? j : j - C;
  if (out) store(out + c, Acc<TW>(load(out + c) + t));
}

// Fallback for rows too wide for shared accumulators: a column reduction over row chunks.
// grid (ceil(C/32), nchunks), block (32, 8); writes partial[chunk][c] (dw) and partial[chunk][C + c]
// (db) in the layout dwdb_finish_kernel reads.
constexpr int kColX = 32, kColY = 8;

template <typename T>
__global__ void layernorm_dwdb_columns_kernel(const T* __restrict__ x, const Acc<T>* __restrict__ mean,
                                              const Acc<T>* __restrict__ rstd, const T* __restrict__ dy,
                                              Acc<T>* __restrict__ partial, int64_t N, int C, int64_t chunk_len) {
  using A = Acc<T>;
  __shared__ A tw[kColY][kColX + 1], tb[kColY][kColX + 1];
  const int c = blockIdx.x * kColX + threadIdx.x;
  const int64_t r0 = blockIdx.y * chunk_len;
  const int64_t r1 = min(N, r0 + chunk_len);
  A aw = 0, ab = 0;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) {
      const A g = load(dy + r * C + c);
      aw += g * ((load(x + r * C + c) - mean[r]) * rstd[r]);
      ab += g;
    }
  }
  tw[threadIdx.y][threadIdx.x] = aw;
  tb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    A sw = tw[0][threadIdx.x], sb = tb[0][threadIdx.x];
    for (int j = 1; j < kColY; ++j) {
      sw += tw[j][threadIdx.x];
      sb += tb[j][threadIdx.x];
    }
    partial[blockIdx.y * int64_t(2) * C + c] = sw;
    partial[blockIdx.y * int64_t(2) * C + C + c] = sb;
  }
}

// ---- host side ----
DType stat_dtype_of(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

void check_data(const TensorView& t, DType dt, int64_t numel, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cuda() && t.is_contiguous() && t.dtype() == dt && t.numel() == numel, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " CUDA tensor with ", numel, " elements, got ", t.str());
}

bool aligned16(const TensorView& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }

// Row geometry [N, C] of x; C must fit an int.
void rows_of(const TensorView& x, const char* what, int64_t& N, int64_t& C) {
  ARIA_CHECK(x.defined() && x.dim() >= 1, what, ": x must be [N, C], got ", x.defined() ? x.str() : "undefined");
  C = x.size(-1);
  N = C ? x.numel() / C : 0;
  ARIA_CHECK(C < INT32_MAX / 2, what, ": rows of ", C, " elements are too long");
}

template <typename T>
const T* ptr(const TensorView& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <typename T>
T* mptr(const TensorView& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

// Forward and fused add+forward (r, sum defined) for storage type T.
template <typename T>
void launch_forward(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                    const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                    double eps, int64_t N, int64_t C) {
  using A = Acc<T>;
  const bool add = r.defined();
  const bool vec = C % kVec<T> == 0 && aligned16(x) && aligned16(r) && aligned16(w) && aligned16(b) &&
                   aligned16(sum) && aligned16(y);
  const unsigned grid = unsigned(ceil_div(N, kRowsPerBlock));
  const int block = 32 * kRowsPerBlock;
  auto go = [&](auto kernel) {
    kernel<<<grid, block, 0, stream()>>>(ptr<T>(x), ptr<T>(r), ptr<T>(w), ptr<T>(b), mptr<T>(sum), mptr<T>(y),
                                         mptr<A>(mean), mptr<A>(rstd), N, int(C), A(eps));
  };
  constexpr int VW = kVec<T>;
  if (vec && C <= int64_t(32) * VW * kMaxPacksPerLane) {  // register-resident rows
    auto regs = [&](auto add_tag) {
      constexpr bool kAdd = decltype(add_tag)::value;
      switch (ceil_div(C, 32 * VW)) {
        case 1: return go(layernorm_forward_regs_kernel<T, VW, kAdd, 1>);
        case 2: return go(layernorm_forward_regs_kernel<T, VW, kAdd, 2>);
        case 3: return go(layernorm_forward_regs_kernel<T, VW, kAdd, 3>);
        default: return go(layernorm_forward_regs_kernel<T, VW, kAdd, 4>);
      }
    };
    if (add) regs(std::true_type{});
    else regs(std::false_type{});
  } else if (vec && add) go(layernorm_forward_kernel<T, kVec<T>, true>);
  else if (vec) go(layernorm_forward_kernel<T, kVec<T>, false>);
  else if (add) go(layernorm_forward_kernel<T, 1, true>);
  else go(layernorm_forward_kernel<T, 1, false>);
  ARIA_CUDA_LAUNCH_CHECK();
}

void forward_common(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                    const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                    double eps, const char* what) {
  int64_t N, C;
  rows_of(x, what, N, C);
  const DType dt = x.dtype(), st = stat_dtype_of(dt);
  check_data(x, dt, N * C, what, "x");
  if (r.defined() || sum.defined()) {
    check_data(r, dt, N * C, what, "r");
    check_data(sum, dt, N * C, what, "sum");
  }
  check_data(w, dt, C, what, "w");
  check_data(b, dt, C, what, "b");
  check_data(y, dt, N * C, what, "y");
  check_data(mean, st, N, what, "mean");
  check_data(rstd, st, N, what, "rstd");
  if (N == 0) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    launch_forward<T>(x, r, w, b, sum, y, mean, rstd, eps, N, C);
  });
}

// Shared-memory budget for the per-warp accumulators: what an SM offers an opted-in block, less a
// margin so that two blocks and some L1 (for the re-read rows) still fit.
size_t accumulator_budget() {
  const size_t optin = size_t(device_props().sharedMemPerBlockOptin);
  return std::min<size_t>(optin, 96 * 1024);
}

// Every backward kernel's signature (see layernorm_backward_kernel).
template <typename T>
using BackwardKernel = void (*)(const T*, const T*, const Acc<T>*, const Acc<T>*, const T*, const T*, T*, Acc<T>*,
                                int64_t, int);

// The register-resident kernel for rows of C elements when it applies (16-byte access, at most
// kMaxPacksPerLane packs per lane), else the two-sweep kernel (vector or scalar access).
template <typename T>
BackwardKernel<T> backward_kernel_for(int64_t C, bool vec, bool& in_regs) {
  constexpr int VW = kVec<T>;
  in_regs = vec && C <= int64_t(32) * VW * kMaxPacksPerLane;
  if (in_regs) {
    switch (ceil_div(C, 32 * VW)) {
      case 1: return layernorm_backward_regs_kernel<T, VW, 1>;
      case 2: return layernorm_backward_regs_kernel<T, VW, 2>;
      case 3: return layernorm_backward_regs_kernel<T, VW, 3>;
      default: return layernorm_backward_regs_kernel<T, VW, 4>;
    }
  }
  return vec ? layernorm_backward_kernel<T, VW> : layernorm_backward_kernel<T, 1>;
}

// Blocks for the register-resident kernel: at most one resident wave (more would only add partial rows
// to finish), and within that as few blocks as give every warp the same largest number of rows.
template <typename T>
int64_t regs_grid(BackwardKernel<T> kernel, int warps, size_t smem, int64_t N) {
  int per_sm = 0;
  ARIA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * warps, smem));
  const int64_t wave = int64_t(std::max(per_sm, 1)) * num_sms();
  const int64_t rows_per_warp = ceil_div(N, wave * warps);
  return std::max<int64_t>(1, ceil_div(N, rows_per_warp * warps));
}

template <typename T>
void launch_backward(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                     const TensorView& dy, const TensorView& dres, const TensorView& dx, const TensorView& dw,
                     const TensorView& db, int64_t N, int64_t C) {
  using A = Acc<T>;
  const bool want_dwdb = dw.defined() || db.defined();
  const bool vec = C % kVec<T> == 0 && aligned16(x) && aligned16(w) && aligned16(dy) && aligned16(dres) &&
                   aligned16(dx);
  bool in_regs = false;
  const BackwardKernel<T> kernel = backward_kernel_for<T>(C, vec, in_regs);
  // Warps per block: as many (up to 8) as the accumulator budget allows; 0 = rows too wide.
  const size_t per_warp = size_t(2) * size_t(acc_slots(int(C), vec ? kVec<T> : 1)) * sizeof(A);
  int warps = kRowsPerBlock;
  if (want_dwdb) warps = int(std::min<size_t>(kRowsPerBlock, accumulator_budget() / per_warp));
  const bool fused = want_dwdb && warps >= 1;
  if (!fused) warps = kRowsPerBlock;
  const size_t smem = fused ? per_warp * size_t(warps) : 0;
  if (smem > 48 * 1024)
    ARIA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  // Two-sweep kernel: enough blocks for two per SM, no more than there are rows for.
  const int64_t grid = in_regs ? regs_grid<T>(kernel, warps, smem, N)
                               : std::max<int64_t>(1, std::min<int64_t>(ceil_div(N, warps), int64_t(num_sms()) * 2));
  KernelBuffer partial;
  int64_t nparts = 0, chunk_len = 0;
  if (want_dwdb) {
    if (fused) {
      nparts = grid;
    } else {
      chunk_len = reduction_chunk_len(N, ceil_div(C, kColX), 64);
      nparts = ceil_div(N, chunk_len);
    }
    partial = KernelBuffer({nparts, 2 * C}, stat_dtype_of(x.dtype()), x.device());
  }
  if (dx.defined() || fused) {
    kernel<<<unsigned(grid), 32 * warps, smem, stream()>>>(ptr<T>(x), ptr<T>(w), ptr<A>(mean), ptr<A>(rstd),
                                                           ptr<T>(dy), ptr<T>(dres), mptr<T>(dx),
                                                           fused ? mptr<A>(partial) : nullptr, N, int(C));
    ARIA_CUDA_LAUNCH_CHECK();
  }
  if (!want_dwdb) return;
  if (!fused) {
    layernorm_dwdb_columns_kernel<T><<<dim3(unsigned(ceil_div(C, kColX)), unsigned(nparts)), dim3(kColX, kColY), 0,
                                       stream()>>>(ptr<T>(x), ptr<A>(mean), ptr<A>(rstd), ptr<T>(dy),
                                                   mptr<A>(partial), N, int(C), chunk_len);
    ARIA_CUDA_LAUNCH_CHECK();
  }
  auto finish = [&](auto tw_tag) {
    using TW = decltype(tw_tag);
    dwdb_finish_kernel<TW, A><<<unsigned(ceil_div(2 * C, kFinX)), dim3(kFinX, kFinY), 0, stream()>>>(
        ptr<A>(partial), int(nparts), int(C), mptr<TW>(dw), mptr<TW>(db));
  };
  const DType wdt = dw.defined() ? dw.dtype() : db.dtype();
  if (wdt == x.dtype()) finish(T{});
  else finish(float{});  // bf16 data with float32 dw/db (checked by the caller)
  ARIA_CUDA_LAUNCH_CHECK();
}

void backward_common(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                     const TensorView& dy, const TensorView& dres, const TensorView& dx, const TensorView& dw,
                     const TensorView& db, const char* what) {
  int64_t N, C;
  rows_of(x, what, N, C);
  const DType dt = x.dtype(), st = stat_dtype_of(dt);
  check_data(x, dt, N * C, what, "x");
  check_data(w, dt, C, what, "w");
  check_data(mean, st, N, what, "mean");
  check_data(rstd, st, N, what, "rstd");
  check_data(dy, dt, N * C, what, "dy");
  if (dres.defined()) check_data(dres, dt, N * C, what, "dres");
  if (dx.defined()) check_data(dx, dt, N * C, what, "dx");
  // dw/db: the data dtype, or float32 accumulators for bf16 data; both the same when both given.
  const DType wdt = dw.defined() ? dw.dtype() : db.defined() ? db.dtype() : dt;
  ARIA_CHECK(wdt == dt || (dt == DType::BF16 && wdt == DType::F32), what, ": dw/db must be ", dtype_name(dt),
             dt == DType::BF16 ? " or float32" : "", ", got ", dw.defined() ? dw.str() : db.str());
  if (dw.defined()) check_data(dw, wdt, C, what, "dw");
  if (db.defined()) check_data(db, wdt, C, what, "db");
  if (N == 0 || (!dx.defined() && !dw.defined() && !db.defined())) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    launch_backward<T>(x, w, mean, rstd, dy, dres, dx, dw, db, N, C);
  });
}

}  // namespace

void layernorm_forward(const TensorView& x, const TensorView& w, const TensorView& b, const TensorView& y,
                       const TensorView& mean, const TensorView& rstd, double eps) {
  forward_common(x, TensorView(), w, b, TensorView(), y, mean, rstd, eps, "layernorm_forward");
}

void add_layernorm_forward(const TensorView& x, const TensorView& r, const TensorView& w, const TensorView& b,
                           const TensorView& sum, const TensorView& y, const TensorView& mean, const TensorView& rstd,
                           double eps) {
  const char* what = "add_layernorm_forward";
  ARIA_CHECK(r.defined() && sum.defined(), what, ": r and sum must be defined");
  forward_common(x, r, w, b, sum, y, mean, rstd, eps, what);
}

void layernorm_backward(const TensorView& x, const TensorView& w, const TensorView& mean, const TensorView& rstd,
                        const TensorView& dy, const TensorView& dx, const TensorView& dw, const TensorView& db) {
  backward_common(x, w, mean, rstd, dy, TensorView(), dx, dw, db, "layernorm_backward");
}

void layernorm_backward_residual(const TensorView& x, const TensorView& w, const TensorView& mean,
                                 const TensorView& rstd, const TensorView& dy, const TensorView& dres,
                                 const TensorView& dx, const TensorView& dw, const TensorView& db) {
  const char* what = "layernorm_backward_residual";
  ARIA_CHECK(dx.defined() || !dres.defined(), what, ": dres given without dx");
  backward_common(x, w, mean, rstd, dy, dres, dx, dw, db, what);
}

}  // namespace aria::cuda
