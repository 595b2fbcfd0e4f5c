// Argument check of the count_correct row, shared by both backends (label values are checked by
// the CPU kernel only: the GPU cannot read them without a host sync).
#pragma once
#include <cstdint>

#include "aria/core/error.h"
#include "aria/core/tensor_view.h"

namespace aria {

inline void check_count_correct_args(const TensorView& logits, const TensorView& labels, const TensorView& out) {
  ARIA_CHECK(logits.defined() && labels.defined() && out.defined(),
             "count_correct: logits, labels and out must be defined");
  ARIA_CHECK(logits.dim() == 2 && logits.is_contiguous(), "count_correct: logits must be a contiguous [N, C], got ",
             logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  ARIA_CHECK(C >= 1 && C <= INT32_MAX, "count_correct: logits need 1 to 2^31 - 1 classes, got ", logits.str());
  ARIA_CHECK(logits.dtype() == DType::F32 || logits.dtype() == DType::F64 || logits.dtype() == DType::BF16,
             "count_correct: logits must be float32 or float64 (or bfloat16 on CUDA), got ", logits.str());
  ARIA_CHECK(labels.dtype() == DType::I32 && labels.dim() == 1 && labels.numel() == N && labels.is_contiguous(),
             "count_correct: labels must be a contiguous int32 [", N, "] for logits ", logits.str(), ", got ",
             labels.str());
  ARIA_CHECK(out.dtype() == DType::F64 && out.numel() == 1,
             "count_correct: out must be one float64 value ([1]), got ", out.str());
  ARIA_CHECK(labels.device() == logits.device() && out.device() == logits.device(),
             "count_correct: logits, labels and out must be on one device: logits ", logits.str(), ", labels ",
             labels.str(), ", out ", out.str());
}

}  // namespace aria
