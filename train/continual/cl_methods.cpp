// The plug-in baselines replay and lwf (train/continual/continual_method.h; docs/continual_trainer.md says
// what they do and why). Both are task-incremental: every example goes through its own task's head.
#include <cstdint>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/train/continual/checkpoint.h"
#include "aria/train/continual/continual_method.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria {

namespace {

using json = nlohmann::json;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// ln_f hidden state of each sequence's last real token: [B, C] (classify_logits' first half).
Tensor pooled_hidden(const ContinualModel& m, const ClsBatch& b) {
  const int64_t B = b.ids.size(0), T = b.ids.size(1), C = m.gpt.config.n_embd;
  return ops::embedding(gpt2_hidden(m.gpt, b.ids).reshape({B * T, C}), b.last_index);
}

// Task `id`'s adapter (if any) and head on pooled hidden states (classify_logits' second half).
Tensor head_logits(const ContinualModel& m, Tensor h, int id) {
  const TaskSlot& s = m.tasks[size_t(id)];
  if (m.use_adapters) {
    const TaskAdapter& a = s.adapter;
    h = ops::add(h, ops::linear(ops::relu(ops::linear(h, a.down_w, a.down_b)), a.up_w, a.up_b));
  }
  return ops::linear(h, s.head_w, Tensor());
}

// A copy of every parameter (trunk, gates, adapters, heads) sharing no storage with m.
ContinualModel clone_model(const ContinualModel& m) {
  ContinualModel c = m;
  c.gpt = m.gpt.to(m.gpt.dtype());
  for (TaskSlot& s : c.tasks) {
    s.head_w = s.head_w.clone();
    for (Tensor* t : {&s.adapter.down_w, &s.adapter.down_b, &s.adapter.up_w, &s.adapter.up_b})
      if (t->defined()) *t = t->clone();
  }
  return c;
}

// ---- experience replay ----
// Each task keeps aria.replay_per_task of its training examples: a reservoir sample (Algorithm R,
// seeded by train.seed and the task's name) over its training split read as a stream, taken when
// the task's first micro-batch is trained. Every micro-batch of a later task adds aria.replay_batch
// examples (0: batch_size) drawn uniformly, with replacement, from the union of the earlier tasks'
// buffers (one Rng, saved); each goes through its own task's head (its adapter too, on an adapters
// base), and its cross-entropy is summed and divided by the step's example count, as the current
// task's is: a replayed example weighs what a current one does. The step count is unchanged.
class ReplayMethod : public ContinualMethod {
 public:
  explicit ReplayMethod(const ContinualTrainer& t)
      : per_task_(t.aria_settings().replay_per_task),
        batch_(t.aria_settings().replay_batch > 0 ? t.aria_settings().replay_batch : t.train_settings().batch_size),
        seed_(t.train_settings().seed),
        rng_(t.train_settings().seed ^ 0x5E7A1B2C3D4E5F60ull) {}

  Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) override {
    fill(t, mb);
    std::vector<const Buffer*> earlier;
    uint64_t total = 0;
    for (const Buffer& b : buffers_)
      if (b.task != mb.task && !b.examples.empty()) {
        earlier.push_back(&b);
        total += b.examples.size();
      }
    if (total == 0) return {};
    std::vector<std::vector<const ClsExample*>> picked(earlier.size());
    for (int i = 0; i < batch_; ++i) {
      uint64_t r = rng_.below(total);
      size_t k = 0;
      while (r >= earlier[k]->examples.size()) r -= earlier[k++]->examples.size();
      picked[k].push_back(&earlier[k]->examples[size_t(r)]);
    }
    const ContinualModel& m = t.model();
    Tensor sum;
    for (size_t k = 0; k < earlier.size(); ++k) {
      if (picked[k].empty()) continue;
      const ClsBatch b = make_cls_batch(picked[k], m.device(), pad_id_for(m.gpt.config.vocab_size));
      const Tensor ce = ops::sum(ops::cross_entropy_rows(classify_logits(m, b, earlier[k]->task), b.labels));
      sum = sum.defined() ? ops::add(sum, ce) : ce;
    }
    return ops::scale(sum, 1.0 / mb.step_examples);
  }

  json state_json() const override {
    json bufs = json::array();
    for (const Buffer& b : buffers_) {
      json ids = json::array(), labels = json::array();
      for (const ClsExample& e : b.examples) {
        ids.push_back(e.ids);
        labels.push_back(e.label);
      }
      bufs.push_back({{"task", b.task}, {"name", b.name}, {"ids", ids}, {"labels", labels}});
    }
    return {{"rng", rng_state_to_json(rng_.state())}, {"buffers", bufs}};
  }

  void load_state(const ContinualTrainer&, const std::map<std::string, Tensor>&, const json& j) override {
    rng_.set_state(rng_state_from_json(j.at("rng"), "replay state"));
    buffers_.clear();
    for (const json& b : j.at("buffers")) {
      Buffer buf{b.at("task").get<int>(), b.at("name").get<std::string>(), {}};
      const json& ids = b.at("ids");
      const json& labels = b.at("labels");
      ARIA_CHECK(ids.size() == labels.size(), "replay state: task '", buf.name, "' has ", ids.size(),
                 " examples and ", labels.size(), " labels");
      for (size_t i = 0; i < ids.size(); ++i)
        buf.examples.push_back(ClsExample{ids[i].get<std::vector<int32_t>>(), labels[i].get<int32_t>()});
      buffers_.push_back(std::move(buf));
    }
  }

