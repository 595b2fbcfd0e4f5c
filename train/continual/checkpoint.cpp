// ContinualTrainer::save / ::load (train/continual/checkpoint.h describes the layout).
#include "aria/train/continual/checkpoint.h"

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "aria/core/atomic_dir.h"
#include "aria/core/file_io.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/safetensors.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

DType dtype_from_name(const std::string& s, const std::string& where) {
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16})
    if (s == dtype_name(t)) return t;
  ARIA_FAIL(where, ": unknown model dtype '", s, "'");
}

json method_to_json(const MethodSpec& m) {
  return {{"name", m.name},
          {"gated_mlp", m.gated_mlp},
          {"adapters", m.adapters},
          {"spc", m.spc},
          {"plasticity", m.plasticity},
          {"dampening", m.dampening},
          {"asymmetric_lr", m.asymmetric_lr},
          {"freeze_trunk", m.freeze_trunk},
          {"joint", m.joint},
          {"scope_from_settings", m.scope_from_settings},
          {"fisher_scope", fisher_scope_name(m.fisher_scope)},
          {"plugin", m.plugin}};
}

MethodSpec method_from_json(const json& j) {
  MethodSpec m;
  m.name = j.at("name").get<std::string>();
  m.gated_mlp = j.at("gated_mlp").get<bool>();
  m.adapters = j.at("adapters").get<bool>();
  m.spc = j.at("spc").get<bool>();
  m.plasticity = j.at("plasticity").get<bool>();
  m.dampening = j.at("dampening").get<bool>();
  m.asymmetric_lr = j.at("asymmetric_lr").get<bool>();
  m.freeze_trunk = j.at("freeze_trunk").get<bool>();
  m.joint = j.at("joint").get<bool>();
  m.scope_from_settings = j.at("scope_from_settings").get<bool>();
  m.fisher_scope = parse_fisher_scope(j.at("fisher_scope").get<std::string>());
  m.plugin = j.value("plugin", false);  // older checkpoints: the built-in five only
  return m;
}

json read_json(const fs::path& path) {
  const std::string text = io::read_file(path.string(), "checkpoint file");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    ARIA_FAIL("'", path.string(), "' is not valid JSON (", e.what(), ")");
  }
}

// The entries of `file` under `prefix`, loaded in their stored dtype, named without the prefix
// (keep_prefix: with it).
std::map<std::string, Tensor> load_prefixed(const SafeTensorsFile& file, const std::string& prefix,
                                            bool keep_prefix = false) {
  std::map<std::string, Tensor> out;
  for (const SafeTensorEntry& e : file.entries())
    if (e.name.rfind(prefix, 0) == 0) out[keep_prefix ? e.name : e.name.substr(prefix.size())] = file.load(e.name, e.dtype);
  return out;
}

// The config's sizes against the tensors the file holds, read from its header: a config that claims a
// million layers (or a vocabulary of billions) is refused before anything is allocated.
void check_sizes_against_header(const Gpt2Config& c, const SafeTensorsFile& file) {
  const std::string where = file.path();
  const SafeTensorEntry* wte = file.find("model.wte.weight");
  const SafeTensorEntry* wpe = file.find("model.wpe.weight");
  ARIA_CHECK(wte && wpe, where, ": missing tensor 'model.wte.weight' or 'model.wpe.weight'");
  const Shape want_wte{c.vocab_size, c.n_embd}, want_wpe{c.n_positions, c.n_embd};
  ARIA_CHECK(wte->shape == want_wte && wpe->shape == want_wpe, where,
             ": the embeddings are ", shape_str(wte->shape), " and ", shape_str(wpe->shape), ", config.json implies [",
             c.vocab_size, ", ", c.n_embd, "] and [", c.n_positions, ", ", c.n_embd, "]");
  std::set<int64_t> layers;
  for (const SafeTensorEntry& e : file.entries()) {
    if (e.name.rfind("model.h.", 0) != 0) continue;
    const size_t dot = e.name.find('.', 8);
    try {
      layers.insert(std::stoll(e.name.substr(8, dot - 8)));
    } catch (const std::exception&) {
      ARIA_FAIL(where, ": tensor '", e.name, "' has no layer number");
    }
  }
  ARIA_CHECK(int64_t(layers.size()) == c.n_layer && (layers.empty() || *layers.rbegin() == c.n_layer - 1), where,
             ": holds ", layers.size(), " layers, config.json says n_layer = ", c.n_layer);
}

}  // namespace

bool is_trainer_checkpoint(const std::string& dir) {
  for (const char* f : {kCheckpointTensorsFile, kCheckpointTrainerFile, kCheckpointConfigFile})
    if (!fs::is_regular_file(fs::path(dir) / f)) return false;
  return true;
}

