// One parameter tensor's AdamW step: AdamWItem (tensors) as the optimizer op (core/ops_inplace.h)
// takes it, AdamWItemView (kernel views, core/tensor_view.h) as the adamw_update kernels
// (kernels/kernel_list.h) take it. One plain template, so both carry the same fields; an item converts
// to its view implicitly (views_of converts a list). This header needs no Tensor definition.
#pragma once
#include <vector>

#include "aria/core/tensor_view.h"

namespace aria {

// p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p), with g = grad * grad_scale,
// m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, m_hat = m / bc1, v_hat = v / bc2.
// Mixed precision: when `master` is defined (float32, param's shape) the step updates master and
// writes param = bfloat16(master) (param BF16); grad may be BF16 or float32; m, v are float32.
// Clipping on the device: when `clip_sumsq` is defined (float64 [1] on the item's device, the sum of
// squares of ALL gradients as sum_squares writes it; one tensor shared by every item of the call) the
// kernel reads norm = sqrt(clip_sumsq) itself (no host read) and uses the gradient multiplier
// float(grad_scale * (clip_max_norm > 0 && norm > clip_max_norm ? clip_max_norm / norm : 1)), computed
// in double (kernels/adamw_clip.h). A non-finite norm skips the whole call: no param, master or moment
// of any item changes (the caller reads the norm afterwards and reports it).
template <typename T>
struct AdamWStep {
  AdamWStep() = default;
  template <typename U>
  AdamWStep(const AdamWStep<U>& o)  // NOLINT: an item passes where its view is expected
      : param(o.param), grad(o.grad), m(o.m), v(o.v), master(o.master), lr(o.lr), beta1(o.beta1),
        beta2(o.beta2), eps(o.eps), weight_decay(o.weight_decay), bias_correction1(o.bias_correction1),
        bias_correction2(o.bias_correction2), grad_scale(o.grad_scale), clip_sumsq(o.clip_sumsq),
        clip_max_norm(o.clip_max_norm) {}

  T param, grad, m, v;
  T master;
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  float bias_correction1 = 1, bias_correction2 = 1, grad_scale = 1;
  T clip_sumsq;
  float clip_max_norm = 0;
};

class Tensor;
using AdamWItem = AdamWStep<Tensor>;
using AdamWItemView = AdamWStep<TensorView>;

// The views of a list of items (valid while the items' tensors live); core/ops_inplace.cpp.
std::vector<AdamWItemView> views_of(const std::vector<AdamWItem>& items);

}  // namespace aria
