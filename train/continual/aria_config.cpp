// Experiment config: JSON <-> ExperimentConfig. Every key is optional (the struct's defaults
// apply), typed and range-checked; an unknown key at any level is an error naming its full path
// ("aria.spc_lamda"), since a misspelt setting silently left at its default would make a run
// measure something other than what its author meant.
#include "aria/train/continual/aria_config.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria {

namespace {

using json = nlohmann::json;

// The methods a config can name: the built-in five and the plug-ins replay and lwf. (A method
// registered at run time with register_method is used through the C++ API.)
const std::vector<std::string> kMethods = {"aria",        "finetune",         "ewc",
                                           "adapters",    "multitask",        "replay",
                                           "lwf",         "aria-no-gates",    "aria-no-spc",
                                           "aria-no-adapters", "aria-no-dampening", "finetune-adapters"};
// The settings a method may have of its own ("method_settings"; what `aria run --tune` chooses).
const std::vector<std::string> kMethodSettingKeys = {"train.lr", "aria.spc_lambda", "aria.plasticity_lambda",
                                                     "aria.slow_lr_ratio", "aria.lwf_lambda"};
constexpr int kMaxOrders = 100;
const std::vector<std::string> kEstimators = {"exact", "empirical", "batched", "uniform"};
const std::vector<std::string> kScopes = {"slow", "all_but_fast"};
const std::vector<std::string> kSplits = {"test", "validation"};

// Generous upper bounds: anything beyond them is a typo, not an experiment.
constexpr int64_t kMaxCount = int64_t(1) << 40;
constexpr int kMaxSeqLen = 1 << 20;
constexpr int kMaxSeeds = 1000;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

bool one_of(const std::string& s, const std::vector<std::string>& v) {
  for (const auto& x : v)
    if (x == s) return true;
  return false;
}

// Reads the keys of one JSON object, remembering which ones it consumed; finish() rejects the rest.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string prefix, std::string ctx) : j_(j), prefix_(std::move(prefix)), ctx_(std::move(ctx)) {
    ARIA_CHECK(j.is_object(), ctx_, (prefix_.empty() ? "the config" : "'" + prefix_.substr(0, prefix_.size() - 1) + "'"),
               " must be a JSON object, got ", j.type_name());
  }
  std::string path(const char* key) const { return prefix_ + key; }
  const json* get(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  void number(const char* key, double& out) {
    if (const json* v = get(key)) {
      ARIA_CHECK(v->is_number(), ctx_, "'", path(key), "' must be a number, got ", v->dump());
      out = v->get<double>();
    }
  }
  template <typename Int>
  void integer(const char* key, Int& out) {
    if (const json* v = get(key)) {
      ARIA_CHECK(v->is_number_integer(), ctx_, "'", path(key), "' must be an integer, got ", v->dump());
      // nlohmann stores non-negative integers as unsigned and negative ones as signed.
      const bool neg = !v->is_number_unsigned() && v->get<int64_t>() < 0;
      const bool fits = neg ? std::is_signed_v<Int> && v->get<int64_t>() >= int64_t(std::numeric_limits<Int>::min())
                            : v->get<uint64_t>() <= uint64_t(std::numeric_limits<Int>::max());
      ARIA_CHECK(fits, ctx_, "'", path(key), "' = ", v->dump(), " is out of range");
      out = neg ? Int(v->get<int64_t>()) : Int(v->get<uint64_t>());
    }
  }
  void boolean(const char* key, bool& out) {
    if (const json* v = get(key)) {
      ARIA_CHECK(v->is_boolean(), ctx_, "'", path(key), "' must be true or false, got ", v->dump());
      out = v->get<bool>();
    }
  }
  void string(const char* key, std::string& out) {
    if (const json* v = get(key)) {
      ARIA_CHECK(v->is_string(), ctx_, "'", path(key), "' must be a string, got ", v->dump());
      out = v->get<std::string>();
    }
  }
  void strings(const char* key, std::vector<std::string>& out) {
    if (const json* v = get(key)) {
      ARIA_CHECK(v->is_array(), ctx_, "'", path(key), "' must be an array of strings, got ", v->dump());
      out.clear();
      for (size_t i = 0; i < v->size(); ++i) {
        const json& e = (*v)[i];
        ARIA_CHECK(e.is_string(), ctx_, "'", path(key), "[", i, "]' must be a string, got ", e.dump());
        out.push_back(e.get<std::string>());
      }
    }
  }
  const json* object(const char* key) {
    const json* v = get(key);
    if (v) ARIA_CHECK(v->is_object(), ctx_, "'", path(key), "' must be a JSON object, got ", v->dump());
    return v;
  }
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      ARIA_CHECK(seen_.count(it.key()), ctx_, "unknown key '", prefix_ + it.key(), "'", hint());
  }

 private:
  std::string hint() const {
    std::string s = " (known keys";
    if (!prefix_.empty()) s += " in '" + prefix_.substr(0, prefix_.size() - 1) + "'";
    s += ": ";
    bool first = true;
    for (const auto& k : seen_) s += (first ? "" : ", ") + k, first = false;
    return s + ")";
  }
  const json& j_;
  std::string prefix_, ctx_;
  std::set<std::string> seen_;
};

