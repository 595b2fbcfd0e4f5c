#include "train/default_experiment.h"

#include "model/tokenizer.h"  // roots_near_binary

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace aria {

namespace {

// The budget (docs/run.md): per method 5 tasks x steps_per_task optimizer steps of batch_size
// examples cut at max_seq_len tokens, an evaluation of every task (max_eval_examples of its test
// split) before training and after every task, and a Fisher pass of consolidation_steps_per_task
// batches after every task for aria and ewc. multitask trains 5 x steps_per_task steps jointly.
// warmup_steps counts optimizer steps over the whole sequence: the plasticity loss switches on
// after the first task.
const char* kDefaultJson = R"json({
  "model": "cache:default",
  "data_dir": "third_party/data",
  "tasks": ["sentiment", "spam", "fortune_topic", "wordnet_class", "language_id"],
  "methods": ["aria", "finetune", "ewc", "adapters", "multitask"],
  "device": "auto",
  "seeds": 1,
  "aria": {
    "plasticity_lambda": 0.01,
    "warmup_steps": 40,
    "spc_lambda": 100.0,
    "spc_gamma": 1.0,
    "adapter_dim": 32,
    "slow_lr_ratio": 0.5,
    "head_lr_mult": 5.0,
    "gradient_dampening": true,
    "consolidation_steps_per_task": 4,
    "fisher_estimator": "exact",
    "fisher_scope": "slow",
    "gate_init_std": 0.02
  },
  "train": {
    "lr": 0.001,
    "weight_decay": 0.01,
    "batch_size": 16,
    "grad_accum": 1,
    "steps_per_task": 80,
    "max_seq_len": 48,
    "max_train_examples": 0,
    "max_eval_examples": 150,
    "max_grad_norm": 1.0,
    "seed": 1234,
    "eval_split": "test"
  }
}
)json";

}  // namespace

const char* default_experiment_json() { return kDefaultJson; }

ExperimentConfig default_experiment() {
  return parse_experiment_config(nlohmann::json::parse(kDefaultJson), "the embedded default (aria run)");
}

void make_quick(ExperimentConfig& c) {
  if (c.model == "cache:default") c.model = "cache:quick";
  TrainSettings& t = c.train;
  t.steps_per_task = std::min<int64_t>(t.steps_per_task, 16);
  t.batch_size = std::min(t.batch_size, 8);
  t.grad_accum = 1;
  t.max_seq_len = std::min(t.max_seq_len, 32);
  t.max_train_examples = 128;
  t.max_eval_examples = 48;
  c.aria.warmup_steps = std::min<int64_t>(c.aria.warmup_steps, 16);
  c.aria.adapter_dim = std::min(c.aria.adapter_dim, 8);
  c.aria.consolidation_steps_per_task = 2;
}

PretrainRecipe pretrain_recipe(const std::string& name) {
  PretrainRecipe r;
  r.name = name;
  LmTrainConfig& t = r.train;
  t.verbose = true;
  t.log_every = 10;
  t.schedule = ScheduleConfig::Kind::Cosine;
  t.min_lr_ratio = 0.1;
  t.weight_decay = 0.1;
  t.max_grad_norm = 1.0;
  t.eval_batches = 4;
  if (name == "default") {
    // 4 layers, d = 128: about 7.2M parameters, 6.4M of them the (tied) token embedding.
    r.arch.n_layer = 4, r.arch.n_embd = 128, r.arch.n_head = 4, r.arch.n_positions = 128;
    t.steps = 1000, t.batch_size = 8, t.seq_len = 64, t.warmup_steps = 100, t.lr = 3e-3, t.seed = 1337;
    t.log_every = 50;
    r.max_corpus_bytes = 0;
  } else if (name == "quick") {
    r.arch.n_layer = 2, r.arch.n_embd = 64, r.arch.n_head = 2, r.arch.n_positions = 64;
    t.steps = 8, t.batch_size = 4, t.seq_len = 32, t.warmup_steps = 2, t.lr = 3e-3, t.seed = 1337;
    t.eval_batches = 2;
    r.max_corpus_bytes = 200'000;
  } else {
    ARIA_FAIL("unknown cached model 'cache:", name, "' (aria knows cache:default and cache:quick)");
  }
  return r;
}

std::string find_data_dir(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> tried;
  auto ok = [&](const fs::path& p) {
    tried.push_back(p.string());
    return fs::is_directory(p, ec);
  };
  const fs::path d(data_dir);
  if (ok(d)) return fs::absolute(d).lexically_normal().string();
  if (d.is_relative()) {
    if (const char* home = std::getenv("ARIA_HOME"); home && *home && ok(fs::path(home) / d))
      return (fs::path(home) / d).lexically_normal().string();
    const fs::path cwd = fs::current_path(ec);
    for (fs::path dir = cwd.parent_path(); !ec && !dir.empty(); dir = dir.parent_path()) {
      if (ok(dir / d)) return (dir / d).lexically_normal().string();
      if (dir == dir.parent_path()) break;
    }
    // Next to the running binary (a build folder in the checkout, or <prefix>/bin with share/aria).
    if (const char* home = std::getenv("ARIA_HOME"); !home || !*home)
      for (const std::string& root : roots_near_binary())
        if (ok(fs::path(root) / d)) return (fs::path(root) / d).lexically_normal().string();
  }
  std::string where;
  for (const auto& t : tried) where += (where.empty() ? "" : ", ") + t;
  ARIA_FAIL("data directory '", data_dir, "' not found; looked in: ", where,
            ". Run tools/setup.sh (it fetches the tasks into third_party/data), set ARIA_HOME to the aria checkout, "
            "or pass --data DIR.");
}

}  // namespace aria
