// The settings of a continual-learning experiment: ARIA's mechanisms (mirroring aria-trl's
// ARIAConfig, with the spec's defaults) and the training protocol shared by every method.
// Parsed from JSON with every key checked: unknown keys and out-of-range values are errors that
// name the key (train/continual/aria_config.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace aria {

struct AriaSettings {
  double plasticity_lambda = 0.01;     // weight of the bimodality loss mean(pi (1 - pi)) per layer
  bool legacy_plasticity_loss = false; // the seed's lambda / (mean pi(1-pi) + 1e-4): pushes pi to 0.5
  int64_t warmup_steps = 500;          // optimizer steps before the plasticity loss switches on
  double spc_lambda = 100.0;           // SPC penalty strength
  double spc_gamma = 1.0;              // online decay of the Fisher buffers (A <- gamma A + F_t); 1 = none
  int adapter_dim = 64;
  double slow_lr_ratio = 0.5;          // slow group lr = lr * slow_lr_ratio
  double head_lr_mult = 5.0;           // head + adapter group lr = lr * head_lr_mult
  bool gradient_dampening = true;      // slow grads *= (1 - mean pi_l), once per optimizer step
  int64_t consolidation_steps_per_task = 0;  // batches used for the Fisher; 0 = the task's whole training set
  std::string fisher_estimator = "exact";    // exact | empirical | batched | uniform (F = 1: L2 to the anchors)
  std::string fisher_scope = "slow";         // slow | all_but_fast
  double gate_init_std = 0.02;
  // Gate parameters' lr = lr * gate_lr_ratio (own AdamW groups "gate/..." when != 1; 1: they train in
  // the fast group). AdamW moves every gate weight by about lr per step whatever the size of its
  // gradient, so at ratio 1 the gate follows the training noise (docs/run.md "Gate collapse").
  double gate_lr_ratio = 1.0;
  // The plug-in baselines (train/continual/cl_methods.cpp; docs/continual_trainer.md):
  int64_t replay_per_task = 64;   // replay: examples kept per task (reservoir sample of its training split)
  int replay_batch = 0;           // replay: examples replayed with each micro-batch; 0 = batch_size
  double lwf_lambda = 1.0;        // lwf: weight of the distillation term
  double lwf_temperature = 2.0;   // lwf: softmax temperature T (the loss is scaled by T^2)
};

struct TrainSettings {
  double lr = 2e-4;
  double weight_decay = 0.01;  // applied to 2-D weights only, for every method alike
  int batch_size = 16;
  int grad_accum = 1;
  int64_t steps_per_task = 200;  // optimizer steps per task (every method gets the same)
  int max_seq_len = 128;         // tokens per example (longer texts are truncated at the end)
  int64_t max_train_examples = 0;  // per task; 0 = all
  int64_t max_eval_examples = 0;   // per task and split; 0 = all
  double max_grad_norm = 1.0;
  uint64_t seed = 1234;
  std::string eval_split = "test";  // test | validation
  // auto: bfloat16 on CUDA, float32 on the CPU (bf16_precision in train/continual/continual_trainer.h);
  // bf16 (CUDA only: refused on the
  // CPU); fp32: the model's own float dtype. bfloat16 trains bf16 weights, activations and gradients
  // with float32 AdamW masters and moments (train/continual/continual_trainer.h).
  std::string precision = "auto";
  // The head-only transfer measure (train/continual/head_probe.h): steps of training only a new task's head on
  // the current trunk and on the initial one; 0 = not measured.
  int64_t head_probe_steps = 0;
};

// How task folders are read (train/data/cls_data.h ClsDataOptions; docs/data.md).
struct DataSettings {
  std::string text_field = "text";    // JSON key / CSV column of the text
  std::string label_field = "label";  // JSON key / CSV column of the label
  double validation_fraction = 0.1;   // share of train carved off when a task has no validation split
  uint64_t split_seed = 1234;         // seed of that carving
};

struct ExperimentConfig {
  std::string model = "cache:default";  // HF GPT-2 directory, or cache:<name> for aria's pretrained small model
  std::string data_dir = "third_party/data";
  std::vector<std::string> tasks;       // directories under data_dir, in training order
  std::vector<std::string> methods = {"aria", "finetune", "ewc", "adapters", "multitask"};  // also: replay, lwf
  std::string device = "auto";
  int seeds = 1;                        // repeats with seed, seed+1, ...; mean and spread reported
  // Task orders per seed: order 0 is `tasks` as listed, orders 1.. seeded random permutations
  // (train/experiment/task_orders.h); 0 = auto: 3 on CUDA (the research protocol), 1 on the CPU (the 2-core budget).
  int orders = 0;
  // Per-method values of a few settings (train.lr, aria.spc_lambda, aria.plasticity_lambda,
  // aria.slow_lr_ratio, aria.lwf_lambda), e.g. {"ewc": {"aria.spc_lambda": 1000}}: what `aria run --tune`
  // chooses on the validation split. Every other setting is shared by all methods.
  std::map<std::string, std::map<std::string, double>> method_settings;
  DataSettings data;                    // how the task folders are read ("data" object)
  AriaSettings aria;
  TrainSettings train;
};

// Parses and validates; `where` names the source (a file name) in error messages.
ExperimentConfig parse_experiment_config(const nlohmann::json& j, const std::string& where);
ExperimentConfig load_experiment_config(const std::string& path);
nlohmann::json experiment_config_to_json(const ExperimentConfig& c);
// Throws aria::Error naming the first out-of-range setting.
void validate_experiment_config(const ExperimentConfig& c);
// The number of task orders a run uses: c.orders, or for 0 (auto) 3 on CUDA and 1 on the CPU.
int resolved_orders(const ExperimentConfig& c, bool cuda);
// c with method_settings[method] applied (c itself when it has none).
ExperimentConfig config_for_method(const ExperimentConfig& c, const std::string& method);

}  // namespace aria
