// Global gradient-norm clipping without touching the gradients: the norm is measured (one
// sum_squares kernel call per device, accumulated in double) and clip_scale() gives the factor
// that AdamW::step applies as its grad_scale.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace aria {

// sqrt(sum of squares of every defined grad of `params`); tensors without a grad are skipped.
// A NaN or infinite norm throws aria::Error("non-finite gradient norm ...") so training stops.
double global_grad_norm(const std::vector<Tensor>& params);
// The same for named parameters; a non-finite norm names the parameters whose gradients hold
// NaN or inf (found with a host pass, on that error path only).
double global_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named_params);

// max_norm / norm when norm > max_norm > 0, else 1.
double clip_scale(double norm, double max_norm);

}  // namespace aria