  // Tests read the buffers.
  struct Buffer {
    int task;
    std::string name;
    std::vector<ClsExample> examples;
  };
  const std::vector<Buffer>& buffers() const { return buffers_; }

 private:
  void fill(const ContinualTrainer& t, const MethodMicroBatch& mb) {
    for (const Buffer& b : buffers_)
      if (b.task == mb.task) return;
    ARIA_CHECK(mb.data != nullptr, "replay: the micro-batch carries no task data");
    const std::vector<ClsExample>& stream = mb.data->train;
    Rng r(seed_ ^ fnv1a(mb.data->name) ^ 0xB0FFE4ull);
    const std::vector<size_t> res = reservoir_sample(stream.size(), size_t(per_task_), r);
    Buffer buf{mb.task, t.model().tasks[size_t(mb.task)].name, {}};
    for (size_t i : res) buf.examples.push_back(stream[i]);
    buffers_.push_back(std::move(buf));
  }

  int64_t per_task_;
  int batch_;
  uint64_t seed_;
  Rng rng_;
  std::vector<Buffer> buffers_;
};

// ---- Learning without Forgetting ----
// At each task's start (add_task) from the second on, a copy of the whole model (trunk, adapters,
// heads) is frozen. Every micro-batch of the task adds, for each earlier task j, through j's head:
//   lwf_lambda * T^2 * sum over the batch's examples of KL(softmax(z_old_j / T) || softmax(z_j / T))
// divided by the step's example count (z_old: the frozen copy under NoGradGuard, z: the model), in
// float32. At the task's start z == z_old, so the term (and its gradient) is exactly zero.
class LwfMethod : public ContinualMethod {
 public:
  explicit LwfMethod(const ContinualTrainer& t)
      : lambda_(t.aria_settings().lwf_lambda), temperature_(t.aria_settings().lwf_temperature) {}

  void on_task_start(const ContinualTrainer& t, int task) override {
    active_ = task > 0;
    task_ = task;
    frozen_ = active_ ? clone_model(t.model()) : ContinualModel{};
  }

  Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) override {
    if (!active_ || mb.task != task_) return {};
    const double inv_t = 1.0 / temperature_;
    constexpr double kTiny = 1e-30;  // log(0) guard; p_old and p are both offset, so equal logits give 0
    std::vector<Tensor> p_old;
    {
      NoGradGuard no_grad;
      const Tensor h = pooled_hidden(frozen_, *mb.batch);
      for (int j = 0; j < task_; ++j)
        p_old.push_back(ops::softmax(ops::scale(head_logits(frozen_, h, j).to(DType::F32), inv_t)));
    }
    const Tensor h = pooled_hidden(t.model(), *mb.batch);
    Tensor sum;
    for (int j = 0; j < task_; ++j) {
      const Tensor p = ops::softmax(ops::scale(head_logits(t.model(), h, j).to(DType::F32), inv_t));
      const Tensor kl = ops::sum(ops::mul(p_old[size_t(j)], ops::sub(ops::log(ops::affine(p_old[size_t(j)], 1, kTiny)),
                                                                      ops::log(ops::affine(p, 1, kTiny)))));
      sum = sum.defined() ? ops::add(sum, kl) : kl;
    }
    return ops::scale(sum, lambda_ * temperature_ * temperature_ / mb.step_examples);
  }

  std::vector<std::pair<std::string, Tensor>> state_tensors() const override {
    std::vector<std::pair<std::string, Tensor>> out;
    if (active_)
      for (const auto& [name, p] : frozen_.named_parameters()) out.emplace_back("frozen." + name, p);
    return out;
  }
  json state_json() const override { return {{"active", active_}, {"task", task_}}; }

  void load_state(const ContinualTrainer& t, const std::map<std::string, Tensor>& tensors, const json& j) override {
    active_ = j.at("active").get<bool>();
    task_ = j.at("task").get<int>();
    frozen_ = ContinualModel{};
    if (!active_) return;
    ARIA_CHECK(task_ > 0 && task_ < int(t.model().tasks.size()), "lwf state: task ", task_, " outside [1, ",
               t.model().tasks.size(), ")");
    ContinualModel f = clone_model(t.model());
    f.tasks.resize(size_t(task_) + 1);  // the tasks the snapshot had
    for (const auto& [name, p] : f.named_parameters()) {
      auto it = tensors.find("frozen." + name);
      ARIA_CHECK(it != tensors.end(), "lwf state: missing tensor 'method.frozen.", name, "'");
      ARIA_CHECK(it->second.shape() == p.shape(), "lwf state: tensor 'method.frozen.", name, "' has shape ",
                 shape_str(it->second.shape()), ", the model expects ", shape_str(p.shape()));
      p.copy_from(it->second);
    }
    frozen_ = std::move(f);
  }

 private:
  double lambda_, temperature_;
  bool active_ = false;
  int task_ = 0;
  ContinualModel frozen_;
};

}  // namespace

std::vector<size_t> reservoir_sample(size_t n, size_t k, Rng& rng) {
  std::vector<size_t> res;
  for (size_t i = 0; i < n; ++i) {
    if (res.size() < k) {
      res.push_back(i);
    } else {
      const uint64_t j = rng.below(uint64_t(i) + 1);
      if (j < k) res[size_t(j)] = i;
    }
  }
  return res;
}

std::unique_ptr<ContinualMethod> make_replay_method(const ContinualTrainer& t) {
  return std::make_unique<ReplayMethod>(t);
}
std::unique_ptr<ContinualMethod> make_lwf_method(const ContinualTrainer& t) { return std::make_unique<LwfMethod>(t); }

}  // namespace aria
