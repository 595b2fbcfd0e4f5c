// Experiment config: defaults, every key parsed with its type and range, unknown keys rejected
// at every level with their full path, and to_json round-tripping.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/train/continual/aria_config.h"

using namespace aria;
using json = nlohmann::json;

namespace {

const json kMinimal = {{"tasks", {"a", "b"}}};

std::string error_of(const json& j) {
  try {
    parse_experiment_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// kMinimal with j's keys merged in (objects merged recursively).
json with(const json& patch) {
  json j = kMinimal;
  j.merge_patch(patch);
  return j;
}

}  // namespace

TEST_CASE("a config naming only the tasks gets the spec's defaults") {
  ExperimentConfig c = parse_experiment_config(kMinimal, "cfg.json");
  CHECK(c.tasks == std::vector<std::string>{"a", "b"});
  CHECK(c.methods == std::vector<std::string>{"aria", "finetune", "ewc", "adapters", "multitask"});
  CHECK(c.model == "cache:default");
  CHECK(c.seeds == 1);
  CHECK(c.aria.slow_lr_ratio == 0.5);
  CHECK(c.aria.head_lr_mult == 5.0);
  CHECK(c.aria.fisher_estimator == "exact");
  CHECK(c.aria.fisher_scope == "slow");
  CHECK(c.train.eval_split == "test");
}

TEST_CASE("every key is read") {
  json j = {{"model", "/m"},
            {"data_dir", "/d"},
            {"tasks", {"x"}},
            {"methods", {"ewc", "aria"}},
            {"device", "cuda:1"},
            {"seeds", 3},
            {"aria",
             {{"plasticity_lambda", 0.5},
              {"legacy_plasticity_loss", true},
              {"warmup_steps", 7},
              {"spc_lambda", 12.5},
              {"spc_gamma", 0.9},
              {"adapter_dim", 8},
              {"slow_lr_ratio", 0.25},
              {"head_lr_mult", 3},
              {"gradient_dampening", false},
              {"consolidation_steps_per_task", 4},
              {"fisher_estimator", "batched"},
              {"fisher_scope", "all_but_fast"},
              {"gate_init_std", 0.1},
              {"gate_lr_ratio", 0.5},
              {"replay_per_task", 16},
              {"replay_batch", 3},
              {"lwf_lambda", 0.5},
              {"lwf_temperature", 4}}},
            {"data", {{"text_field", "text"}, {"label_field", "label"}, {"validation_fraction", 0.1}, {"split_seed", 1234}}},
            {"train",
             {{"lr", 1e-3},
              {"weight_decay", 0},
              {"batch_size", 4},
              {"grad_accum", 2},
              {"steps_per_task", 9},
              {"max_seq_len", 32},
              {"max_train_examples", 100},
              {"max_eval_examples", 50},
              {"max_grad_norm", 0.5},
              {"seed", 99},
              {"eval_split", "validation"},
              {"precision", "bf16"},
              {"head_probe_steps", 5}}},
            {"orders", 3},
            {"method_settings", {{"ewc", {{"aria.spc_lambda", 1000}}}, {"aria", {{"train.lr", 5e-4}}}}}};
  ExperimentConfig c = parse_experiment_config(j, "cfg.json");
  CHECK(c.orders == 3);
  CHECK(c.train.head_probe_steps == 5);
  CHECK(c.method_settings.at("ewc").at("aria.spc_lambda") == 1000);
  CHECK(config_for_method(c, "ewc").aria.spc_lambda == 1000);
  CHECK(config_for_method(c, "aria").train.lr == 5e-4);
  CHECK(config_for_method(c, "aria").aria.spc_lambda == 12.5);
  CHECK(resolved_orders(c, false) == 3);
  CHECK(c.model == "/m");
  CHECK(c.data_dir == "/d");
  CHECK(c.methods == std::vector<std::string>{"ewc", "aria"});
  CHECK(c.device == "cuda:1");
  CHECK(c.seeds == 3);
  CHECK(c.aria.plasticity_lambda == 0.5);
  CHECK(c.aria.legacy_plasticity_loss);
  CHECK(c.aria.warmup_steps == 7);
  CHECK(c.aria.spc_lambda == 12.5);
  CHECK(c.aria.spc_gamma == 0.9);
  CHECK(c.aria.adapter_dim == 8);
  CHECK(c.aria.slow_lr_ratio == 0.25);
  CHECK(c.aria.head_lr_mult == 3.0);
  CHECK_FALSE(c.aria.gradient_dampening);
  CHECK(c.aria.consolidation_steps_per_task == 4);
  CHECK(c.aria.fisher_estimator == "batched");
  CHECK(c.aria.fisher_scope == "all_but_fast");
  CHECK(c.aria.gate_init_std == 0.1);
  CHECK(c.aria.gate_lr_ratio == 0.5);
  CHECK(c.aria.replay_per_task == 16);
  CHECK(c.aria.replay_batch == 3);
  CHECK(c.aria.lwf_lambda == 0.5);
  CHECK(c.aria.lwf_temperature == 4.0);
  CHECK(c.train.lr == 1e-3);
  CHECK(c.train.weight_decay == 0.0);
  CHECK(c.train.batch_size == 4);
  CHECK(c.train.grad_accum == 2);
  CHECK(c.train.steps_per_task == 9);
  CHECK(c.train.max_seq_len == 32);
  CHECK(c.train.max_train_examples == 100);
  CHECK(c.train.max_eval_examples == 50);
  CHECK(c.train.max_grad_norm == 0.5);
  CHECK(c.train.seed == 99);
  CHECK(c.train.eval_split == "validation");
  CHECK(c.train.precision == "bf16");

  // to_json writes every key, and parsing it gives the same config back.
  json out = experiment_config_to_json(c);
  CHECK(out == j);
  CHECK(experiment_config_to_json(parse_experiment_config(out, "again")) == out);
}

TEST_CASE("the plug-in baselines replay and lwf are known methods, not in the default list") {
  const ExperimentConfig c = parse_experiment_config(json{{"tasks", {"x"}}, {"methods", {"replay", "lwf"}}}, "cfg.json");
  CHECK(c.methods == std::vector<std::string>{"replay", "lwf"});
  const ExperimentConfig d = parse_experiment_config(json{{"tasks", {"x"}}}, "cfg.json");
  CHECK(d.methods == std::vector<std::string>{"aria", "finetune", "ewc", "adapters", "multitask"});
  CHECK(d.aria.replay_per_task == 64);
  CHECK(d.aria.replay_batch == 0);
  CHECK(d.aria.lwf_lambda == 1.0);
  CHECK(d.aria.lwf_temperature == 2.0);
}

TEST_CASE("to_json of the defaults round-trips and names every key") {
  ExperimentConfig c = parse_experiment_config(kMinimal, "cfg.json");
  json j = experiment_config_to_json(c);
  CHECK(j["aria"].size() == 18);
  CHECK(j["train"].size() == 13);
  CHECK(j["train"]["precision"] == "auto");
  CHECK(j.size() == 11);
  CHECK(j["orders"] == 0);  // auto: 3 on CUDA, 1 on the CPU
  CHECK(resolved_orders(c, true) == 3);
  CHECK(resolved_orders(c, false) == 1);
  CHECK(experiment_config_to_json(parse_experiment_config(j, "x")) == j);
}

TEST_CASE("unknown keys are rejected at every level with their full path") {
  CHECK(error_of(with({{"modle", "x"}})).find("unknown key 'modle'") != std::string::npos);
  CHECK(error_of(with({{"aria", {{"spc_lamda", 1}}}})).find("unknown key 'aria.spc_lamda'") != std::string::npos);
  CHECK(error_of(with({{"train", {{"lrr", 1}}}})).find("unknown key 'train.lrr'") != std::string::npos);
  // The message starts with the source and lists the known keys of that level.
  std::string e = error_of(with({{"aria", {{"spc_lamda", 1}}}}));
  CHECK(e.rfind("experiment config 'cfg.json': ", 0) == 0);
  CHECK(e.find("spc_lambda") != std::string::npos);
}

TEST_CASE("wrong types name the key") {
  const std::pair<json, std::string> cases[] = {
      {json::array(), "must be a JSON object"},
      {with({{"model", 3}}), "'model' must be a string"},
      {with({{"tasks", "a"}}), "'tasks' must be an array of strings"},
      {with({{"tasks", {"a", 1}}}), "'tasks[1]' must be a string"},
      {with({{"methods", {"aria", true}}}), "'methods[1]' must be a string"},
      {with({{"seeds", 1.5}}), "'seeds' must be an integer"},
      {with({{"seeds", "2"}}), "'seeds' must be an integer"},
      {with({{"aria", 1}}), "'aria' must be a JSON object"},
      {with({{"train", {1, 2}}}), "'train' must be a JSON object"},
      {with({{"aria", {{"spc_lambda", "100"}}}}), "'aria.spc_lambda' must be a number"},
      {with({{"aria", {{"gradient_dampening", 1}}}}), "'aria.gradient_dampening' must be true or false"},
      {with({{"aria", {{"adapter_dim", 64.5}}}}), "'aria.adapter_dim' must be an integer"},
      {with({{"aria", {{"fisher_estimator", 1}}}}), "'aria.fisher_estimator' must be a string"},
      {with({{"train", {{"batch_size", 1e10}}}}), "'train.batch_size' must be an integer"},
      {with({{"train", {{"batch_size", 10000000000}}}}), "'train.batch_size' = 10000000000 is out of range"},
      {with({{"train", {{"seed", -1}}}}), "'train.seed' = -1 is out of range"},
      {with({{"train", {{"precision", 16}}}}), "'train.precision' must be a string"},
  };
  for (const auto& [j, want] : cases) {
    CAPTURE(j.dump());
    CHECK(error_of(j).find(want) != std::string::npos);
  }
}

TEST_CASE("out-of-range values and bad choices name the key") {
  const std::pair<json, std::string> cases[] = {
      {json{{"tasks", json::array()}}, "'tasks' must name at least one task"},
      {json::object(), "'tasks' must name at least one task"},
      {with({{"tasks", {"a", "a"}}}), "'tasks[1]' = \"a\" is listed twice"},
      {with({{"tasks", {""}}}), "'tasks[0]' is empty"},
      {with({{"methods", json::array()}}), "'methods' must name at least one of"},
      {with({{"methods", {"aria", "sgd"}}}), "'methods[1]' = \"sgd\" is not one of: aria, finetune, ewc, adapters, multitask, replay, lwf"},
      {with({{"methods", {"ewc", "ewc"}}}), "'methods[1]' = \"ewc\" is listed twice"},
      {with({{"model", ""}}), "'model' must not be empty"},
      {with({{"data_dir", ""}}), "'data_dir' must not be empty"},
      {with({{"device", "gpu"}}), "'device' = \"gpu\""},
      {with({{"device", "cuda:x"}}), "'device' = \"cuda:x\""},
      {with({{"seeds", 0}}), "'seeds' = 0 is out of range"},
      {with({{"orders", 101}}), "'orders' = 101 is out of range"},
      {with({{"orders", -1}}), "'orders' = -1 is out of range"},
      {with({{"train", {{"head_probe_steps", -1}}}}), "'train.head_probe_steps' = -1 is out of range"},
      {with({{"method_settings", {{"sgd", {{"train.lr", 1}}}}}}), "'method_settings.sgd': \"sgd\" is not one of"},
      {with({{"method_settings", {{"ewc", {{"train.batch_size", 4}}}}}}), "a method may set only train.lr"},
      {with({{"method_settings", {{"ewc", {{"train.lr", 0}}}}}}), "'method_settings.ewc.train.lr' = 0 is out of range"},
      {with({{"method_settings", {{"ewc", 3}}}}), "'method_settings.ewc' must be a JSON object"},
      {with({{"method_settings", {{"ewc", {{"train.lr", "x"}}}}}}), "'method_settings.ewc.train.lr' must be a number"},
      {with({{"train", {{"precision", "fp16"}}}}), "'train.precision' = \"fp16\" is not one of: auto, bf16, fp32"},
      {with({{"aria", {{"plasticity_lambda", -1}}}}), "'aria.plasticity_lambda' = -1 is out of range"},
      {with({{"aria", {{"warmup_steps", -1}}}}), "'aria.warmup_steps' = -1 is out of range"},
      {with({{"aria", {{"spc_lambda", -0.5}}}}), "'aria.spc_lambda' = -0.5 is out of range"},
      {with({{"aria", {{"spc_gamma", 0}}}}), "'aria.spc_gamma' = 0 is out of range (0, 1]"},
      {with({{"aria", {{"spc_gamma", 1.5}}}}), "'aria.spc_gamma' = 1.5 is out of range"},
      {with({{"aria", {{"adapter_dim", 0}}}}), "'aria.adapter_dim' = 0 is out of range"},
      {with({{"aria", {{"slow_lr_ratio", -0.1}}}}), "'aria.slow_lr_ratio' = -0.1 is out of range"},
      {with({{"aria", {{"head_lr_mult", 0}}}}), "'aria.head_lr_mult' = 0 is out of range"},
      {with({{"aria", {{"consolidation_steps_per_task", -2}}}}), "'aria.consolidation_steps_per_task' = -2"},
      {with({{"aria", {{"fisher_estimator", "diag"}}}}),
       "'aria.fisher_estimator' = \"diag\" is not one of: exact, empirical, batched"},
      {with({{"aria", {{"fisher_scope", "all"}}}}), "'aria.fisher_scope' = \"all\" is not one of: slow, all_but_fast"},
      {with({{"aria", {{"gate_init_std", -1}}}}), "'aria.gate_init_std' = -1 is out of range"},
      {with({{"aria", {{"gate_lr_ratio", 0}}}}), "'aria.gate_lr_ratio' = 0 is out of range"},
      {with({{"aria", {{"replay_per_task", 0}}}}), "'aria.replay_per_task' = 0 is out of range [1, "},
      {with({{"aria", {{"replay_batch", -1}}}}), "'aria.replay_batch' = -1 is out of range [0, "},
      {with({{"aria", {{"lwf_lambda", -1}}}}), "'aria.lwf_lambda' = -1 is out of range"},
      {with({{"aria", {{"lwf_temperature", 0}}}}), "'aria.lwf_temperature' = 0 is out of range (0, 1000]"},
      {with({{"train", {{"lr", 0}}}}), "'train.lr' = 0 is out of range"},
      {with({{"train", {{"weight_decay", -0.01}}}}), "'train.weight_decay' = -0.01 is out of range"},
      {with({{"train", {{"batch_size", 0}}}}), "'train.batch_size' = 0 is out of range"},
      {with({{"train", {{"grad_accum", 0}}}}), "'train.grad_accum' = 0 is out of range"},
      {with({{"train", {{"steps_per_task", 0}}}}), "'train.steps_per_task' = 0 is out of range"},
      {with({{"train", {{"max_seq_len", 0}}}}), "'train.max_seq_len' = 0 is out of range"},
      {with({{"train", {{"max_train_examples", -1}}}}), "'train.max_train_examples' = -1 is out of range"},
      {with({{"train", {{"max_eval_examples", -1}}}}), "'train.max_eval_examples' = -1 is out of range"},
      {with({{"train", {{"max_grad_norm", -1}}}}), "'train.max_grad_norm' = -1 is out of range"},
      {with({{"train", {{"eval_split", "train"}}}}), "'train.eval_split' = \"train\" is not one of: test, validation"},
  };
  for (const auto& [j, want] : cases) {
    CAPTURE(j.dump());
    const std::string e = error_of(j);
    CAPTURE(e);
    CHECK(e.find(want) != std::string::npos);
  }
}

TEST_CASE("validate_experiment_config checks a config built in code") {
  ExperimentConfig c;
  c.tasks = {"a"};
  CHECK_NOTHROW(validate_experiment_config(c));
  c.aria.spc_lambda = -1;
  try {
    validate_experiment_config(c);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("'aria.spc_lambda' = -1") != std::string::npos);
  }
}

TEST_CASE("load_experiment_config: file errors name the file, the committed CI fixture parses") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("aria_expcfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string bad = (dir / "bad.json").string();
  std::ofstream(bad) << "{\"tasks\": [\"a\",]}";
  try {
    load_experiment_config(bad);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(bad) != std::string::npos);
    CHECK(std::string(e.what()).find("not valid JSON") != std::string::npos);
  }
  CHECK_THROWS_AS(load_experiment_config((dir / "missing.json").string()), Error);
  fs::remove_all(dir);

  ExperimentConfig c = load_experiment_config(std::string(ARIA_SOURCE_DIR) + "/tests/fixtures/continual_tiny.json");
  CHECK(c.tasks.size() == 2);
  CHECK(c.methods.size() == 5);
}
