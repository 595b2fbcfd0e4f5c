// The argument rules of the gate_mix_* and spc_penalty_grad rows (kernels/kernel_list.h), one copy
// for the CPU kernels (kernels/cpu/gated.cpp) and the CUDA ones (kernels/cuda/gated.cu), so that both
// refuse the same calls with the same messages. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cstdint>
#include <string>
#include <utility>

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

// gate_mix_forward's operands; `out` like slow.
inline GateRows check_gate_mix_forward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& out,
                                       bool cuda) {
  const char* what = "gate_mix_forward";
  const GateRows r = check_gate_rows(slow, fast, pi, cuda, what);
  check_gated_operand(out, slow, r.N * r.C, cuda, what, "out");
  return r;
}

// gate_mix_backward's operands; each output may be undefined (not wanted).
inline GateRows check_gate_mix_backward(const Tensor& slow, const Tensor& fast, const Tensor& pi, const Tensor& dout,
                                        const Tensor& dslow, const Tensor& dfast, const Tensor& dpi, bool cuda) {
  const char* what = "gate_mix_backward";
  const GateRows r = check_gate_rows(slow, fast, pi, cuda, what);
  check_gated_operand(dout, slow, r.N * r.C, cuda, what, "dout");
  if (dslow.defined()) check_gated_operand(dslow, slow, r.N * r.C, cuda, what, "dslow");
  if (dfast.defined()) check_gated_operand(dfast, slow, r.N * r.C, cuda, what, "dfast");
  if (dpi.defined()) check_gated_operand(dpi, slow, r.N, cuda, what, "dpi");
  return r;
}

// spc_penalty_grad's operands: A, p, B of grad's shape, dtype and device. Returns the element count.
inline int64_t check_spc_penalty_grad(const Tensor& grad, const Tensor& A, const Tensor& p, const Tensor& B,
                                      bool cuda) {
  const char* what = "spc_penalty_grad";
  ARIA_CHECK(grad.defined(), what, ": grad is undefined");
  const int64_t n = grad.numel();
  check_gated_operand(grad, grad, n, cuda, what, "grad");
  const std::pair<const Tensor*, const char*> operands[] = {{&A, "A"}, {&p, "p"}, {&B, "B"}};
  for (const auto& [t, name] : operands) {
    check_gated_operand(*t, grad, n, cuda, what, name);
    ARIA_CHECK(t->shape() == grad.shape(), what, ": ", name, " ", t->str(), " and grad ", grad.str(),
               " must have the same shape");
  }
  return n;
}

}  // namespace aria