json rng_state_to_json(const RngState& s) { return {{"seed", s.seed}, {"counter", s.counter}}; }

RngState rng_state_from_json(const json& j, const std::string& where) {
  ARIA_CHECK(j.is_object() && j.contains("seed") && j.contains("counter") && j["seed"].is_number_unsigned() &&
                 j["counter"].is_number_unsigned(),
             where, ": an RNG state must be {\"seed\": u64, \"counter\": u64}, got ", j.dump());
  return RngState{j["seed"].get<uint64_t>(), j["counter"].get<uint64_t>()};
}

void ContinualTrainer::save(const std::string& dir) const {
  io::AtomicDir out(dir, "checkpoint");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model_.named_parameters()) tensors.emplace_back("model." + name, t);
  if (optim_.opt)
    for (const auto& [key, t] : optim_.opt->state_tensors()) tensors.emplace_back("optim." + key, t);
  for (const auto& [key, t] : spc_.state_tensors()) tensors.emplace_back(key, t);  // keys "spc.*"
  if (plugin_)
    for (const auto& [key, t] : plugin_->state_tensors()) tensors.emplace_back("method." + key, t);
  save_safetensors(out.file(kCheckpointTensorsFile), tensors,
                   {{"format", "aria-continual"}, {"version", std::to_string(kCheckpointVersion)}});
  save_gpt2_config(model_.gpt.config, out.file(kCheckpointConfigFile));

  ExperimentConfig c;
  c.aria = aria_;
  c.train = train_;
  const json cj = experiment_config_to_json(c);
  json tasks = json::array();
  for (const TaskSlot& s : model_.tasks)
    tasks.push_back({{"name", s.name}, {"num_labels", s.num_labels}, {"frozen", s.frozen}});
  json batchers = json::object();
  for (const auto& [name, s] : batchers_)
    batchers[name] = {{"rng", rng_state_to_json(s.rng)}, {"epoch", s.epoch}, {"cursor", s.cursor}};
  json j = {{"version", kCheckpointVersion},
            {"settings", {{"aria", cj["aria"]}, {"train", cj["train"]}}},
            {"method", method_to_json(method_)},
            {"precision", precision()},  // what ran (settings.train.precision may say "auto")
            {"options",
             {{"schedule", options_.schedule == ScheduleConfig::Kind::Cosine ? "cosine" : "constant"},
              {"warmup_fraction", options_.warmup_fraction},
              {"min_lr_ratio", options_.min_lr_ratio}}},
            {"model",
             {{"dtype", dtype_name(model_.gpt.dtype())},
              {"gated", gated()},
              {"use_adapters", model_.use_adapters},
              {"adapter_dim", model_.adapter_dim}}},
            {"tasks", tasks},
            {"trained_tasks", trained_},
            {"optimizer_steps", optim_.run_step},
            {"phase_steps", optim_.phase_step},
            {"adamw_steps", optim_.opt ? optim_.opt->steps() : 0},
            {"rng", rng_state_to_json(rng_.state())},
            {"fisher_rng", rng_state_to_json(fisher_rng_.state())},
            {"batchers", batchers},
            {"spc_tasks", spc_.tasks_consolidated()},
            {"history", history_},
            {"correct_history", correct_history_}};
  if (plugin_) j["method_state"] = plugin_->state_json();
  io::write_file_atomic(out.file(kCheckpointTrainerFile), j.dump(2) + "\n");
  out.commit();
}

