// Input checks shared by core/ops_*.cpp (internal to the op layer).
#pragma once
#include "aria/core/tensor.h"

namespace aria::ops::detail {

// Ops compute in float32 or float64 on every device, and in bfloat16 (fp32 math inside the kernels)
// on CUDA. bfloat16 on the CPU is refused: the CPU is the float32/float64 reference.
inline void check_float(const Tensor& t, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  const DType d = t.dtype();
  if (d == DType::F32 || d == DType::F64 || (d == DType::BF16 && t.device().is_cuda())) return;
  if (d == DType::BF16)
    ARIA_FAIL(what, ": ", name, " is bfloat16 on the CPU (", t.str(),
              "); bfloat16 compute runs on CUDA only, use float32 on the CPU");
  ARIA_FAIL(what, ": ", name, " must be float32 or float64 (or bfloat16 on CUDA), got ", t.str());
}

inline void check_float(const Tensor& t, const char* what) { check_float(t, what, "x"); }

inline void check_ints(const Tensor& t, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.dtype() == DType::I32, what, ": ", name, " must be int32, got ", t.str());
}

inline void check_pair(const Tensor& a, const Tensor& b, const char* what) {
  ARIA_CHECK(a.dtype() == b.dtype(), what, ": dtypes differ: ", a.str(), " vs ", b.str());
  check_same_device(a, b, what);
}

// Saved statistics (mean, rstd, lse, per-row losses) are float32, except float64 for float64
// inputs so that float64 gradient checks stay exact.
inline DType stat_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

// Number of targets != ignore_index; any other target outside [0, V) is an error naming its
// position. Answered from the host's summary of uploaded targets when it settles the question
// (no device read); otherwise reads the targets on the host (core/ops_nn.cpp).
int64_t count_valid_targets(const Tensor& targets, int64_t V, int ignore_index, const char* what);
// Every id in [0, V), else an error naming the first bad position; same summary shortcut.
void check_ids_in_range(const Tensor& ids, int64_t V, const char* what);

// The wider of two float dtypes (bfloat16 < float32 < float64).
inline DType promote(DType a, DType b) {
  auto rank = [](DType t) { return t == DType::F64 ? 2 : t == DType::F32 ? 1 : 0; };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace aria::ops::detail
