// Rotary position embeddings on CUDA (float32, float64, bfloat16 data; fp32 math for bfloat16): the
// cos/sin tables (double-precision sincos of the float32 angle, so that fast math's approximate
// sin/cos never see the large angles of late positions) and their application, one thread per rotated
// pair (j, j + D/2) of a head, the unrotated columns copied by the same grid.
#include "aria/kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

// Items of a row: n_rot * half rotated pairs, then W - n_rot * D copied columns (none when y is x).
template <typename T>
__global__ void rope_apply_kernel(const T* x, const Acc<T>* __restrict__ cos, const Acc<T>* __restrict__ sin, T* y,
                                  int64_t R, int64_t W, int64_t P, int n_rot, int half, int64_t copy_cols,
                                  Acc<T> sign) {
  using A = Acc<T>;
  const int64_t pairs = int64_t(n_rot) * half, per_row = pairs + copy_cols, total = R * per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, k = i - r * per_row;
    const T* xr = x + r * W;
    T* yr = y + r * W;
    if (k < pairs) {
      const int64_t h = k / half, j = k - h * half;
      const int64_t a = h * 2 * half + j, b = a + half;
      const A x1 = load(xr + a), x2 = load(xr + b);
      const A c = cos[(r % P) * half + j], s = sign * sin[(r % P) * half + j];
      store(yr + a, A(x1 * c - x2 * s));
      store(yr + b, A(x2 * c + x1 * s));
    } else {
      const int64_t col = 2 * pairs + (k - pairs);
      yr[col] = xr[col];
    }
  }
}

template <typename T>
__global__ void rope_table_kernel(const int32_t* __restrict__ positions, const T* __restrict__ inv_freq,
                                  T* __restrict__ cos, T* __restrict__ sin, int64_t P, int64_t half) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < P * half; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i / half, j = i - p * half;
    double angle;
    if constexpr (sizeof(T) == sizeof(float)) angle = double(__fmul_rn(float(positions[p]), inv_freq[j]));
    else angle = __dmul_rn(double(positions[p]), inv_freq[j]);
    double s, c;
    ::sincos(angle, &s, &c);
    cos[i] = T(c);
    sin[i] = T(s);
  }
}

void check_cuda(const TensorView& t, DType dt, const Shape& shape, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cuda() && t.is_contiguous() && t.dtype() == dt && t.shape() == shape, what, ": ", name,
             " must be a contiguous ", dtype_name(dt), " CUDA tensor ", shape_str(shape), ", got ", t.str());
}

}  // namespace

void rope_apply(const TensorView& x, const TensorView& cos, const TensorView& sin, const TensorView& y, int n_rot,
                int head_dim, bool inverse) {
  const char* what = "rope_apply";
  ARIA_CHECK(x.defined() && x.dim() == 2 && x.is_contiguous() && x.device().is_cuda(), what,
             ": x must be a contiguous CUDA [R, W], got ", x.defined() ? x.str() : "undefined");
  const int64_t R = x.size(0), W = x.size(1);
  ARIA_CHECK(head_dim > 0 && head_dim % 2 == 0, what, ": head_dim must be even and positive, got ", head_dim);
  ARIA_CHECK(n_rot >= 0 && int64_t(n_rot) * head_dim <= W, what, ": ", n_rot, " rotated heads of ", head_dim,
             " columns do not fit rows of ", W);
  const DType dt = x.dtype(), tdt = dt == DType::F64 ? DType::F64 : DType::F32;
  const int half = head_dim / 2;
  ARIA_CHECK(cos.defined() && cos.dim() == 2 && cos.size(1) == half && cos.size(0) > 0, what,
             ": cos must be [P, ", half, "], got ", cos.defined() ? cos.str() : "undefined");
  const int64_t P = cos.size(0);
  check_cuda(cos, tdt, {P, half}, what, "cos");
  check_cuda(sin, tdt, {P, half}, what, "sin");
  check_cuda(y, dt, {R, W}, what, "y");
  ARIA_CHECK(R % P == 0, what, ": ", R, " rows are not a multiple of the table's ", P, " positions");
  const int64_t copy_cols = y.raw_data() == x.raw_data() ? 0 : W - int64_t(n_rot) * head_dim;
  const int64_t total = R * (int64_t(n_rot) * half + copy_cols);
  if (total == 0) return;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    rope_apply_kernel<T><<<grid_for(total, 256), 256, 0, stream()>>>(
        dptr<T>(x), dptr<A>(cos), dptr<A>(sin), dptr<T>(y), R, W, P, n_rot, half, copy_cols, inverse ? A(-1) : A(1));
    ARIA_CUDA_LAUNCH_CHECK();
  });
}

void rope_table(const TensorView& positions, const TensorView& inv_freq, const TensorView& cos, const TensorView& sin) {
  const char* what = "rope_table";
  ARIA_CHECK(positions.defined() && positions.dtype() == DType::I32 && positions.dim() == 1 &&
                 positions.is_contiguous() && positions.device().is_cuda(),
             what, ": positions must be a contiguous int32 CUDA [P], got ",
             positions.defined() ? positions.str() : "undefined");
  ARIA_CHECK(inv_freq.defined() && inv_freq.dim() == 1 && inv_freq.size(0) > 0, what,
             ": inv_freq must be [D/2], got ", inv_freq.defined() ? inv_freq.str() : "undefined");
  const int64_t P = positions.size(0), half = inv_freq.size(0);
  const DType dt = inv_freq.dtype();
  ARIA_CHECK(dt == DType::F32 || dt == DType::F64, what, ": inv_freq must be float32 or float64, got ",
             inv_freq.str());
  check_cuda(inv_freq, dt, {half}, what, "inv_freq");
  check_cuda(cos, dt, {P, half}, what, "cos");
  check_cuda(sin, dt, {P, half}, what, "sin");
  if (P == 0) return;
  auto go = [&](auto tag) {
    using T = decltype(tag);
    rope_table_kernel<T><<<grid_for(P * half, 256), 256, 0, stream()>>>(dptr<int32_t>(positions), dptr<T>(inv_freq),
                                                                       dptr<T>(cos), dptr<T>(sin), P, half);
  };
  if (dt == DType::F32) go(float{});
  else go(double{});
  ARIA_CUDA_LAUNCH_CHECK();
}

}  // namespace aria::cuda
