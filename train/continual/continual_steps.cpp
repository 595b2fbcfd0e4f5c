#include "aria/train/continual/continual_steps.h"

#include <algorithm>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"

namespace aria {

namespace {

// The fixed probe head of a task not trained yet: C x num_labels, N(0, 0.02) from an Rng seeded by
// seed ^ name_hash(name) only (filled in float32, then cast, so every precision sees the same draw).
Tensor probe_head(const std::string& name, int num_labels, uint64_t seed, int64_t C, DType dt, Device dev) {
  Tensor w = Tensor::zeros({C, num_labels}, DType::F32, Device::cpu());
  Rng r(seed ^ name_hash(name));
  r.fill_normal(w, 0.0, 0.02);
  return w.to(dev).to(dt);
}

const std::vector<ClsExample>& split_of(const ClsTaskData& t, const std::string& split) {
  if (split == "train") return t.train;
  if (split == "validation") return t.validation;
  if (split == "test") return t.test;
  ARIA_FAIL("unknown split '", split, "' (expected train, validation or test)");
}

int task_id_of(const ContinualModel& m, const std::string& name) {
  for (size_t i = 0; i < m.tasks.size(); ++i)
    if (m.tasks[i].name == name) return int(i);
  return -1;
}

}  // namespace

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// The argmax is std::max_element's (the first index of the maximum), as count_correct's. The logits
// of every batch stay on the device until the split is done, are joined there and then read back in
// one copy (a few floats per example), so an evaluation waits for the device once per split, not once
// per batch (tests/test_cuda_host_syncs); the per-example record is what the report's bootstrap over
// test examples resamples (train/report/cl_bootstrap.h).
std::string task_correct(const ContinualModel& m, int id, const std::vector<ClsExample>& data, int batch_size) {
  ARIA_CHECK(!data.empty(), "accuracy: no examples for task '", m.tasks[size_t(id)].name, "'");
  NoGradGuard no_grad;
  std::vector<Tensor> logits;
  for (const ClsBatch& b : fixed_batches(data, batch_size, m.device(), 0, pad_id_for(m.gpt.config.vocab_size)))
    logits.push_back(classify_logits(m, b, id));
  std::string out;
  out.reserve(data.size());
  size_t n = 0;
  {
    const Tensor l = logits.size() == 1 ? logits[0] : ops::concat(logits, 0);  // one device-to-host copy
    const std::vector<float> v = l.to_floats();
    const int64_t B = l.size(0), C = l.size(1);
    for (int64_t r = 0; r < B; ++r, ++n) {
      const float* row = v.data() + r * C;
      const int32_t label = data[n].label;
      ARIA_CHECK(label >= 0 && label < C, "accuracy: label ", label, " of example ", n, " of task '",
                 m.tasks[size_t(id)].name, "' is outside [0, ", C, ")");
      out += (std::max_element(row, row + C) - row) == label ? '1' : '0';
    }
  }
  ARIA_CHECK(n == data.size(), "accuracy: ", n, " logits rows for ", data.size(), " examples");
  return out;
}

double fraction_correct(const std::string& c) {
  return double(std::count(c.begin(), c.end(), '1')) / double(c.size());
}

std::vector<std::string> evaluate_correct(const ContinualModel& m, const std::vector<const ClsTaskData*>& tasks,
                                          const std::string& split, int batch_size, uint64_t probe_seed) {
  std::vector<std::string> row;
  for (const ClsTaskData* t : tasks) {
    const std::vector<ClsExample>& data = split_of(*t, split);
    const int id = task_id_of(m, t->name);
    ARIA_CHECK(id < 0 || m.tasks[size_t(id)].num_labels == t->num_labels(), "evaluate: task '", t->name, "' has ",
               t->num_labels(), " labels, registered with ", m.tasks[size_t(std::max(id, 0))].num_labels);
    if (id >= 0) {
      row.push_back(task_correct(m, id, data, batch_size));
      continue;
    }
    // A task not trained yet (../shared/aria-spec.md "Metrics"): one fixed probe head per (task, seed),
    // N(0, 0.02) seeded by the task's name and the seed only, never a copy of another task's trained
    // head, so it is the same for every method and for b[j]; the identity adapter; on the CURRENT trunk.
    // Without touching the model or its RNG.
    ContinualModel probe = m;
    TaskSlot slot;
    slot.name = t->name;
    slot.num_labels = t->num_labels();
    const int64_t C = m.gpt.config.n_embd, A = m.adapter_dim;
    const DType dt = m.gpt.dtype();
    slot.head_w = probe_head(t->name, t->num_labels(), probe_seed, C, dt, m.device());
    if (m.use_adapters)  // a new adapter is the identity (its up-projection is zero)
      slot.adapter = {Tensor::zeros({C, A}, dt, m.device()), Tensor::zeros({A}, dt, m.device()),
                      Tensor::zeros({A, C}, dt, m.device()), Tensor::zeros({C}, dt, m.device())};
    probe.tasks.push_back(std::move(slot));
    row.push_back(task_correct(probe, int(probe.tasks.size()) - 1, data, batch_size));
  }
  return row;
}

FisherResult consolidate_task_state(ContinualModel& m, SpcState& spc, Rng& fisher_rng, int id, const ClsTaskData& task,
                                    const ConsolidationSettings& s,
                                    const std::function<void(int, const FisherResult&)>& on_fisher) {
  ARIA_CHECK(id >= 0 && id < int(m.tasks.size()), "consolidate_task: task id ", id, " outside [0, ", m.tasks.size(),
             ")");
  const std::vector<ClsBatch> batches =
      fixed_batches(task.train, s.batch_size, m.device(), s.max_batches, pad_id_for(m.gpt.config.vocab_size));
  FisherResult r = estimate_fisher(m, id, batches, s.estimator, s.scope, fisher_rng);
  if (on_fisher) on_fisher(id, r);
  spc.consolidate(r, m, s.spc_gamma);
  for (const auto& np : m.named_parameters()) np.second.zero_grad();  // the Fisher pass's leftovers
  return r;
}

}  // namespace aria
