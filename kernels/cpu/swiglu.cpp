// CPU SwiGLU (float32 / float64): out = silu(gate) * up and its backward, each in one pass. gate, up
// and their gradients are [N, H] rows with any row stride (the two halves of one [N, 2H] buffer).
#include <cmath>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"

namespace aria::cpu {

namespace {

// t is a CPU [N, H] of dtype dt with unit column stride and row stride >= H (or N == 0); returns it.
int64_t row_stride_of(const TensorView& t, int64_t N, int64_t H, DType dt, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.device().is_cpu() && t.dtype() == dt && t.dim() == 2 && t.size(0) == N && t.size(1) == H, what, ": ",
             name, " must be a ", dtype_name(dt), " CPU tensor [", N, ", ", H, "], got ", t.str());
  ARIA_CHECK(H <= 1 || t.strides()[1] == 1, what, ": ", name, " needs unit column stride, got ", t.str());
  const int64_t rs = N <= 1 ? H : t.strides()[0];
  ARIA_CHECK(rs >= H, what, ": ", name, " rows overlap (row stride ", rs, " < ", H, ")");
  return rs;
}

template <typename T>
T sigmoid(T g) {
  return T(1) / (T(1) + std::exp(-g));
}

}  // namespace

void swiglu_forward(const TensorView& gate, const TensorView& up, const TensorView& out) {
  const char* what = "swiglu_forward";
  ARIA_CHECK(gate.defined() && gate.dim() == 2, what, ": gate must be [N, H], got ",
             gate.defined() ? gate.str() : "undefined");
  const int64_t N = gate.size(0), H = gate.size(1);
  const DType dt = gate.dtype();
  const int64_t sg = row_stride_of(gate, N, H, dt, what, "gate"), su = row_stride_of(up, N, H, dt, what, "up");
  const int64_t so = row_stride_of(out, N, H, dt, what, "out");
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    const T *pg = gate.data<T>(), *pu = up.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (N * H >= kParallelMin)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const T g = pg[n * sg + h];
        po[n * so + h] = g * sigmoid(g) * pu[n * su + h];
      }
  });
}

void swiglu_backward(const TensorView& gate, const TensorView& up, const TensorView& dout, const TensorView& dgate,
                     const TensorView& dup) {
  const char* what = "swiglu_backward";
  ARIA_CHECK(gate.defined() && gate.dim() == 2, what, ": gate must be [N, H], got ",
             gate.defined() ? gate.str() : "undefined");
  const int64_t N = gate.size(0), H = gate.size(1);
  const DType dt = gate.dtype();
  const int64_t sg = row_stride_of(gate, N, H, dt, what, "gate"), su = row_stride_of(up, N, H, dt, what, "up");
  const int64_t sd = row_stride_of(dout, N, H, dt, what, "dout");
  const int64_t sdg = dgate.defined() ? row_stride_of(dgate, N, H, dt, what, "dgate") : 0;
  const int64_t sdu = dup.defined() ? row_stride_of(dup, N, H, dt, what, "dup") : 0;
  dispatch_float(dt, what, [&](auto tag) {
    using T = decltype(tag);
    const T *pg = gate.data<T>(), *pu = up.data<T>(), *pd = dout.data<T>();
    T* pdg = dgate.defined() ? dgate.data<T>() : nullptr;
    T* pdu = dup.defined() ? dup.data<T>() : nullptr;
#pragma omp parallel for schedule(static) if (N * H >= kParallelMin)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const T g = pg[n * sg + h], u = pu[n * su + h], d = pd[n * sd + h];
        const T s = sigmoid(g);
        // read everything first: dgate/dup may be the buffer gate/up live in
        if (pdg) pdg[n * sdg + h] = d * u * (s * (T(1) + g * (T(1) - s)));
        if (pdu) pdu[n * sdu + h] = d * (g * s);
      }
  });
}

}  // namespace aria::cpu
