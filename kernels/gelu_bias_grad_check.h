// The argument rules of the gelu_backward_bias_grad row (kernels/kernel_list.h), one copy for the
// CPU kernel (kernels/cpu/elementwise.cpp) and the CUDA one (kernels/cuda/elementwise.cu), so that
// both refuse the same calls with the same messages. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cstdint>

#include "aria/core/error.h"
#include "aria/core/tensor_view.h"

namespace aria {

// pre viewed as R rows of C = pre.size(-1).
struct GeluBiasGradRows {
  int64_t R = 0, C = 0;
};

// pre, dh, dpre: one shape (at least 1-D), dtype and device, contiguous; db: C = pre.size(-1)
// contiguous elements of that dtype on that device. `cuda`: the backend's device kind.
inline GeluBiasGradRows check_gelu_backward_bias_grad_args(const TensorView& pre, const TensorView& dh,
                                                           const TensorView& dpre, const TensorView& db, bool cuda) {
  const char* what = "gelu_backward_bias_grad";
  ARIA_CHECK(pre.defined() && dh.defined() && dpre.defined() && db.defined(), what,
             ": pre, dh, dpre and db must all be defined");
  ARIA_CHECK(pre.dim() >= 1, what, ": pre must be [R, C], got ", pre.str());
  ARIA_CHECK(pre.device().is_cuda() == cuda, what, ": pre ", pre.str(), " must be a ", cuda ? "CUDA" : "CPU",
             " tensor");
  for (const TensorView* t : {&dh, &dpre}) {
    ARIA_CHECK(t->shape() == pre.shape() && t->dtype() == pre.dtype() && t->device() == pre.device(), what,
               ": pre, dh and dpre must have one shape, dtype and device: pre ", pre.str(), ", got ", t->str());
  }
  ARIA_CHECK(pre.is_contiguous() && dh.is_contiguous() && dpre.is_contiguous(), what,
             ": pre, dh and dpre must be contiguous");
  GeluBiasGradRows rows;
  rows.C = pre.size(-1);
  rows.R = rows.C ? pre.numel() / rows.C : 0;
  ARIA_CHECK(db.numel() == rows.C && db.dtype() == pre.dtype() && db.device() == pre.device() && db.is_contiguous(),
             what, ": db must be ", rows.C, " contiguous elements of ", pre.str(), "'s dtype and device, got ",
             db.str());
  return rows;
}

}  // namespace aria
