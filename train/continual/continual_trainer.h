// The continual-learning trainer: the C++ API research code uses (aria-trl's ContinualSFTTrainer,
// re-created with the seed's defects fixed; ../shared/aria-spec.md). One trainer runs one method
// on one task sequence:
//
//   ContinualTrainer t(model, aria_settings, train_settings, method_spec("aria"));
//   auto b = t.evaluate_all_tasks(all);            // row 0: before any training (b[j])
//   for (task : tasks) {
//     t.add_task(task.name, task.num_labels());    // freezes earlier adapters/heads, copies the head
//     t.train(task);                               // exactly steps_per_task optimizer steps
//     t.consolidate_task(id, task);                // Fisher on the TRAINING split (aria, ewc)
//     t.evaluate_all_tasks(all);                   // one more row of the accuracy history
//   }
//
// One optimizer step = grad_accum micro-batches (forward + backward each), then the SPC penalty
// gradient, then gradient dampening (once per step, gate means over the step's real tokens), then
// global-norm clipping and one AdamW step over the fast / slow / head groups (train/optim/param_groups.h).
// The loss terms are normalised by the whole step (cross-entropy: sum over the step's examples /
// their count; plasticity: sum over the step's real tokens / their count), so the accumulated
// gradient is the step's gradient whatever the split into micro-batches.
//
// Learning-rate schedule (TrainerOptions): per task (each task is a fine-tuning phase of its own and
// every method gets the same), a linear warmup over warmup_fraction of the task's steps then a
// cosine decay to min_lr_ratio; "constant" keeps lr after the warmup. The optimizer (its moments)
// starts afresh with each task, since its groups change (new head, earlier heads frozen).
// The plasticity warmup counts optimizer steps over the whole sequence; evaluation and Fisher
// forwards never move it.
//
// Precision (TrainSettings::precision; auto = bfloat16 on CUDA, float32 on the CPU; bfloat16 on the
// CPU is refused): in bfloat16 the constructor converts the model (trunk, gates, adapters, heads) to
// bfloat16 and every method trains bf16 weights, activations and gradients; AdamW keeps float32
// masters and moments. The masters survive phases: each phase's new optimizer adopts the previous
// one's masters (AdamW::adopt_masters), and a parameter leaving the optimizer (a frozen head) keeps
// its last master's rounded value. The plasticity loss is float32, gate sums float64, the Fisher and
// the SPC/EWC buffers float32 (the penalty gradient computed in float32, rounded once into the
// bfloat16 gradient). Checkpoints save the bfloat16 model with the optimizer's float32 masters.
// Starting in bfloat16 rounds a float32 model once: the first masters are the rounded weights.
// fp32 keeps the model's own float dtype (a bfloat16 model is converted to float32).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aria/model/continual_model.h"
#include "aria/train/optim/adamw.h"
#include "aria/train/continual/aria_config.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/continual/continual_method.h"
#include "aria/train/continual/fisher.h"
#include "aria/train/continual/plasticity.h"
#include "aria/train/optim/schedule.h"
#include "aria/train/optim/train_state.h"
#include "aria/train/continual/spc.h"