void parse_aria(const json& j, const std::string& ctx, AriaSettings& a) {
  ObjectReader r(j, "aria.", ctx);
  r.number("plasticity_lambda", a.plasticity_lambda);
  r.boolean("legacy_plasticity_loss", a.legacy_plasticity_loss);
  r.integer("warmup_steps", a.warmup_steps);
  r.number("spc_lambda", a.spc_lambda);
  r.number("spc_gamma", a.spc_gamma);
  r.integer("adapter_dim", a.adapter_dim);
  r.number("slow_lr_ratio", a.slow_lr_ratio);
  r.number("head_lr_mult", a.head_lr_mult);
  r.boolean("gradient_dampening", a.gradient_dampening);
  r.integer("consolidation_steps_per_task", a.consolidation_steps_per_task);
  r.string("fisher_estimator", a.fisher_estimator);
  r.string("fisher_scope", a.fisher_scope);
  r.number("gate_init_std", a.gate_init_std);
  r.number("gate_lr_ratio", a.gate_lr_ratio);
  r.integer("replay_per_task", a.replay_per_task);
  r.integer("replay_batch", a.replay_batch);
  r.number("lwf_lambda", a.lwf_lambda);
  r.number("lwf_temperature", a.lwf_temperature);
  r.finish();
}

void parse_train(const json& j, const std::string& ctx, TrainSettings& t) {
  ObjectReader r(j, "train.", ctx);
  r.number("lr", t.lr);
  r.number("weight_decay", t.weight_decay);
  r.integer("batch_size", t.batch_size);
  r.integer("grad_accum", t.grad_accum);
  r.integer("steps_per_task", t.steps_per_task);
  r.integer("max_seq_len", t.max_seq_len);
  r.integer("max_train_examples", t.max_train_examples);
  r.integer("max_eval_examples", t.max_eval_examples);
  r.number("max_grad_norm", t.max_grad_norm);
  r.integer("seed", t.seed);
  r.string("eval_split", t.eval_split);
  r.string("precision", t.precision);
  r.integer("head_probe_steps", t.head_probe_steps);
  r.finish();
}

void parse_data(const json& j, const std::string& ctx, DataSettings& d) {
  ObjectReader r(j, "data.", ctx);
  r.string("text_field", d.text_field);
  r.string("label_field", d.label_field);
  r.number("validation_fraction", d.validation_fraction);
  r.integer("split_seed", d.split_seed);
  r.finish();
}

// ---- range checks (shared by parse and validate) ----

struct Checker {
  std::string ctx;
  void real(const char* key, double v, double lo, bool lo_open, double hi, bool hi_open) const {
    const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    std::ostringstream range;
    range << (lo_open ? "(" : "[") << lo << ", ";
    if (std::isinf(hi)) range << "inf)";
    else range << hi << (hi_open ? ")" : "]");
    ARIA_CHECK(ok, ctx, "'", key, "' = ", v, " is out of range ", range.str());
  }
  void count(const char* key, int64_t v, int64_t lo, int64_t hi) const {
    ARIA_CHECK(v >= lo && v <= hi, ctx, "'", key, "' = ", v, " is out of range [", lo, ", ", hi, "]");
  }
  void choice(const char* key, const std::string& v, const std::vector<std::string>& allowed) const {
    ARIA_CHECK(one_of(v, allowed), ctx, "'", key, "' = \"", v, "\" is not one of: ", join(allowed));
  }
};

