// The evaluation and consolidation steps of a continual run as free functions over its state (the
// model, the SPC buffers, the Fisher RNG): ContinualTrainer's evaluate_tasks* and consolidate_task
// call them, and a loop written by hand (train/optim/train_state.h) calls them the same way:
//
//   OptimState st = ...;                                  // the task's optimizer (param_groups.h)
//   for (step ...) { zero_grads(st); ...backward...; optimizer_step(st, 1, ce); }
//   consolidate_task_state(model, spc, fisher_rng, id, task, settings);  // Fisher -> SPC buffers
//   auto row = evaluate_correct(model, tasks, "test", batch_size, seed);  // '1'/'0' per example
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aria/core/rng.h"
#include "aria/model/continual_model.h"
#include "aria/train/continual/fisher.h"
#include "aria/train/continual/spc.h"
#include "aria/train/data/cls_data.h"

namespace aria {

// Per task of `tasks`: one character per example of `split` ("train", "validation", "test"), '1'
// when classified correctly, else '0', in the split's order, under NoGradGuard with fixed batches
// of batch_size. A task registered in `m` (by name) uses its adapter and head; a task not registered
// yet goes through its fixed probe head (N(0, 0.02) seeded by the task's name and probe_seed only)
// with the identity adapter on m's trunk (../shared/aria-spec.md "Metrics"). Changes nothing in m.
std::vector<std::string> evaluate_correct(const ContinualModel& m, const std::vector<const ClsTaskData*>& tasks,
                                          const std::string& split, int batch_size, uint64_t probe_seed);
// The same for task `id` of m on `data`.
std::string task_correct(const ContinualModel& m, int id, const std::vector<ClsExample>& data, int batch_size);
// The fraction of '1's.
double fraction_correct(const std::string& correct);
// FNV-1a of a task name: the platform-independent part of the seeds of probe heads (here and
// train/continual/head_probe.h).
uint64_t name_hash(const std::string& name);

struct ConsolidationSettings {
  int batch_size = 8;
  int64_t max_batches = 0;  // of the training split (0: all)
  FisherEstimator estimator = FisherEstimator::Exact;
  FisherScope scope = FisherScope::Slow;
  double spc_gamma = 1.0;   // decay of the earlier tasks' buffers (SpcState::consolidate)
};

// Fisher of task `id` on task.train (fixed batches), folded into `spc` with anchors = m's current
// parameters; every gradient the Fisher pass left is dropped. `on_fisher` (optional) sees the Fisher.
FisherResult consolidate_task_state(ContinualModel& m, SpcState& spc, Rng& fisher_rng, int id, const ClsTaskData& task,
                                    const ConsolidationSettings& s,
                                    const std::function<void(int, const FisherResult&)>& on_fisher = {});

}  // namespace aria
