// The model a continual-learning run trains: a GPT-2 trunk (with ARIA's gated MLPs injected, or
// plain for the baselines) plus one TaskAdapter and one classification head per task, all of it
// model state (saved, loaded, counted). ../shared/aria-spec.md, "Model" and "Task adapters".
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "aria/core/rng.h"
#include "aria/model/gpt2.h"

namespace aria {

// h + up(relu(down(h))); up starts at zero so a new adapter is the identity.
struct TaskAdapter {
  Tensor down_w, down_b;  // [C, A], [A]
  Tensor up_w, up_b;      // [A, C], [C]
};

struct TaskSlot {
  std::string name;
  int num_labels = 0;
  TaskAdapter adapter;  // unused (and absent from the parameters) when the model has no adapters
  Tensor head_w;        // [C, num_labels], Linear(d, num_labels, bias=false) in [in, out] layout
  bool frozen = false;  // set when a later task is added
};

struct ContinualModel {
  Gpt2Model gpt;
  std::vector<TaskSlot> tasks;  // index = task id
  int adapter_dim = 64;
  bool use_adapters = true;

  // Adds a task: freezes every earlier adapter and head (requires_grad false), creates the new
  // adapter (down ~ N(0, 0.02), up = 0) and head (a copy of the previous head when the label
  // counts match, else N(0, 0.02)). Returns the new task id.
  int add_task(const std::string& name, int num_labels, Rng& rng);

  // Trunk parameters ("h.0.attn.c_attn.weight", ...) followed by
  // "task.<id>.adapter.down.weight|down.bias|up.weight|up.bias" and "task.<id>.head.weight".
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  int64_t num_parameters() const;
  Device device() const { return gpt.device(); }
};

// A padded batch of classification examples. Sequences are right-padded with pad_id (50256);
// with causal attention the padding never influences the real tokens.
struct ClsBatch {
  Tensor ids;         // int32 [B, T]
  Tensor last_index;  // int32 [B]: b * T + (length_b - 1), the row of the last real token in [B*T, C]
  Tensor mask;        // float [B, T, 1]: 1 for real tokens, 0 for padding
  Tensor labels;      // int32 [B]
  int64_t real_tokens = 0;
  std::vector<int32_t> host_labels;  // labels on the host (evaluation, sampling)
};

// Logits [B, num_labels] of task `task_id`: ln_f hidden state of each sequence's last real token
// -> that task's adapter (if the model uses adapters) -> that task's head. `options` as
// gpt2_hidden's (the gate values of the trunk's gated MLPs; per-sample captures, which every op of
// the adapter and head is given too).
Tensor classify_logits(const ContinualModel& m, const ClsBatch& batch, int task_id, const ForwardOptions& options = {});

}  // namespace aria
