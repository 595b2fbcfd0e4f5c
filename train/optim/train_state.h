// The trainer as state + steps: what one optimisation run holds, as plain data, and the free
// functions both trainers (train_lm, train/optim/lm_trainer.h; ContinualTrainer,
// train/continual/continual_trainer.h) build their loops from. A user who wants a loop of their own
// uses the same pieces:
//
//   OptimState st = make_optim_state(groups, params, schedule, lr, max_grad_norm);
//   for (int step = 0; step < steps; ++step) {
//     zero_grads(st);                                   // a step starts with no gradient
//     for (micro : step's micro-batches) {              // forward + backward, summed gradients
//       Tensor loss = ...;                              // the model's loss of this micro-batch
//       if (cb.extra_loss) loss = add_extra_loss(cb, loss, {...});
//       loss.backward();
//     }
//     IssuedStep is = optimizer_step(st, grad_accum);   // clip -> lr from the schedule -> AdamW
//     double norm = read_grad_norm(st, is, grad_accum); // optional: one device read
//     if (cb.stop_requested && cb.stop_requested()) break;
//   }
//
// optimizer_step issues the whole update without reading anything back from the device: the sum of
// squares of the gradients stays a device scalar that AdamW::step_clipped clips with (a non-finite
// norm skips the update there), and IssuedStep keeps it so that the caller reads the norm when it
// wants to (every step in train_lm, at report points in the continual trainer, which batches the
// reads). With grad_accum k the gradients hold the sum over k micro-batches; the step uses their mean,
// clipped at max_grad_norm (the kernel clips the sum at max_grad_norm * k and scales by 1/k: the same
// multiplier). The step counters (phase_step for the schedule, run_step over phases) advance by one.
//
// TrainCallbacks is the one callback set both trainers take (TrainerOptions and LmTrainConfig derive
// from it): on_report when a step's statistics are read (each step in train_lm; each report point of
// the continual trainer), on_evaluation after each evaluation, extra_loss for a term added to every
// micro-batch's loss before its backward, stop_requested asked after every step.
//
// The continual trainer's other steps, evaluation and consolidation, are free functions over the
// model and its SPC state too (train/continual/continual_steps.h); tests/test_train_state.cpp drives
// both trainers' runs by hand and gets their numbers bit for bit.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"
#include "aria/train/optim/adamw.h"
#include "aria/train/optim/schedule.h"

namespace aria {

struct ClsBatch;
struct ClsTaskData;

// What one optimizer step did. The continual trainer fills every field; train_lm the step, loss,
// grad_norm, lr and token count. In the continual trainer the values live on the device until a
// report point (every TrainerOptions::log_every steps and the last step of each train/train_steps
// call) reads them in one transfer, so the steps in between never wait for the GPU.
struct StepStats {
  int64_t step = 0;          // optimizer steps done over the whole run, this one included
  double loss = 0;           // ce + plasticity + spc + method_loss (train_lm: the LM loss + extra)
  double ce = 0, plasticity = 0, spc = 0;  // spc: read at report points only (0 otherwise)
  double method_loss = 0;    // a plug-in method's and the extra_loss callback's loss (summed over micro-batches)
  double accuracy = 0;       // on the step's training examples
  double grad_norm = 0;      // before clipping
  double lr = 0;             // base lr times the schedule's multiplier
  bool plasticity_on = false;
  std::vector<double> gate_means;  // mean pi per layer over the step's real tokens (gated models)
  int64_t examples = 0, tokens = 0;
};

// One micro-batch, as an extra loss term sees it.
struct LossTermInput {
  int task = -1;                       // continual: the batch's task id; train_lm: -1
  const ClsBatch* batch = nullptr;     // continual: the micro-batch (train_lm: nullptr)
  const Tensor* logits = nullptr;      // continual: its logits [B, labels], with autograd (train_lm: nullptr)
  const Tensor* loss = nullptr;        // the micro-batch's loss so far, with autograd
  const ClsTaskData* data = nullptr;   // continual: the task's data
  double step_examples = 1;            // continual: examples in the whole step (train_lm: 1)
  int64_t phase_step = 0;              // steps done in the phase (train_lm: the run) before this one
  int micro_index = 0;                 // k of the step's grad_accum micro-batches
};

struct TrainCallbacks {
  // Called when a step's statistics have been read: the last step's StepStats and the steps done /
  // to do in the current phase (a task, the joint phase, or train_lm's whole run).
  std::function<void(const StepStats& last, int64_t phase_done, int64_t phase_total)> on_report;
  // Called after each evaluation with the steps done over the run and its values (train_lm: the
  // validation loss; the continual trainer's evaluate_all_tasks: the accuracy row).
  std::function<void(int64_t steps_done, const std::vector<double>& values)> on_evaluation;
  // A scalar added to every micro-batch's loss before its backward (undefined: nothing added). In
  // train_lm each micro-batch's loss is divided by grad_accum afterwards as usual (the clipping
  // scale), so return the term for the micro-batch; the continual trainer adds it as a plug-in
  // method's extra loss (normalise per-example sums by step_examples).
  std::function<Tensor(const LossTermInput&)> extra_loss;
  // Asked after every optimizer step (cheap: no GPU work); true ends the run after that step.
  std::function<bool()> stop_requested;
};

// The optimisation state of one phase of a run: the optimizer (its groups, moments and masters),
// the parameters whose gradients the clipping norm measures (in the norm's summation order), the
// schedule, and the counters.
struct OptimState {
  std::unique_ptr<AdamW> opt;
  std::vector<std::pair<std::string, Tensor>> params;  // the clipping norm's parameters
  ScheduleConfig schedule;
  double lr = 0;              // base lr: StepStats::lr = lr * the schedule's multiplier
  double max_grad_norm = 0;   // <= 0: no clipping
  int64_t phase_step = 0;     // steps done under this schedule (its 0-based next step)
  int64_t run_step = 0;       // steps done over the whole run (across phases)
};

// An optimizer over `groups`; `params` empty means every parameter of the groups, in group order.
OptimState make_optim_state(std::vector<ParamGroup> groups, std::vector<std::pair<std::string, Tensor>> params,
                            const ScheduleConfig& schedule, double lr, double max_grad_norm);

// What optimizer_step issued.
struct IssuedStep {
  Tensor sumsq;          // float64 [1] on the device: the summed gradients' sum of squares (undefined: none)
  double lr_mult = 1;    // the schedule's multiplier the step used
  double lr = 0;         // state.lr * lr_mult
  int64_t step = 0;      // state.run_step after the step
};

// Drops every gradient of the optimizer's parameters: the start of a step.
void zero_grads(OptimState& s);

// Clip -> lr from the schedule -> AdamW step, issued without a device read (see the top of the
// file). `loss_guard` (optional, a device scalar of the step's loss): a non-finite loss skips the
// update as a non-finite norm does (0 * loss is added to the norm's square). Advances phase_step and
// run_step. Throws aria::Error for grad_accum < 1 or a state without an optimizer.
IssuedStep optimizer_step(OptimState& s, int grad_accum = 1, const Tensor& loss_guard = {});

// The global norm of the step's mean gradient (one device read). A non-finite norm throws
// aria::Error naming the step and the parameters whose gradients hold NaN or inf.
double read_grad_norm(const OptimState& s, const IssuedStep& is, int grad_accum = 1);

// loss + cb.extra_loss(in) when the callback is set and returns a defined tensor; `extra` (when
// given) receives the term (undefined when none).
Tensor add_extra_loss(const TrainCallbacks& cb, const Tensor& loss, const LossTermInput& in, Tensor* extra = nullptr);

}  // namespace aria
