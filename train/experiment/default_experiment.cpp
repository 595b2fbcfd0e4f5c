#include "aria/train/experiment/default_experiment.h"

#include "aria/model/tokenizer.h"  // roots_near_binary

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/gpt2_config.h"
#include "aria/train/data/token_shards.h"

namespace aria {

namespace {

// The budget (docs/run.md): per method 5 tasks x steps_per_task optimizer steps of batch_size
// examples cut at max_seq_len tokens, an evaluation of every task (its whole test split:
// max_eval_examples 0) before training and after every task, and a Fisher pass of
// consolidation_steps_per_task batches after every task for aria and ewc. multitask trains
// 5 x steps_per_task steps jointly. "orders": 0 is auto: 3 task orders on CUDA, 1 on the CPU (what
// fits the 2-core budget of 15 minutes; docs/run.md "Measured times"). head_probe_steps: the head-only
// transfer probe (train/continual/head_probe.h).
// warmup_steps counts optimizer steps over the whole sequence: the plasticity loss switches on
// after the first task.
const char* kDefaultJson = R"json({
  "model": "cache:default",
  "data_dir": "third_party/data",
  "tasks": ["sentiment", "spam", "fortune_topic", "wordnet_class", "language_id"],
  "methods": ["aria", "finetune", "ewc", "adapters", "multitask"],
  "device": "auto",
  "seeds": 1,
  "orders": 0,
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
    "max_eval_examples": 0,
    "max_grad_norm": 1.0,
    "seed": 1234,
    "eval_split": "test",
    "head_probe_steps": 10
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
  } else if (name == "base124m") {
    // GPT-2 124M pretrained in bfloat16 on one GPU from the large corpus's token shards
    // (docs/base_model.md explains the numbers). 16 x 1024 x 16 = 262,144 tokens per step, 700 steps:
    // 183M tokens, about 6 minutes of the bf16 d12 step on an H100, so that the base and the
    // continual protocol's GPU run fit one 30-minute GPU lease together. About 7 epochs of the
    // ~25M-token corpus. Peak lr 1.2e-3 (2x GPT-3 small's: short runs at this size train stably at
    // 2-3x), warmup 70 steps, cosine to 10 % at the end. Validation every 50 steps on 16 fixed
    // batches (262K tokens); checkpoints every 100 steps (a stopped build continues there).
    r.arch = gpt2_preset("d12");
    r.uses_shards = true, r.needs_cuda = true;
    t.bf16 = true;
    t.batch_size = 16, t.seq_len = 1024, t.grad_accum = 16;
    t.steps = 700, t.warmup_steps = 70, t.lr = 1.2e-3, t.min_lr_ratio = 0.1, t.seed = 1337;
    t.eval_every = 50, t.eval_batches = 16, t.log_every = 20, t.checkpoint_every = 100;
  } else {
    ARIA_FAIL("unknown cached model 'cache:", name, "' (aria knows cache:default, cache:quick and cache:base124m)");
  }
  return r;
}

std::string find_shard_dir(const std::string& shard_dir) {
  namespace fs = std::filesystem;
  std::string dir, looked;
  try {
    dir = find_data_dir(shard_dir);
  } catch (const Error&) {
    looked = " (not found next to the current folder, $ARIA_HOME or the aria binary)";
  }
  if (!dir.empty() && (list_shards(dir, "train").empty() || list_shards(dir, "validation").empty())) {
    looked = " ('" + dir + "' lacks train_*.bin or validation_*.bin)";
    dir.clear();
  }
  ARIA_CHECK(!dir.empty(), "token shards '", shard_dir, "' of the large corpus are missing", looked,
             ". Build them (once; docs/base_model.md): tools/fetch_corpus.sh, then build/aria tokenize --text "
             "third_party/corpus/train.txt --shards third_party/shards and build/aria tokenize --text "
             "third_party/corpus/validation.txt --shards third_party/shards --split validation");
  return dir;
}

ModelCacheRequest cached_model_request(const std::string& name, const std::string& data_dir,
                                       const std::string& shard_dir) {
  namespace fs = std::filesystem;
  ModelCacheRequest req;
  req.recipe = pretrain_recipe(name);
  if (req.recipe.uses_shards) {
    req.shards = find_shard_dir(shard_dir.empty() ? "third_party/shards" : shard_dir);  // first: the likelier miss
    req.vocab_dir = find_vocab_dir("");
    return req;
  }
  req.vocab_dir = find_vocab_dir("");
  req.corpus = (fs::path(data_dir) / "corpus" / "train.txt").string();
  const fs::path val = fs::path(data_dir) / "corpus" / "validation.txt";
  std::error_code ec;
  if (fs::exists(val, ec)) {
    io::require_regular_file(val.string(), "validation text");  // never a FIFO (open() would block)
    req.validation = val.string();
  }
  ARIA_CHECK(fs::exists(req.corpus, ec), "cache:", name, " is pretrained on '", req.corpus,
             "', which does not exist; run tools/setup.sh (or pass --model DIR)");
  io::require_regular_file(req.corpus, "corpus");
  return req;
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
    const std::string& home = context().home;
    if (!home.empty() && ok(fs::path(home) / d)) return (fs::path(home) / d).lexically_normal().string();
    const fs::path cwd = fs::current_path(ec);
    for (fs::path dir = cwd.parent_path(); !ec && !dir.empty(); dir = dir.parent_path()) {
      if (ok(dir / d)) return (dir / d).lexically_normal().string();
      if (dir == dir.parent_path()) break;
    }
    // Next to the running binary (a build folder in the checkout, or <prefix>/bin with share/aria).
    if (home.empty())
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
