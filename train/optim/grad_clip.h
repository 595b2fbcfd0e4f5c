// Global gradient-norm clipping without touching the gradients. Two ways:
// - on the host: global_grad_norm measures the norm (one sum_squares kernel call per device,
//   accumulated in double, read back) and clip_scale() gives the factor that AdamW::step applies as
//   its grad_scale;
// - on the device (no host<->GPU synchronisation inside a step): grad_sum_squares_on_device leaves
//   the sum of squares in a device scalar that AdamW::step_clipped passes to the kernel, which clips
//   (or skips the step when it is not finite) by itself; grad_norm_from reads the norm afterwards, for
//   logging and for the non-finite error.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"

namespace aria {

// sqrt(sum of squares of every defined grad of `params`); tensors without a grad are skipped.
// A NaN or infinite norm throws aria::Error("non-finite gradient norm ...") so training stops.
double global_grad_norm(const std::vector<Tensor>& params);
// The same for named parameters; a non-finite norm names the parameters whose gradients hold
// NaN or inf (found with a host pass, on that error path only).
double global_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named_params);

// The sum of squares of every defined grad of `named_params` as a float64 [1] tensor on the
// gradients' device, from one sum_squares call; nothing is read back. Throws when the gradients live
// on several devices (the kernel that reads it runs on one). Returns an undefined tensor when no
// parameter has a gradient: AdamW::step_clipped then clips nothing (there is nothing to update) and
// grad_norm_from gives 0.
Tensor grad_sum_squares_on_device(const std::vector<std::pair<std::string, Tensor>>& named_params);
// sqrt(sumsq) (one host read; 0 for an undefined sumsq). A non-finite norm throws the error of
// global_grad_norm(named_params), naming the parameters whose gradients hold NaN or inf.
double grad_norm_from(const Tensor& sumsq, const std::vector<std::pair<std::string, Tensor>>& named_params);

// max_norm / norm when norm > max_norm > 0, else 1.
double clip_scale(double norm, double max_norm);

}  // namespace aria