ContinualTrainer ContinualTrainer::load(const std::string& dir, TrainerOptions options, Device device) {
  io::verify_manifest(dir, "checkpoint");
  ARIA_CHECK(is_trainer_checkpoint(dir), "'", dir, "' is not a trainer checkpoint (expected ", kCheckpointTensorsFile,
             ", ", kCheckpointTrainerFile, " and ", kCheckpointConfigFile, ")");
  const std::string where = (fs::path(dir) / kCheckpointTrainerFile).string();
  const json j = read_json(where);
  try {
    ARIA_CHECK(j.at("version").get<int>() == kCheckpointVersion, where, ": checkpoint version ", j.at("version").dump(),
               ", this build reads version ", kCheckpointVersion);
    ExperimentConfig c = parse_experiment_config(
        json{{"tasks", {"checkpoint"}}, {"aria", j.at("settings").at("aria")}, {"train", j.at("settings").at("train")}},
        where);
    // The precision that ran, whatever "auto" would pick on `device` (a bfloat16 checkpoint loaded on
    // the CPU is refused by the constructor, naming the device). Checkpoints without the key: the
    // model's dtype says.
    c.train.precision = j.contains("precision") ? j.at("precision").get<std::string>()
                        : j.at("model").at("dtype").get<std::string>() == dtype_name(DType::BF16) ? "bf16"
                                                                                                  : "fp32";
    ARIA_CHECK(c.train.precision == "bf16" || c.train.precision == "fp32", where, ": precision \"",
               c.train.precision, "\" is not bf16 or fp32");
    bf16_precision(c.train, device);  // a bfloat16 checkpoint on the CPU: refused before anything is built
    const json& o = j.at("options");
    options.schedule = parse_schedule_kind(o.at("schedule").get<std::string>());
    options.warmup_fraction = o.at("warmup_fraction").get<double>();
    options.min_lr_ratio = o.at("min_lr_ratio").get<double>();

    // The model's structure, then its values from the tensor file.
    const json& mj = j.at("model");
    ContinualModel m;
    const SafeTensorsFile file = SafeTensorsFile::open((fs::path(dir) / kCheckpointTensorsFile).string());
    const Gpt2Config cfg = load_gpt2_config((fs::path(dir) / kCheckpointConfigFile).string());
    check_sizes_against_header(cfg, file);  // before the model is allocated
    m.gpt = gpt2_random(cfg, 0, device);
    if (mj.at("gated").get<bool>()) inject_gated_mlp(m.gpt, 0);
    const DType dt = dtype_from_name(mj.at("dtype").get<std::string>(), where);
    if (dt != m.gpt.dtype()) m.gpt = m.gpt.to(dt);
    m.use_adapters = mj.at("use_adapters").get<bool>();
    m.adapter_dim = mj.at("adapter_dim").get<int>();
    Rng scratch(0);
    for (const json& t : j.at("tasks")) m.add_task(t.at("name").get<std::string>(), t.at("num_labels").get<int>(), scratch);
    for (size_t i = 0; i < m.tasks.size(); ++i) m.tasks[i].frozen = j.at("tasks")[i].at("frozen").get<bool>();

    std::set<std::string> expected;
    for (const auto& [name, p] : m.named_parameters()) {
      const std::string key = "model." + name;
      expected.insert(key);
      const SafeTensorEntry* e = file.find(key);
      ARIA_CHECK(e, file.path(), ": missing tensor '", key, "'");
      ARIA_CHECK(e->shape == p.shape(), file.path(), ": tensor '", key, "' has shape ", shape_str(e->shape),
                 ", the model expects ", shape_str(p.shape()));
      const Tensor v = file.load(key, p.dtype());
      const int64_t bad = first_nonfinite(v);
      ARIA_CHECK(bad < 0, file.path(), ": tensor '", key, "' holds a non-finite value at index ", bad,
                 " (the run that saved it diverged; resume from an earlier checkpoint)");
      p.copy_from(v);
    }
    for (const SafeTensorEntry& e : file.entries())
      ARIA_CHECK(e.name.rfind("model.", 0) != 0 || expected.count(e.name), file.path(), ": unexpected tensor '",
                 e.name, "' (not a parameter of the model trainer.json describes)");

    ContinualTrainer t(std::move(m), c.aria, c.train, method_from_json(j.at("method")), options);
    const std::vector<int> trained = j.at("trained_tasks").get<std::vector<int>>();
    if (!trained.empty()) {
      t.begin_phase(trained);
      t.optim_.opt->load_state(load_prefixed(file, "optim."), j.at("adamw_steps").get<int64_t>());
    } else {
      t.trained_.clear();
      t.optim_ = OptimState();
    }
    t.optim_.phase_step = j.at("phase_steps").get<int64_t>();
    t.optim_.run_step = j.at("optimizer_steps").get<int64_t>();
    t.spc_.load_state(load_prefixed(file, "spc.", true), j.at("spc_tasks").get<int>());
    t.rng_.set_state(rng_state_from_json(j.at("rng"), where));
    t.fisher_rng_.set_state(rng_state_from_json(j.at("fisher_rng"), where));
    for (const auto& [name, s] : j.at("batchers").items())
      t.batchers_[name] = ClsBatcher::State{rng_state_from_json(s.at("rng"), where), s.at("epoch").get<int64_t>(),
                                            s.at("cursor").get<int64_t>()};
    t.history_ = j.at("history").get<std::vector<std::vector<double>>>();
    if (j.contains("correct_history"))  // absent in checkpoints written before it was recorded
      t.correct_history_ = j.at("correct_history").get<std::vector<std::vector<std::string>>>();
    if (t.plugin_)
      t.plugin_->load_state(t, load_prefixed(file, "method."), j.value("method_state", json::object()));
    return t;
  } catch (const json::exception& e) {
    ARIA_FAIL(where, ": malformed checkpoint (", e.what(), ")");
  }
}

}  // namespace aria
