// Argument check of the scale_by row, shared by both backends.
#pragma once
#include "aria/core/error.h"
#include "aria/core/tensor_view.h"

namespace aria {

inline void check_scale_by_args(const TensorView& x, const TensorView& s, const TensorView& out) {
  ARIA_CHECK(x.shape() == out.shape() && x.dtype() == out.dtype() && x.is_contiguous() && out.is_contiguous() &&
                 x.device() == out.device(),
             "scale_by: x and out must be contiguous with one shape, dtype and device: x ", x.str(), ", out ",
             out.str());
  ARIA_CHECK(s.numel() == 1 && (s.dtype() == DType::F32 || s.dtype() == DType::F64) && s.device() == x.device(),
             "scale_by: s must be one float32/float64 value on ", x.device().str(), ", got ", s.str());
}

}  // namespace aria
