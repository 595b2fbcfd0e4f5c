// out = x * s[0] on the CPU (see kernels/kernel_list.h).
#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"
#include "aria/kernels/scale_by_check.h"

namespace aria::cpu {

void scale_by(const TensorView& x, const TensorView& s, const TensorView& out) {
  check_scale_by_args(x, s, out);
  const double k = s.dtype() == DType::F64 ? *s.data<double>() : double(*s.data<float>());
  dispatch_float(x.dtype(), "scale_by", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const int64_t n = x.numel();
    const T kt = T(k);
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) po[i] = px[i] * kt;
  });
}

}  // namespace aria::cpu
