// Continual-learning methods as plug-ins: the interface a method implements and the registry that
// makes it a named method of ContinualTrainer, without touching the trainer
// (docs/continual_trainer.md, "Adding a method").
//
//   class MyMethod : public ContinualMethod { ... };
//   register_method("mine", [](const ContinualTrainer&) { return std::make_unique<MyMethod>(); });
//   ContinualTrainer t(model, aria, train, method_spec("mine"));
//
// The trainer calls the hooks; a method never drives training itself:
//   on_task_start   after add_task registered the task (its head is new, earlier ones are frozen)
//   extra_loss      once per micro-batch, after the cross-entropy (and plasticity) terms: a scalar
//                   added to the micro-batch's loss before its backward (undefined: nothing added)
//   after_step      after each optimizer step
//   on_consolidate  at consolidate_task (the end of a task), before any built-in consolidation
//   state_*         what a checkpoint must hold so that a resumed run continues bit for bit
// The built-in five (aria, finetune, ewc, adapters, multitask) keep their mechanisms in the trainer
// (MethodSpec flags); replay and lwf (train/continual/cl_methods.cpp) are plug-ins, as user methods are.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/model/continual_model.h"
#include "aria/train/data/cls_data.h"

namespace aria {

class ContinualTrainer;

// One micro-batch of an optimizer step, as extra_loss sees it.
struct MethodMicroBatch {
  int task = 0;                          // the task id the batch belongs to (its head produced `logits`)
  const ClsBatch* batch = nullptr;
  const Tensor* logits = nullptr;        // [B, labels], with autograd
  const ClsTaskData* data = nullptr;     // the task's data (the batch comes from data->train)
  double step_examples = 1;              // examples in the whole step: divide per-example sums by it, as
                                         // the cross-entropy does, so the loss is accumulation-invariant
  int64_t phase_step = 0;                // steps done in the current phase before this one
  int micro_index = 0;                   // k of the step's grad_accum micro-batches
};

class ContinualMethod {
 public:
  virtual ~ContinualMethod() = default;
  virtual void on_task_start(const ContinualTrainer& t, int task) {}
  virtual Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) { return {}; }
  virtual void after_step(const ContinualTrainer& t) {}
  virtual void on_consolidate(const ContinualTrainer& t, int task, const ClsTaskData& data) {}
  // Saved as "method.<key>" in checkpoint.safetensors and "method_state" in trainer.json; load_state
  // gets them back (keys without the prefix) on a trainer built with the same settings and model.
  virtual std::vector<std::pair<std::string, Tensor>> state_tensors() const { return {}; }
  virtual nlohmann::json state_json() const { return nlohmann::json::object(); }
  virtual void load_state(const ContinualTrainer& t, const std::map<std::string, Tensor>& tensors,
                          const nlohmann::json& state) {}
};

using MethodFactory = std::function<std::unique_ptr<ContinualMethod>(const ContinualTrainer&)>;

// Makes `name` a method: method_spec(name) gives base's flags (a built-in: finetune, adapters, ...)
// with this plug-in's hooks, and method_names() lists it. Throws for a name already known.
void register_method(const std::string& name, MethodFactory factory, const std::string& base = "finetune");
bool is_plugin_method(const std::string& name);
const std::string& plugin_method_base(const std::string& name);  // throws for an unknown name
std::unique_ptr<ContinualMethod> make_plugin_method(const std::string& name, const ContinualTrainer& t);

// Algorithm R: the indices (into a stream of n items, in stream order) of a uniform sample of
// min(n, k) of them; slot order as the algorithm leaves it.
std::vector<size_t> reservoir_sample(size_t n, size_t k, Rng& rng);

// The built-in plug-ins (train/continual/cl_methods.cpp).
std::unique_ptr<ContinualMethod> make_replay_method(const ContinualTrainer& t);
std::unique_ptr<ContinualMethod> make_lwf_method(const ContinualTrainer& t);

}  // namespace aria