bool valid_device_name(const std::string& d) {
  if (d == "auto" || d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5 || d.size() > 8) return false;
  for (size_t i = 5; i < d.size(); ++i)
    if (d[i] < '0' || d[i] > '9') return false;
  return true;
}

// The name load_cls_task gives a task folder: its last path component.
std::string task_name(const std::string& dir) {
  const std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  std::string n = p.filename().string();
  if (n.empty()) n = p.parent_path().filename().string();
  return n;
}

void check_config(const ExperimentConfig& c, const std::string& ctx) {
  const Checker k{ctx};
  const double inf = std::numeric_limits<double>::infinity();
  ARIA_CHECK(!c.model.empty(), ctx, "'model' must not be empty (an HF GPT-2 directory or cache:<name>)");
  ARIA_CHECK(c.model.rfind("cache:", 0) != 0 || c.model.size() > 6, ctx, "'model' = \"cache:\" needs a name");
  ARIA_CHECK(!c.data_dir.empty(), ctx, "'data_dir' must not be empty");
  ARIA_CHECK(!c.tasks.empty(), ctx, "'tasks' must name at least one task directory under data_dir");
  for (size_t i = 0; i < c.tasks.size(); ++i) {
    ARIA_CHECK(!c.tasks[i].empty(), ctx, "'tasks[", i, "]' is empty");
    for (size_t p = 0; p < i; ++p) {
      ARIA_CHECK(c.tasks[p] != c.tasks[i], ctx, "'tasks[", i, "]' = \"", c.tasks[i], "\" is listed twice");
      // A task is named by its folder's name (heads, reports, checkpoints): two folders of one name
      // would collide after the first task has trained.
      ARIA_CHECK(task_name(c.tasks[p]) != task_name(c.tasks[i]), ctx, "'tasks[", p, "]' = \"", c.tasks[p],
                 "\" and 'tasks[", i, "]' = \"", c.tasks[i], "\" have the same task name \"", task_name(c.tasks[i]),
                 "\" (a task is named by its folder): rename one of the folders");
    }
  }
  ARIA_CHECK(!c.methods.empty(), ctx, "'methods' must name at least one of: ", join(kMethods));
  for (size_t i = 0; i < c.methods.size(); ++i) {
    ARIA_CHECK(one_of(c.methods[i], kMethods), ctx, "'methods[", i, "]' = \"", c.methods[i], "\" is not one of: ",
               join(kMethods));
    for (size_t p = 0; p < i; ++p)
      ARIA_CHECK(c.methods[p] != c.methods[i], ctx, "'methods[", i, "]' = \"", c.methods[i], "\" is listed twice");
  }
  ARIA_CHECK(valid_device_name(c.device), ctx, "'device' = \"", c.device, "\" is not one of: auto, cpu, cuda, cuda:N");
  k.count("seeds", c.seeds, 1, kMaxSeeds);
  k.count("orders", c.orders, 0, kMaxOrders);
  for (const auto& [method, values] : c.method_settings) {
    ARIA_CHECK(one_of(method, kMethods), ctx, "'method_settings.", method, "': \"", method, "\" is not one of: ",
               join(kMethods));
    for (const auto& [key, v] : values) {
      ARIA_CHECK(one_of(key, kMethodSettingKeys), ctx, "'method_settings.", method, ".", key,
                 "': a method may set only ", join(kMethodSettingKeys));
      ARIA_CHECK(std::isfinite(v) && v >= 0 && (v > 0 || key != "train.lr"), ctx, "'method_settings.", method, ".",
                 key, "' = ", v, " is out of range");
    }
  }

  const AriaSettings& a = c.aria;
  k.real("aria.plasticity_lambda", a.plasticity_lambda, 0, false, inf, true);
  k.count("aria.warmup_steps", a.warmup_steps, 0, kMaxCount);
  k.real("aria.spc_lambda", a.spc_lambda, 0, false, inf, true);
  k.real("aria.spc_gamma", a.spc_gamma, 0, true, 1, false);
  k.count("aria.adapter_dim", a.adapter_dim, 1, 1 << 16);
  k.real("aria.slow_lr_ratio", a.slow_lr_ratio, 0, false, 1000, false);
  k.real("aria.head_lr_mult", a.head_lr_mult, 0, true, 1000, false);
  k.count("aria.consolidation_steps_per_task", a.consolidation_steps_per_task, 0, kMaxCount);
  k.choice("aria.fisher_estimator", a.fisher_estimator, kEstimators);
  k.choice("aria.fisher_scope", a.fisher_scope, kScopes);
  k.real("aria.gate_init_std", a.gate_init_std, 0, false, 10, false);
  k.real("aria.gate_lr_ratio", a.gate_lr_ratio, 0, true, 1000, false);
  k.count("aria.replay_per_task", a.replay_per_task, 1, 1 << 24);
  k.count("aria.replay_batch", a.replay_batch, 0, 1 << 16);
  k.real("aria.lwf_lambda", a.lwf_lambda, 0, false, inf, true);
  k.real("aria.lwf_temperature", a.lwf_temperature, 0, true, 1000, false);

  const TrainSettings& t = c.train;
  k.real("train.lr", t.lr, 0, true, 10, false);
  k.real("train.weight_decay", t.weight_decay, 0, false, 10, false);
  k.count("train.batch_size", t.batch_size, 1, 1 << 20);
  k.count("train.grad_accum", t.grad_accum, 1, 1 << 20);
  k.count("train.steps_per_task", t.steps_per_task, 1, kMaxCount);
  k.count("train.max_seq_len", t.max_seq_len, 1, kMaxSeqLen);
  k.count("train.max_train_examples", t.max_train_examples, 0, kMaxCount);
  k.count("train.max_eval_examples", t.max_eval_examples, 0, kMaxCount);
  k.real("train.max_grad_norm", t.max_grad_norm, 0, false, inf, true);
  ARIA_CHECK(t.seed <= uint64_t(INT64_MAX) - uint64_t(kMaxSeeds), ctx, "'train.seed' = ", t.seed, " is too large");
  k.choice("train.eval_split", t.eval_split, kSplits);
  k.choice("train.precision", t.precision, {"auto", "bf16", "fp32"});
  k.count("train.head_probe_steps", t.head_probe_steps, 0, 1 << 20);
  ARIA_CHECK(!c.data.text_field.empty(), ctx, "'data.text_field' must not be empty");
  ARIA_CHECK(!c.data.label_field.empty(), ctx, "'data.label_field' must not be empty");
  ARIA_CHECK(c.data.text_field != c.data.label_field, ctx, "'data.text_field' and 'data.label_field' are both \"",
             c.data.text_field, "\"");
  k.real("data.validation_fraction", c.data.validation_fraction, 0, true, 1, true);
}

}  // namespace

