// ContinualModel: task registry (adapters + heads as model state) and the classification forward.
#include "aria/model/continual_model.h"

#include "aria/core/ops.h"
#include "aria/core/ops_capture.h"

namespace aria {

namespace {

Tensor new_param(const Shape& shape, const Gpt2Model& g) {
  Tensor t = Tensor::zeros(shape, g.dtype(), g.device());
  return t;
}

void set_trainable(const TaskSlot& s, bool r) {
  for (const Tensor* t : {&s.adapter.down_w, &s.adapter.down_b, &s.adapter.up_w, &s.adapter.up_b, &s.head_w})
    if (t->defined()) Tensor(*t).set_requires_grad(r);
}

}  // namespace

int ContinualModel::add_task(const std::string& name, int num_labels, Rng& rng) {
  ARIA_CHECK(!name.empty(), "add_task: empty task name");
  ARIA_CHECK(num_labels >= 2, "add_task: task '", name, "' needs at least 2 labels, got ", num_labels);
  for (const TaskSlot& s : tasks) ARIA_CHECK(s.name != name, "add_task: task '", name, "' is already registered");
  ARIA_CHECK(adapter_dim >= 1, "add_task: adapter_dim must be >= 1, got ", adapter_dim);
  for (TaskSlot& s : tasks) {
    set_trainable(s, false);
    s.frozen = true;
  }
  const int64_t C = gpt.config.n_embd;
  TaskSlot slot;
  slot.name = name;
  slot.num_labels = num_labels;
  if (use_adapters) {
    TaskAdapter& a = slot.adapter;
    a.down_w = new_param({C, adapter_dim}, gpt);
    rng.fill_normal(a.down_w, 0.0, 0.02);
    a.down_b = new_param({adapter_dim}, gpt);
    a.up_w = new_param({adapter_dim, C}, gpt);  // zero: the new adapter is the identity
    a.up_b = new_param({C}, gpt);
  }
  if (!tasks.empty() && tasks.back().num_labels == num_labels) {
    slot.head_w = tasks.back().head_w.clone();
  } else {
    slot.head_w = new_param({C, num_labels}, gpt);
    rng.fill_normal(slot.head_w, 0.0, 0.02);
  }
  set_trainable(slot, true);
  tasks.push_back(std::move(slot));
  return int(tasks.size()) - 1;
}

std::vector<std::pair<std::string, Tensor>> ContinualModel::named_parameters() const {
  auto out = gpt.named_parameters();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskSlot& s = tasks[i];
    const std::string p = "task." + std::to_string(i) + ".";
    if (use_adapters) {
      out.emplace_back(p + "adapter.down.weight", s.adapter.down_w);
      out.emplace_back(p + "adapter.down.bias", s.adapter.down_b);
      out.emplace_back(p + "adapter.up.weight", s.adapter.up_w);
      out.emplace_back(p + "adapter.up.bias", s.adapter.up_b);
    }
    out.emplace_back(p + "head.weight", s.head_w);
  }
  return out;
}

int64_t ContinualModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& np : named_parameters()) n += np.second.numel();
  return n;
}

Tensor classify_logits(const ContinualModel& m, const ClsBatch& batch, int task_id, const ForwardOptions& options) {
  ARIA_CHECK(task_id >= 0 && task_id < int(m.tasks.size()), "classify_logits: task id ", task_id, " outside [0, ",
             m.tasks.size(), ")");
  ARIA_CHECK(batch.ids.defined() && batch.last_index.defined(), "classify_logits: batch has no ids / last_index");
  const int64_t B = batch.ids.size(0), T = batch.ids.size(1), C = m.gpt.config.n_embd;
  ARIA_CHECK(batch.last_index.numel() == B, "classify_logits: last_index has ", batch.last_index.numel(),
             " entries for a batch of ", B);
  Tensor hidden = gpt2_hidden(m.gpt, batch.ids, options);          // [B, T, C]
  ops::CaptureSink* cap = options.capture;
  Tensor h = ops::embedding(hidden.reshape({B * T, C}), batch.last_index, cap);  // [B, C], differentiable gather
  const TaskSlot& s = m.tasks[size_t(task_id)];
  if (m.use_adapters) {
    const TaskAdapter& a = s.adapter;
    h = ops::add(h, ops::linear(ops::relu(ops::linear(h, a.down_w, a.down_b, cap)), a.up_w, a.up_b, cap));
  }
  return ops::linear(h, s.head_w, Tensor(), cap);
}

}  // namespace aria
