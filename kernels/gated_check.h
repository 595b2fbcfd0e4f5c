// The argument rules of the gate_mix_* and spc_penalty_grad rows (kernels/kernel_list.h), one copy
// for the CPU kernels (kernels/cpu/gated.cpp) and the CUDA ones (kernels/cuda/gated.cu), so that both
// refuse the same calls with the same messages. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace aria {

// t: defined, like's dtype and device, contiguous, `numel` elements. `cuda`: the backend's device kind.
inline void check_gated_operand(const Tensor& t, const Tensor& like, int64_t numel, bool cuda, const char* what,
                                const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.dtype() == like.dtype(), what, ": ", name, " ", t.str(), " must have dtype ", dtype_name(like.dtype()));
  ARIA_CHECK(t.device() == like.device() && t.device().is_cuda() == cuda && t.is_contiguous() && t.numel() == numel,
             what, ": ", name, " must be a contiguous ", cuda ? "CUDA tensor on " + like.device().str() : "CPU tensor",
             " with ", numel, " elements, got ", t.str());
}

// Rows [N, C] of a gate mix: C = slow.size(-1), N rows; pi must hold N values.
struct GateRows {
  int64_t N = 0, C = 0;
};

inline GateRows check_gate_rows(const Tensor& slow, const Tensor& fast, const Tensor& pi, bool cuda, const char* what) {
  ARIA_CHECK(slow.defined() && slow.dim() >= 1, what, ": slow must be [N, C], got ",
             slow.defined() ? slow.str() : "undefined");
  GateRows r;
  r.C = slow.size(-1);
  r.N = 1;
  for (int d = 0; d + 1 < slow.dim(); ++d) r.N *= slow.size(d);
  ARIA_CHECK(r.C < INT32_MAX / 2, what, ": rows of ", r.C, " elements are too long");
  check_gated_operand(slow, slow, r.N * r.C, cuda, what, "slow");
  check_gated_operand(fast, slow, r.N * r.C, cuda, what, "fast");
  check_gated_operand(pi, slow, r.N, cuda, what, "pi");
  return r;
}

}  // namespace aria
