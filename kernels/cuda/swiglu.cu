// SwiGLU on CUDA: out = silu(gate) * up forward, dgate and dup backward, one elementwise kernel each
// (float32, float64, bfloat16 storage; fp32 math for bfloat16). gate, up and the gradients are [N, H]
// rows with any row stride (the two halves of one [N, 2H] GEMM output); 16-byte packs when every
// row stride, H and pointer allow.
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

__device__ __forceinline__ float sigmoid_of(float g) { return 1.f / (1.f + __expf(-g)); }
__device__ __forceinline__ double sigmoid_of(double g) { return 1.0 / (1.0 + exp(-g)); }

struct Strides {
  int64_t gate, up, a, b;  // row strides: gate, up and the two outputs (out | dout, dgate, dup)
};

template <typename T, int VW>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                      int64_t N, int64_t H, Strides s) {
  using A = Acc<T>;
  const int64_t packs_per_row = H / VW, total = N * packs_per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / packs_per_row, h = (i - n * packs_per_row) * VW;
    A g[VW], u[VW], o[VW];
    load_pack<T, VW>(gate + n * s.gate + h, g);
    load_pack<T, VW>(up + n * s.up + h, u);
#pragma unroll
    for (int k = 0; k < VW; ++k) o[k] = g[k] * sigmoid_of(g[k]) * u[k];
    store_pack<T, VW>(out + n * s.a + h, o);
  }
}

// s.a: dout's row stride, s.b: dgate's (dup's is passed separately).
template <typename T, int VW>
__global__ void swiglu_backward_kernel(const T* gate, const T* up, const T* __restrict__ dout, T* dgate, T* dup,
                                       int64_t N, int64_t H, Strides s, int64_t sdup) {
  using A = Acc<T>;
  const int64_t packs_per_row = H / VW, total = N * packs_per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / packs_per_row, h = (i - n * packs_per_row) * VW;
    A g[VW], u[VW], d[VW], dg[VW], du[VW];
    load_pack<T, VW>(gate + n * s.gate + h, g);  // all loads before any store: dgate/dup may alias gate/up
    load_pack<T, VW>(up + n * s.up + h, u);
    load_pack<T, VW>(dout + n * s.a + h, d);
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      const A sg = sigmoid_of(g[k]);
      dg[k] = d[k] * u[k] * (sg * (A(1) + g[k] * (A(1) - sg)));
      du[k] = d[k] * (g[k] * sg);
    }
    if (dgate) store_pack<T, VW>(dgate + n * s.b + h, dg);
    if (dup) store_pack<T, VW>(dup + n * sdup + h, du);
  }
}

// t is a CUDA [N, H] of dtype dt with unit column stride and row stride >= H; returns the row stride.
int64_t row_stride_of(const TensorView& t, int64_t N, int64_t H, DType dt, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cuda() && t.dtype() == dt && t.dim() == 2 && t.size(0) == N && t.size(1) == H, what,
             ": ", name, " must be a ", dtype_name(dt), " CUDA tensor [", N, ", ", H, "], got ", t.str());
  ARIA_CHECK(H <= 1 || t.strides()[1] == 1, what, ": ", name, " needs unit column stride, got ", t.str());
  const int64_t rs = N <= 1 ? H : t.strides()[0];
  ARIA_CHECK(rs >= H, what, ": ", name, " rows overlap (row stride ", rs, " < ", H, ")");
  return rs;
}

// 16-byte packs apply when H and every row stride are multiples of the pack and every pointer is aligned.
template <typename T>
bool packs_fit(int64_t H, std::initializer_list<int64_t> strides, std::initializer_list<const TensorView*> ts) {
  constexpr int VW = kVec<T>;
  if (H % VW) return false;
  for (int64_t s : strides)
    if (s % VW) return false;
  for (const TensorView* t : ts)
    if (t->defined() && !aligned16(t->raw_data())) return false;
  return true;
}

template <typename T>
T* mptr(const TensorView& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

}  // namespace

void swiglu_forward(const TensorView& gate, const TensorView& up, const TensorView& out) {
  const char* what = "swiglu_forward";
  ARIA_CHECK(gate.defined() && gate.dim() == 2, what, ": gate must be [N, H], got ",
             gate.defined() ? gate.str() : "undefined");
  const int64_t N = gate.size(0), H = gate.size(1);
  const DType dt = gate.dtype();
  const Strides s{row_stride_of(gate, N, H, dt, what, "gate"), row_stride_of(up, N, H, dt, what, "up"),
                  row_stride_of(out, N, H, dt, what, "out"), 0};
  if (N * H == 0) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    constexpr int VW = kVec<T>;
    const bool vec = packs_fit<T>(H, {s.gate, s.up, s.a}, {&gate, &up, &out});
    const int block = 256;
    const unsigned grid = grid_for(vec ? N * H / VW : N * H, block);
    if (vec)
      swiglu_forward_kernel<T, VW><<<grid, block, 0, stream()>>>(mptr<T>(gate), mptr<T>(up), mptr<T>(out), N, H, s);
    else
      swiglu_forward_kernel<T, 1><<<grid, block, 0, stream()>>>(mptr<T>(gate), mptr<T>(up), mptr<T>(out), N, H, s);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void swiglu_backward(const TensorView& gate, const TensorView& up, const TensorView& dout, const TensorView& dgate,
                     const TensorView& dup) {
  const char* what = "swiglu_backward";
  ARIA_CHECK(gate.defined() && gate.dim() == 2, what, ": gate must be [N, H], got ",
             gate.defined() ? gate.str() : "undefined");
  const int64_t N = gate.size(0), H = gate.size(1);
  const DType dt = gate.dtype();
  const Strides s{row_stride_of(gate, N, H, dt, what, "gate"), row_stride_of(up, N, H, dt, what, "up"),
                  row_stride_of(dout, N, H, dt, what, "dout"),
                  dgate.defined() ? row_stride_of(dgate, N, H, dt, what, "dgate") : 0};
  const int64_t sdup = dup.defined() ? row_stride_of(dup, N, H, dt, what, "dup") : 0;
  if (N * H == 0 || (!dgate.defined() && !dup.defined())) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    constexpr int VW = kVec<T>;
    const bool vec = packs_fit<T>(H, {s.gate, s.up, s.a, s.b, sdup}, {&gate, &up, &dout, &dgate, &dup});
    const int block = 256;
    const unsigned grid = grid_for(vec ? N * H / VW : N * H, block);
    auto go = [&](auto kernel) {
      kernel<<<grid, block, 0, stream()>>>(mptr<T>(gate), mptr<T>(up), mptr<T>(dout), mptr<T>(dgate), mptr<T>(dup),
                                           N, H, s, sdup);
    };
    if (vec) go(swiglu_backward_kernel<T, VW>);
    else go(swiglu_backward_kernel<T, 1>);
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace aria::cuda