ExperimentConfig parse_experiment_config(const json& j, const std::string& where) {
  const std::string ctx = "experiment config '" + where + "': ";
  ExperimentConfig c;
  ObjectReader r(j, "", ctx);
  r.string("model", c.model);
  r.string("data_dir", c.data_dir);
  r.strings("tasks", c.tasks);
  r.strings("methods", c.methods);
  r.string("device", c.device);
  r.integer("seeds", c.seeds);
  r.integer("orders", c.orders);
  if (const json* m = r.object("method_settings")) {
    for (auto it = m->begin(); it != m->end(); ++it) {
      ARIA_CHECK(it->is_object(), ctx, "'method_settings.", it.key(), "' must be a JSON object, got ", it->dump());
      for (auto kv = it->begin(); kv != it->end(); ++kv) {
        ARIA_CHECK(kv->is_number(), ctx, "'method_settings.", it.key(), ".", kv.key(), "' must be a number, got ",
                   kv->dump());
        c.method_settings[it.key()][kv.key()] = kv->get<double>();
      }
    }
  }
  if (const json* a = r.object("aria")) parse_aria(*a, ctx, c.aria);
  if (const json* t = r.object("train")) parse_train(*t, ctx, c.train);
  if (const json* d = r.object("data")) parse_data(*d, ctx, c.data);
  r.finish();
  check_config(c, ctx);
  return c;
}