namespace aria {

// What a method switches on. method_spec() gives the five named methods.
struct MethodSpec {
  std::string name;
  bool gated_mlp = false;      // every block's MLP is a PlasticityGatedMLP (injected if needed)
  bool adapters = false;       // one TaskAdapter per task before its head
  bool spc = false;            // Fisher consolidation + quadratic penalty (aria: SPC, ewc: EWC)
  bool plasticity = false;     // bimodality loss on the gates
  bool dampening = false;      // slow grads *= (1 - mean pi_l) (also needs AriaSettings::gradient_dampening)
  bool asymmetric_lr = false;  // slow group at lr * slow_lr_ratio (head_lr_mult applies to every method)
  bool freeze_trunk = false;   // adapters-only baseline: only adapters and heads train
  bool joint = false;          // multitask: trained with train_joint()
  bool scope_from_settings = false;  // Fisher scope from AriaSettings::fisher_scope (aria)
  FisherScope fisher_scope = FisherScope::Slow;
  bool plugin = false;  // a registered ContinualMethod (train/continual/continual_method.h) adds its hooks
};

// Whether `t.precision` means bfloat16 training for a model on `device`: "bf16" (on CUDA only: the
// CPU is refused with an error naming the device), "fp32" (never), "auto" (bf16 on CUDA, float32 on
// the CPU).
bool bf16_precision(const TrainSettings& t, Device device);

// "aria", "finetune", "ewc", "adapters", "multitask", the plug-ins "replay" and "lwf", and any method
// registered with register_method (its base's flags, plugin = true); anything else throws, listing them.
MethodSpec method_spec(const std::string& name);
const std::vector<std::string>& method_names();

// StepStats (what one optimizer step did; the last one is kept, last_step()) and the callbacks
// live in train/optim/train_state.h, shared with train_lm.

// The callbacks are TrainCallbacks' (train/optim/train_state.h): on_report at every report point
// with the last step's statistics and the steps done / to do in the current phase (a task, or the
// joint phase; not called between report points); on_evaluation after each evaluate_all_tasks
// (optimizer steps done, the accuracy row); extra_loss added to every micro-batch's loss after a
// plug-in method's (it shows in StepStats::method_loss); stop_requested asked after every step
// (cheap: no GPU work), true ends train/train_steps/train_joint after that step, which becomes a
// report point (a caller that stops on SIGINT saves a checkpoint then).
struct TrainerOptions : TrainCallbacks {
  ScheduleConfig::Kind schedule = ScheduleConfig::Kind::Cosine;
  double warmup_fraction = 0.1;  // of each task's steps, for the lr warmup
  double min_lr_ratio = 0.1;
  int64_t log_every = 10;        // report point (one read of the steps' statistics, a progress line) every N steps
  bool verbose = true;
  std::ostream* log = nullptr;   // nullptr: std::cerr
  // Observers for checking the trainer against an independent implementation (the PyTorch twin,
  // tools/hf_reference/continual_twin.py; tests/test_continual_twin.cpp): every training micro-batch
  // as it is drawn (its task id and the batch, in step order), and the Fisher of every consolidation.
  std::function<void(int task, const ClsBatch& batch)> on_micro_batch;
  std::function<void(int task, const FisherResult& fisher)> on_fisher;
};

class ContinualTrainer {
 public:
  ContinualTrainer(ContinualModel model, const AriaSettings& aria, const TrainSettings& train, MethodSpec method,
                   TrainerOptions options = {});

  // Registers a task (ContinualModel::add_task) and makes it the one train() trains: a fresh
  // optimizer over its groups. Returns its id.
  int add_task(const std::string& name, int num_labels);
  int task_id(const std::string& name) const;  // -1 when unknown

  // Trains the active task (the last one added; `task.name` must match) until it has had
  // steps_per_task optimizer steps; after a load() it continues where the checkpoint stopped.
  void train(const ClsTaskData& task);
  // At most `max_steps` of the remaining steps; returns how many ran.
  int64_t train_steps(const ClsTaskData& task, int64_t max_steps);
  // multitask: registers the missing tasks, then steps_per_task * tasks.size() optimizer steps over
  // every task's head at once; micro-batch k of step s comes from task (s * grad_accum + k) mod n.
  void train_joint(const std::vector<const ClsTaskData*>& tasks);
  // At most `max_steps` of the joint phase's remaining steps; returns how many ran.
  int64_t train_joint_steps(const std::vector<const ClsTaskData*>& tasks, int64_t max_steps);

  // Fisher of task `id` on task.train (consolidation_steps_per_task batches, 0 = all), folded into
  // the SPC buffers with anchors = the current parameters. Prints which estimator ran. No-op
  // (with a note) for methods without consolidation.
  void consolidate_task(int id, const ClsTaskData& task);

  // Accuracy of every task of `tasks` on `split` ("train", "validation", "test"; "" = the
  // settings' eval_split), in order, under NoGradGuard with fixed batches. Registered tasks (by
  // name) use their adapter and head; a task not registered yet is evaluated through its fixed
  // probe head (N(0, 0.02) seeded by the task's name and train.seed only: the same for every method
  // and for b[j], never a copy of a trained head) with the identity adapter on the current trunk
  // (../shared/aria-spec.md "Metrics"). Changes no state.
  std::vector<double> evaluate_tasks(const std::vector<const ClsTaskData*>& tasks, const std::string& split = "") const;
  // Per-example correctness behind evaluate_tasks: per task a string with one character per example
  // of the split, '1' (classified correctly) or '0', in the split's order. Its fraction of '1's is
  // exactly evaluate_tasks' accuracy.
  std::vector<std::string> evaluate_tasks_correct(const std::vector<const ClsTaskData*>& tasks,
                                                  const std::string& split = "") const;
  // evaluate_tasks, appended as a row to the accuracy history, which is returned whole; its
  // per-example correctness is appended to correct_history().
  std::vector<std::vector<double>> evaluate_all_tasks(const std::vector<const ClsTaskData*>& tasks,
                                                      const std::string& split = "");
  double accuracy(int id, const std::vector<ClsExample>& data) const;

