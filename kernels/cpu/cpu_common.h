// Helpers shared by the CPU kernel files (kernels/cpu/*.cpp).
#pragma once
#include <cstdint>

#include "aria/core/dtype.h"
#include "aria/core/error.h"

namespace aria::cpu {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which OpenMP is not worth starting

// Calls f(T{}) with T = float or double for the dtype; anything else (bfloat16 included: the CPU
// computes in float32/float64 only) is an error naming `what`.
template <typename F>
void dispatch_float(DType t, const char* what, F&& f) {
  if (t == DType::F32) return f(float{});
  if (t == DType::F64) return f(double{});
  ARIA_FAIL(what, ": the CPU kernel supports float32 and float64, got ", dtype_name(t));
}

}  // namespace aria::cpu
