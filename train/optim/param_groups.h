// ARIA's AdamW parameter groups (../shared/aria-spec.md, "Asymmetric learning rates"), built from a
// ContinualModel's named parameters by name rules:
//   slow: "h.N.mlp.slow.*"                           lr * slow_lr_ratio
//   head: "task.<id>.adapter.*", "task.<id>.head.*"  lr * head_lr_mult   (trained tasks only)
//   fast: every other trunk parameter (attention, embeddings, layernorms, gates, fast pathway,
//         or the plain MLP of an un-gated model)      lr
//   gate: "h.N.mlp.gate.*", only when gate_lr_ratio != 1 (else in fast)   lr * gate_lr_ratio
// Each role is split by weight decay: tensors with >= 2 dimensions in "<role>/decay" (weight_decay),
// the rest in "<role>/no_decay" (0). Empty groups are left out. Parameters of tasks that are not
// being trained (frozen earlier tasks) are in no group, and neither is the trunk when freeze_trunk.
#pragma once
#include <string>
#include <vector>

#include "aria/model/continual_model.h"
#include "aria/train/optim/adamw.h"

namespace aria {

enum class ParamRole { Fast, Slow, Head };
const char* param_role_name(ParamRole r);  // "fast", "slow", "head"

// The role of a parameter by its ContinualModel name.
ParamRole param_role(const std::string& name);
// The task id of a "task.<id>.*" name, -1 for trunk parameters.
int param_task(const std::string& name);

struct ParamGroupSettings {
  double lr = 2e-4;
  double slow_lr_ratio = 0.5;
  double head_lr_mult = 5.0;
  double gate_lr_ratio = 1.0;  // != 1: the gates get their own groups "gate/decay", "gate/no_decay"
  double weight_decay = 0.01;
  bool freeze_trunk = false;  // adapters-only baseline: only the trained tasks' adapters and heads
};

// Groups for training the tasks in `trained_tasks` (one for sequential training, all of them for
// joint training). Throws aria::Error for a task id that does not exist.
std::vector<ParamGroup> build_param_groups(const ContinualModel& m, const std::vector<int>& trained_tasks,
                                           const ParamGroupSettings& s);

// Sets requires_grad on every parameter of the groups and clears it on every other model
// parameter (frozen tasks, a frozen trunk), so backward computes only what the optimizer uses.
void apply_trainable(const ContinualModel& m, const std::vector<ParamGroup>& groups);

// Printable table: one row per group (name, tensors, parameters, lr, weight decay), then the
// parameter names of each group.
std::string describe_param_groups(const std::vector<ParamGroup>& groups);

}  // namespace aria
