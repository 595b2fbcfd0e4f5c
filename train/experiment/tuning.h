// Tuning on the validation split (issue 15): `aria run --tune` picks each method's settings from a
// small grid before the experiment, and the test split is read only for the final report.
//
// The grid, per method (train/experiment/tuning.cpp tuning_grid): the learning rate for every method
// (0.5x, 1x, 2x the configured train.lr); EWC's and SPC's lambda (0.1x, 1x, 10x aria.spc_lambda,
// separately per method: their scopes differ); aria's plasticity lambda (0, 1x, 10x) and slow_lr_ratio
// (0.25, 0.5, 1); LwF's lambda (0.5x, 1x, 2x). Steps per task are not tuned per method: every method
// keeps the same step budget, which the comparison's fairness rests on.
// Search: coordinate-wise, in that key order: each key's candidates are tried with the best values
// found so far for the earlier keys (the configured values for the later ones); a trial is one full
// task sequence with one seed (train.seed) in the listed order, scored by its ACC on the validation
// split after the last task (ties keep the earlier candidate, so the configured value wins ties).
// Identical settings are trained once.
//
// Isolation: tune_methods copies the tasks WITHOUT their test splits before anything runs, and every
// evaluation names the validation split. A test (tests/test_tuning.cpp) hands it tasks whose test
// examples would make any evaluation on them throw.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/model/gpt2.h"
#include "aria/train/continual/aria_config.h"
#include "aria/train/report/cl_metrics.h"
#include "aria/train/data/cls_data.h"

namespace aria {

// One key's candidates for a method.
struct TuningAxis {
  std::string key;             // a method_settings key (train.lr, aria.spc_lambda, ...)
  std::vector<double> values;  // the configured value among them
};
std::vector<TuningAxis> tuning_grid(const ExperimentConfig& c, const std::string& method);

struct TuningTrial {
  std::map<std::string, double> settings;  // the method's values of every grid key in this trial
  ClMetrics validation;                    // on the validation split
  double seconds = 0;
};

struct MethodTuning {
  std::string method;
  std::map<std::string, double> chosen;
  std::vector<TuningTrial> trials;
};

// One task sequence (or joint training) of `method` under c (method_settings applied) on `tasks`, in
// the given order, with seed c.train.seed, evaluated on `split` before training and after each task.
// Returns the accuracy matrix's metrics. The model is a copy of `base` on `device`.
ClMetrics run_task_sequence(const Gpt2Model& base, const std::vector<const ClsTaskData*>& tasks,
                            const ExperimentConfig& c, const std::string& method, Device device,
                            const std::string& split);

// Tunes every method of c.methods; `on_trial` (may be empty) is called after each trial, for progress.
std::vector<MethodTuning> tune_methods(
    const Gpt2Model& base, const std::vector<ClsTaskData>& tasks, const ExperimentConfig& c, Device device,
    const std::function<void(const std::string& method, const TuningTrial& trial)>& on_trial = {});

// c.method_settings with every method's chosen values.
ExperimentConfig apply_tuning(const ExperimentConfig& c, const std::vector<MethodTuning>& t);

// tuning.json: {"split", "criterion", "search", "methods": {m: {"chosen": {...}, "trials": [...]}}}.
nlohmann::ordered_json tuning_to_json(const std::vector<MethodTuning>& t, const ExperimentConfig& c);

}  // namespace aria
