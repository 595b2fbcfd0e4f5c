#include "aria/train/optim/train_state.h"

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/train/optim/grad_clip.h"

namespace aria {

OptimState make_optim_state(std::vector<ParamGroup> groups, std::vector<std::pair<std::string, Tensor>> params,
                            const ScheduleConfig& schedule, double lr, double max_grad_norm) {
  OptimState s;
  if (params.empty())
    for (const ParamGroup& g : groups) params.insert(params.end(), g.params.begin(), g.params.end());
  s.opt = std::make_unique<AdamW>(std::move(groups));
  s.params = std::move(params);
  s.schedule = schedule;
  s.lr = lr;
  s.max_grad_norm = max_grad_norm;
  return s;
}

void zero_grads(OptimState& s) {
  ARIA_CHECK(s.opt, "zero_grads: the training state has no optimizer");
  s.opt->zero_grad();
}

IssuedStep optimizer_step(OptimState& s, int grad_accum, const Tensor& loss_guard) {
  ARIA_CHECK(s.opt, "optimizer_step: the training state has no optimizer");
  ARIA_CHECK(grad_accum >= 1, "optimizer_step: grad_accum must be >= 1, got ", grad_accum);
  IssuedStep is;
  is.sumsq = grad_sum_squares_on_device(s.params);
  Tensor guard = is.sumsq;
  if (guard.defined() && loss_guard.defined()) {
    NoGradGuard no_grad;  // finite loss: + 0 (exact); non-finite: NaN, so the kernel skips the update
    guard = ops::add(guard, ops::scale(loss_guard.detach().to(DType::F64).reshape({1}), 0.0));
  }
  is.lr_mult = lr_multiplier(s.schedule, s.phase_step);
  s.opt->step_clipped(is.lr_mult, guard, s.max_grad_norm * grad_accum, 1.0 / grad_accum);
  ++s.phase_step;
  is.step = ++s.run_step;
  is.lr = s.lr * is.lr_mult;
  return is;
}

double read_grad_norm(const OptimState& s, const IssuedStep& is, int grad_accum) {
  try {
    return grad_norm_from(is.sumsq, s.params) / grad_accum;
  } catch (const Error& e) {
    ARIA_FAIL("step ", is.step, ": ", e.what());
  }
}

Tensor add_extra_loss(const TrainCallbacks& cb, const Tensor& loss, const LossTermInput& in, Tensor* extra) {
  Tensor e = cb.extra_loss ? cb.extra_loss(in) : Tensor();
  if (extra) *extra = e;
  return e.defined() ? ops::add(loss, e) : loss;
}

}  // namespace aria
