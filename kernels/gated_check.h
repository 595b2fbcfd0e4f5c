// The argument rules of the gate_mix_*, gate_head_* and spc_penalty_grad rows (kernels/kernel_list.h),
// one copy for the CPU kernels (kernels/cpu/gated.cpp) and the CUDA ones (kernels/cuda/gated.cu), so
// that both refuse the same calls with the same messages. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor_view.h"

namespace aria {

// t: defined, dtype `dt`, like's device, contiguous, `numel` elements. `cuda`: the backend's device kind.
inline void check_gated_operand_as(const TensorView& t, const TensorView& like, DType dt, int64_t numel, bool cuda,
                                   const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
  ARIA_CHECK(t.dtype() == dt, what, ": ", name, " ", t.str(), " must have dtype ", dtype_name(dt));
  ARIA_CHECK(t.device() == like.device() && t.device().is_cuda() == cuda && t.is_contiguous() && t.numel() == numel,
             what, ": ", name, " must be a contiguous ", cuda ? "CUDA tensor on " + like.device().str() : "CPU tensor",
             " with ", numel, " elements, got ", t.str());
}

// t: defined, like's dtype and device, contiguous, `numel` elements.
inline void check_gated_operand(const TensorView& t, const TensorView& like, int64_t numel, bool cuda, const char* what,
                                const char* name) {
  check_gated_operand_as(t, like, like.dtype(), numel, cuda, what, name);
}

// The dtype of the gate's saved logits for data of dtype `data`: float32, float64 for float64 data.
inline DType gate_logit_dtype(DType data) { return data == DType::F64 ? DType::F64 : DType::F32; }

// Rows [N, C] of a gate mix (C = slow.size(-1)) or of the gate's head (C = h.size(-1)).
struct GateRows {
  int64_t N = 0, C = 0;
};

// t viewed as rows of its last dimension (`name` in the error when t is not at least 1-D).
inline GateRows gate_rows_of(const TensorView& t, const char* what, const char* name) {
  ARIA_CHECK(t.defined() && t.dim() >= 1, what, ": ", name, " must be [N, C], got ", t.defined() ? t.str() : "undefined");
  GateRows r;
  r.C = t.size(-1);
  r.N = 1;
  for (int d = 0; d + 1 < t.dim(); ++d) r.N *= t.size(d);
  ARIA_CHECK(r.C < INT32_MAX / 2, what, ": rows of ", r.C, " elements are too long");
  return r;
}

// A gate mix's rows: slow and fast [N, C] with C = slow.size(-1); pi must hold N values.
inline GateRows check_gate_rows(const TensorView& slow, const TensorView& fast, const TensorView& pi, bool cuda,
                                const char* what) {
  const GateRows r = gate_rows_of(slow, what, "slow");
  check_gated_operand(slow, slow, r.N * r.C, cuda, what, "slow");
  check_gated_operand(fast, slow, r.N * r.C, cuda, what, "fast");
  check_gated_operand(pi, slow, r.N, cuda, what, "pi");
  return r;
}

// gate_mix_forward's operands; `out` like slow.
inline GateRows check_gate_mix_forward(const TensorView& slow, const TensorView& fast, const TensorView& pi,
                                       const TensorView& out, bool cuda) {
  const char* what = "gate_mix_forward";
  const GateRows r = check_gate_rows(slow, fast, pi, cuda, what);
  check_gated_operand(out, slow, r.N * r.C, cuda, what, "out");
  return r;
}

// gate_mix_backward's operands; each output may be undefined (not wanted).
inline GateRows check_gate_mix_backward(const TensorView& slow, const TensorView& fast, const TensorView& pi,
                                        const TensorView& dout, const TensorView& dslow, const TensorView& dfast,
                                        const TensorView& dpi, bool cuda) {
  const char* what = "gate_mix_backward";
  const GateRows r = check_gate_rows(slow, fast, pi, cuda, what);
  check_gated_operand(dout, slow, r.N * r.C, cuda, what, "dout");
  if (dslow.defined()) check_gated_operand(dslow, slow, r.N * r.C, cuda, what, "dslow");
  if (dfast.defined()) check_gated_operand(dfast, slow, r.N * r.C, cuda, what, "dfast");
  if (dpi.defined()) check_gated_operand(dpi, slow, r.N, cuda, what, "dpi");
  return r;
}

// Rows [N, C] of the gate's head: C = h.size(-1), N rows; w2 holds C values.
inline GateRows check_gate_head_rows(const TensorView& h, const TensorView& w2, bool cuda, const char* what) {
  const GateRows r = gate_rows_of(h, what, "h");
  check_gated_operand(h, h, r.N * r.C, cuda, what, "h");
  check_gated_operand(w2, h, r.C, cuda, what, "w2");
  return r;
}

// gate_head_forward's operands: b2 one value, pi N; logit (N values) may be undefined.
inline GateRows check_gate_head_forward(const TensorView& h, const TensorView& w2, const TensorView& b2,
                                        const TensorView& pi, const TensorView& logit, bool cuda) {
  const char* what = "gate_head_forward";
  const GateRows r = check_gate_head_rows(h, w2, cuda, what);
  check_gated_operand(b2, h, 1, cuda, what, "b2");
  check_gated_operand(pi, h, r.N, cuda, what, "pi");
  if (logit.defined()) check_gated_operand_as(logit, h, gate_logit_dtype(h.dtype()), r.N, cuda, what, "logit");
  return r;
}

// gate_head_backward's operands; each output may be undefined (not wanted).
inline GateRows check_gate_head_backward(const TensorView& h, const TensorView& w2, const TensorView& logit,
                                         const TensorView& dpi, const TensorView& dh, const TensorView& dw2,
                                         const TensorView& db2, bool cuda) {
  const char* what = "gate_head_backward";
  const GateRows r = check_gate_head_rows(h, w2, cuda, what);
  check_gated_operand_as(logit, h, gate_logit_dtype(h.dtype()), r.N, cuda, what, "logit");
  check_gated_operand(dpi, h, r.N, cuda, what, "dpi");
  if (dh.defined()) check_gated_operand(dh, h, r.N * r.C, cuda, what, "dh");
  if (dw2.defined()) check_gated_operand(dw2, h, r.C, cuda, what, "dw2");
  if (db2.defined()) check_gated_operand(db2, h, 1, cuda, what, "db2");
  return r;
}

// The dtype spc_penalty_grad's As and Bs may have for grads of dtype `grad`: the grads' own, or
// float32 for bfloat16 grads (the mixed-precision trainer's float32 SPC buffers).
inline bool spc_buffer_dtype_ok(DType buffer, DType grad) {
  return buffer == grad || (grad == DType::BF16 && buffer == DType::F32);
}

// spc_penalty_grad's operands: four lists of one length; As[k], ps[k], Bs[k] of grads[k]'s shape;
// every tensor on grads[0]'s device; grads and ps of grads[0]'s dtype, As and Bs of As[0]'s dtype,
// which is grads[0]'s or float32 for bfloat16 grads. An error names the list entry ("(entry 3 of
// 196)"), added on the error path only (this runs for every parameter at every step). Returns the
// total element count.
inline int64_t check_spc_penalty_grad(const std::vector<TensorView>& grads, const std::vector<TensorView>& As,
                                      const std::vector<TensorView>& ps, const std::vector<TensorView>& Bs, bool cuda) {
  const char* what = "spc_penalty_grad";
  ARIA_CHECK(As.size() == grads.size() && ps.size() == grads.size() && Bs.size() == grads.size(), what, ": ",
             grads.size(), " grads but ", As.size(), " As, ", ps.size(), " ps and ", Bs.size(), " Bs");
  int64_t total = 0;
  for (size_t k = 0; k < grads.size(); ++k) {
    const TensorView& grad = grads[k];
    try {
      ARIA_CHECK(grad.defined(), what, ": grad is undefined");
      const int64_t n = grad.numel();
      check_gated_operand(grad, grads[0], n, cuda, what, "grad");  // one dtype and device per call
      // float32 buffers with bfloat16 grads when As[0] is float32; else every tensor of the grads' dtype
      const DType buffer = As[0].defined() && spc_buffer_dtype_ok(As[0].dtype(), grad.dtype()) ? As[0].dtype()
                                                                                               : grad.dtype();
      const std::pair<const TensorView*, const char*> operands[] = {{&As[k], "A"}, {&ps[k], "p"}, {&Bs[k], "B"}};
      for (const auto& [t, name] : operands) {
        check_gated_operand_as(*t, grad, t == &ps[k] ? grad.dtype() : buffer, n, cuda, what, name);
        ARIA_CHECK(t->shape() == grad.shape(), what, ": ", name, " ", t->str(), " and grad ", grad.str(),
                   " must have the same shape");
      }
      total += n;
    } catch (const Error& e) {
      ARIA_FAIL(e.what(), " (entry ", k, " of ", grads.size(), ")");
    }
  }
  return total;
}

}  // namespace aria
