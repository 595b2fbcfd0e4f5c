// AdamW's clipping on the device (AdamWItemView::clip_sumsq), one copy for the CPU kernel
// (kernels/cpu/optimizer.cpp) and the CUDA one (kernels/cuda/optimizer.cu): the argument rule, so that
// both refuse the same calls with the same messages, and the gradient multiplier, so that both clip
// with the same arithmetic. Plain C++ (it is compiled by nvcc too).
#pragma once
#include <cmath>
#include <vector>

#include "aria/kernels/backend.h"

#ifndef ARIA_HOST_DEVICE
#ifdef __CUDACC__
#define ARIA_HOST_DEVICE __host__ __device__
#else
#define ARIA_HOST_DEVICE
#endif
#endif

namespace aria {

// The clipping source of one adamw_update call: undefined when no item clips, else the one float64
// [1] tensor every item names (same storage), on the items' device of the backend's kind (`cuda`).
// Throws naming the first item that breaks the rule; a mix of clipped and unclipped items is refused
// (a skipped step must skip every item, or the parameters would drift apart).
inline TensorView check_adamw_clip(const std::vector<AdamWItemView>& items, bool cuda) {
  const char* what = "adamw_update";
  if (items.empty() || !items[0].clip_sumsq.defined()) {
    for (size_t i = 0; i < items.size(); ++i)
      ARIA_CHECK(!items[i].clip_sumsq.defined(), what, ": item ", i,
                 " has a clip_sumsq tensor but item 0 has none; every item of a call shares one (or none)");
    return TensorView();
  }
  const TensorView& clip = items[0].clip_sumsq;
  ARIA_CHECK(clip.dtype() == DType::F64 && clip.numel() == 1 && clip.device().is_cuda() == cuda, what,
             ": clip_sumsq must be a float64 [1] ", cuda ? "CUDA" : "CPU", " tensor (the sum of squares of the "
             "gradients), got ", clip.str());
  for (size_t i = 0; i < items.size(); ++i) {
    const AdamWItemView& it = items[i];
    ARIA_CHECK(it.clip_sumsq.defined() && it.clip_sumsq.raw_data() == clip.raw_data(), what, ": item ", i,
               " does not share item 0's clip_sumsq tensor ", clip.str(), "; every item of a call shares one");
    ARIA_CHECK(std::isfinite(it.clip_max_norm), what, ": item ", i, " has a non-finite clip_max_norm (",
               it.clip_max_norm, ")");
    ARIA_CHECK(!it.param.defined() || it.param.device() == clip.device(), what, ": clip_sumsq ", clip.str(),
               " is not on item ", i, "'s device (param ", it.param.str(), ")");
  }
  return clip;
}

// The gradient multiplier of a clipped item: grad_scale * (max_norm / norm when norm > max_norm > 0,
// else 1), in double, rounded to float once (as AdamW::step's host-computed grad_scale was). norm is
// finite (a non-finite norm skips the step before this is asked).
ARIA_HOST_DEVICE inline float clipped_grad_scale(float grad_scale, double norm, float max_norm) {
  const double clip = max_norm > 0 && norm > double(max_norm) ? double(max_norm) / norm : 1.0;
  return float(double(grad_scale) * clip);
}

}  // namespace aria