ExperimentConfig load_experiment_config(const std::string& path) {
  // A regular file only (a FIFO would block open() forever).
  const std::string text = io::read_file(path, "experiment config", uint64_t(1) << 26);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    ARIA_FAIL("experiment config '", path, "': not valid JSON (", e.what(), ")");
  }
  return parse_experiment_config(j, path);
}

json experiment_config_to_json(const ExperimentConfig& c) {
  const AriaSettings& a = c.aria;
  const TrainSettings& t = c.train;
  json aria = {{"plasticity_lambda", a.plasticity_lambda},
               {"legacy_plasticity_loss", a.legacy_plasticity_loss},
               {"warmup_steps", a.warmup_steps},
               {"spc_lambda", a.spc_lambda},
               {"spc_gamma", a.spc_gamma},
               {"adapter_dim", a.adapter_dim},
               {"slow_lr_ratio", a.slow_lr_ratio},
               {"head_lr_mult", a.head_lr_mult},
               {"gradient_dampening", a.gradient_dampening},
               {"consolidation_steps_per_task", a.consolidation_steps_per_task},
               {"fisher_estimator", a.fisher_estimator},
               {"fisher_scope", a.fisher_scope},
               {"gate_init_std", a.gate_init_std},
               {"gate_lr_ratio", a.gate_lr_ratio},
               {"replay_per_task", a.replay_per_task},
               {"replay_batch", a.replay_batch},
               {"lwf_lambda", a.lwf_lambda},
               {"lwf_temperature", a.lwf_temperature}};
  json train = {{"lr", t.lr},
                {"weight_decay", t.weight_decay},
                {"batch_size", t.batch_size},
                {"grad_accum", t.grad_accum},
                {"steps_per_task", t.steps_per_task},
                {"max_seq_len", t.max_seq_len},
                {"max_train_examples", t.max_train_examples},
                {"max_eval_examples", t.max_eval_examples},
                {"max_grad_norm", t.max_grad_norm},
                {"seed", t.seed},
                {"eval_split", t.eval_split},
                {"precision", t.precision},
                {"head_probe_steps", t.head_probe_steps}};
  return json{{"model", c.model},   {"data_dir", c.data_dir}, {"tasks", c.tasks}, {"methods", c.methods},
              {"device", c.device}, {"seeds", c.seeds},       {"orders", c.orders},
              {"method_settings", c.method_settings.empty() ? json::object() : json(c.method_settings)},
              {"aria", aria},     {"train", train},
              {"data", json{{"text_field", c.data.text_field},
                            {"label_field", c.data.label_field},
                            {"validation_fraction", c.data.validation_fraction},
                            {"split_seed", c.data.split_seed}}}};
}

void validate_experiment_config(const ExperimentConfig& c) { check_config(c, "experiment config: "); }

int resolved_orders(const ExperimentConfig& c, bool cuda) { return c.orders > 0 ? c.orders : (cuda ? 3 : 1); }

ExperimentConfig config_for_method(const ExperimentConfig& c, const std::string& method) {
  ExperimentConfig m = c;
  const auto it = c.method_settings.find(method);
  if (it == c.method_settings.end()) return m;
  for (const auto& [key, v] : it->second) {
    if (key == "train.lr") m.train.lr = v;
    else if (key == "aria.spc_lambda") m.aria.spc_lambda = v;
    else if (key == "aria.plasticity_lambda") m.aria.plasticity_lambda = v;
    else if (key == "aria.slow_lr_ratio") m.aria.slow_lr_ratio = v;
    else if (key == "aria.lwf_lambda") m.aria.lwf_lambda = v;
    else ARIA_FAIL("method_settings.", method, ".", key, ": not a per-method setting");
  }
  return m;
}

}  // namespace aria
