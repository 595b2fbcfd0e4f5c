// The result of a continual-learning experiment: report.json and its plain-text tables.
//
// report.json:
//   {"settings": {...},                       the resolved config and everything else a reader
//                                             needs to judge a comparison (model, device, ...)
//    "tasks": ["sentiment", "spam", ...],    training order
//    "methods": {"aria": {
//        "joint": false,
//        "matrix": [[...], ...],              a[i][j]: task j after training task i (T x T);
//                                             1 x T for a joint method (multitask)
//        "before": [...],                     b[j]: task j before any training
//        "acc": x, "bwt": x, "forgetting": x, "fwt": x,   null where not defined
//        "seconds": s, "info": {...},         method-specific facts (estimator, parameters, ...)
//        "time_split": {"train_seconds", "fisher_seconds", "eval_seconds", "host_seconds"}
//                                             where "seconds" went (TimeSplit; summed over runs)
//        "note": "..."                        joint methods only: why bwt/forgetting/fwt are null
//        -- with more than one seed, additionally:
//        "num_seeds": n,
//        "mean": {"acc": .., "bwt": .., "forgetting": .., "fwt": ..},
//        "std":  {...},                       sample standard deviation (n - 1)
//        "per_seed": [{"seed": s, "matrix": .., "before": .., "acc": .., ..., "seconds": .., "time_split": .., "info": ..}]
//      }, "finetune": {...}, ...}}
// With several seeds the top-level "matrix" and "before" are element-wise means over the seeds and
// "acc"... equal "mean" (means of the per-seed metrics: forgetting's max makes it differ from the
// forgetting of the mean matrix). Accuracies are fractions in [0, 1]; the tables print percent.
//
// Statistics (issue 15), always present:
//   top level: "scenario": "task-incremental (task id given at test time)",
//              "chance": {"per_task": [1/num_labels...], "mean": x} (null when the label counts are unknown),
//              "statistics": {"interval": "95% percentile bootstrap ...", "resamples": 10000, "seed": 20181,
//                             "over": "seeds", "over_test_examples": false, "note": "..."}
//   per method: "ci95": {"acc": [lo, hi] | null, "bwt": .., "forgetting": .., "fwt": ..}  (null with < 2 seeds)
//               "acc_above_chance": ACC - mean chance (null without chance)
//               "vs_finetune" (every method but finetune, when finetune ran): paired by seed,
//                 {"pairs": n, "acc": {"diff", "ci95", "wins", "ties", "losses"},
//                  "forgetting": {...} (wins = less forgetting; null for joint methods)}
// The intervals are over seeds only: per-example correctness is not recorded (the evaluation counts
// correct answers on the device), so there is no bootstrap over test examples.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/train/report/cl_metrics.h"

namespace aria {

// Where a run's wall time went (seconds). train: the optimizer steps (the device drained at the end
// of each slice); fisher: consolidation (the per-sample Fisher, SPC/EWC anchors); eval: accuracy of
// every task and the head-only probe; host: the rest (data, checkpoints, logging, reports).
struct TimeSplit {
  double train = 0, fisher = 0, eval = 0, host = 0;
  TimeSplit& operator+=(const TimeSplit& o) {
    train += o.train, fisher += o.fisher, eval += o.eval, host += o.host;
    return *this;
  }
};

// One method trained with one seed.
struct MethodRun {
  uint64_t seed = 0;
  int order_index = 0;           // which of the run's task orders (0: the configured order)
  std::vector<int> order;        // order[i]: index into ClReport::tasks of the task trained i-th; empty = as listed
  bool joint = false;            // trained on all tasks at once: matrix holds one row
  AccMatrix matrix;              // T x T, or 1 x T when joint; columns in this run's training order
  std::vector<double> before;    // b[j], length T, in this run's training order
  // Per-example correctness behind before and matrix (ContinualTrainer::correct_history): row 0 is
  // "before", row i + 1 is matrix row i; per column a string with '1'/'0' per test example of that
  // task. Empty when not recorded (older run-state files): the intervals are then over runs only.
  std::vector<std::vector<std::string>> correct;
  // The head-only transfer measure (train/continual/head_probe.h), per training position (NaN at 0); empty when
  // not measured (train.head_probe_steps 0, joint runs).
  std::vector<double> head_initial, head_trained;
  double seconds = 0;            // wall time of training and evaluation
  TimeSplit time;                // seconds, split (train + fisher + eval + host = seconds)
  nlohmann::ordered_json info = nlohmann::ordered_json::object();
};

struct MethodResult {
  std::string method;
  std::vector<MethodRun> runs;  // one per seed, all with the same shape
};

struct ClReport {
  nlohmann::ordered_json settings = nlohmann::ordered_json::object();
  std::vector<std::string> tasks;
  std::vector<MethodResult> methods;
  std::vector<int> num_labels;  // per task, for chance = 1/num_labels; empty = unknown (chance null)
  std::string scenario = "task-incremental (task id given at test time)";
};

// Mean chance accuracy over the tasks (mean of 1/num_labels); NaN when num_labels is empty.
double mean_chance(const ClReport& r);

// Mean over positions j > 0 of head_trained[j] - head_initial[j]; NaN when not measured.
double head_transfer(const MethodRun& r);

// ACC, BWT, forgetting, FWT of one run (compute_cl_metrics, or compute_joint_metrics when joint).
ClMetrics run_metrics(const MethodRun& r);

// Checks every run's shape against the task list (throws aria::Error naming method and seed).
void check_report(const ClReport& r);
nlohmann::ordered_json report_to_json(const ClReport& r);
// Writes report_to_json(r) to path (temp file + rename).
void write_report_json(const ClReport& r, const std::string& path);

// One accuracy matrix per method (rows "before training", "after <task>"; columns tasks) and the
// metrics table (method, ACC, BWT, forgetting, FWT in percent, "± std" with several seeds), then the
// scenario, ACC above chance, the 95% bootstrap intervals and the paired comparison with finetune.
void print_report(const ClReport& r, std::ostream& out);

}  // namespace aria
