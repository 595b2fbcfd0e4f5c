// The head-only transfer measure (issue 15): does training the earlier tasks make the trunk's
// features better for a new task? With one head per task, FWT through a fixed probe head measures
// what a random linear readout sees; this measures what a trained one gets:
//
//   head_transfer[j] = acc(head trained k steps on the trunk after tasks < j)
//                    - acc(head trained k steps on the initial trunk),   for positions j > 0,
//
// and the run's head_transfer is the mean over j > 0. Only the new head trains: the trunk (and any
// adapter, which stays the identity) is frozen, so the pooled features (the last real token's hidden
// state after ln_f, the head's input) are computed once under NoGradGuard and the head is fitted
// on the host: k Adam steps (lr = train.lr * head_lr_mult, the rate every task head trains at) of
// batch_size examples in a seeded order, cross-entropy, from the task's fixed probe-head draw
// N(0, 0.02) (seeded by the task name and train.seed), so both trunks start the head from the same
// values and only the features differ. Accuracy on the evaluation split, argmax as count_correct.
// Nothing of the model or the trainer changes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aria/model/continual_model.h"
#include "aria/train/data/cls_data.h"

namespace aria {

struct HeadProbeSettings {
  int64_t steps = 20;
  int batch_size = 16;
  double lr = 5e-3;
  uint64_t seed = 1234;
};

// Pooled features [N][C] (float32 on the host) of `data` under m's trunk.
std::vector<std::vector<float>> pooled_features(const ContinualModel& m, const std::vector<ClsExample>& data,
                                                int batch_size);

// Accuracy on `eval` of a head fitted on `train` for s.steps steps over m's frozen features.
double head_only_accuracy(const ContinualModel& m, const std::string& task_name, int num_labels,
                          const std::vector<ClsExample>& train, const std::vector<ClsExample>& eval,
                          const HeadProbeSettings& s);

}  // namespace aria