  // Checkpoints (train/continual/checkpoint.cpp): DIR/checkpoint.safetensors (model incl. gates, adapters and
  // heads, optimizer moments, SPC buffers), DIR/trainer.json (settings, method, task registry,
  // counters, RNG and batcher states, accuracy history), DIR/config.json (the GPT-2 config).
  // A loaded trainer continues bit for bit as the saved one would have.
  void save(const std::string& dir) const;
  static ContinualTrainer load(const std::string& dir, TrainerOptions options = {}, Device device = Device::cpu());

  const ContinualModel& model() const { return model_; }
  ContinualModel& model() { return model_; }
  const MethodSpec& method() const { return method_; }
  bool bf16() const { return bf16_; }                              // training in bfloat16
  const char* precision() const { return bf16_ ? "bf16" : "fp32"; }  // what runs (auto resolved)
  const AriaSettings& aria_settings() const { return aria_; }
  const TrainSettings& train_settings() const { return train_; }
  int64_t optimizer_steps() const { return optim_.run_step; }
  int64_t phase_steps() const { return optim_.phase_step; }  // steps done on the active task (or joint phase)
  const std::vector<int>& trained_tasks() const { return trained_; }
  const StepStats& last_step() const { return last_; }
  const AdamW* optimizer() const { return optim_.opt.get(); }
  // The optimisation state of the current phase (optimizer, schedule, counters).
  const OptimState& optim_state() const { return optim_; }
  // The plug-in of a plug-in method (nullptr for the built-in five).
  ContinualMethod* plugin() const { return plugin_.get(); }
  const SpcState& spc() const { return spc_; }
  const std::vector<std::vector<double>>& history() const { return history_; }
  // Row r, task j: evaluate_tasks_correct's string of history()[r][j] (saved in checkpoints; a
  // checkpoint written before it existed loads with it empty).
  const std::vector<std::vector<std::string>>& correct_history() const { return correct_history_; }
  PlasticitySettings plasticity_settings() const;
  // The parameters the current phase trains (the optimizer's groups, in order); the clipping norm is
  // theirs.
  std::vector<std::pair<std::string, Tensor>> trained_parameters() const;

 private:
  struct Micro {
    int task;
    ClsBatch batch;
    const ClsTaskData* data = nullptr;
  };
  std::ostream& log() const;
  bool gated() const;
  void begin_phase(std::vector<int> tasks);
  ClsBatcher make_batcher(int id, const std::vector<ClsExample>& data) const;
  // What one step left on the device until the next report point reads it.
  struct PendingStep {
    StepStats stats;                 // the fields known on the host
    Tensor ce, plasticity, correct;  // device scalars: summed over the step's micro-batches
    Tensor extra;                    // a plug-in's extra loss, summed likewise (undefined: none)
    Tensor sumsq;                    // the clipping norm's square (undefined: no gradient)
    GateStats gates;                 // gated models: per-layer gate sums over the step's real tokens
  };
  int64_t run_phase(const std::vector<const ClsTaskData*>& tasks, int64_t max_steps);
  // One optimizer step, issued without reading anything back unless `report` (then the SPC penalty's
  // value is read for the log).
  PendingStep optimizer_step(std::vector<Micro> micro, bool report);
  void read_pending(std::vector<PendingStep>& steps);

  ContinualModel model_;
  AriaSettings aria_;
  TrainSettings train_;
  MethodSpec method_;
  TrainerOptions options_;
  bool bf16_ = false;
  // The phase's optimizer, schedule and the step counters (run_step: over the whole run, the
  // plasticity warmup counter; phase_step: steps done in the current phase).
  OptimState optim_;
  std::shared_ptr<ContinualMethod> plugin_;  // plug-in methods only
  SpcState spc_;
  Rng rng_, fisher_rng_;
  std::vector<int> trained_;           // tasks whose heads the optimizer trains
  std::map<std::string, ClsBatcher::State> batchers_;  // by task name
  std::vector<std::vector<double>> history_;
  std::vector<std::vector<std::string>> correct_history_;
  StepStats last_;
};

}  // namespace aria
