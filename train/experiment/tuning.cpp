#include "aria/train/experiment/tuning.h"

#include <chrono>

#include "aria/core/error.h"
#include "aria/model/continual_model.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria {

namespace {

double value_of(const ExperimentConfig& c, const std::string& key) {
  if (key == "train.lr") return c.train.lr;
  if (key == "aria.spc_lambda") return c.aria.spc_lambda;
  if (key == "aria.plasticity_lambda") return c.aria.plasticity_lambda;
  if (key == "aria.slow_lr_ratio") return c.aria.slow_lr_ratio;
  if (key == "aria.lwf_lambda") return c.aria.lwf_lambda;
  ARIA_FAIL("tuning: unknown key '", key, "'");
}

// The tasks without their test splits: nothing below can read them.
std::vector<ClsTaskData> without_test(const std::vector<ClsTaskData>& tasks) {
  std::vector<ClsTaskData> out;
  for (const ClsTaskData& t : tasks) {
    ClsTaskData c;
    c.name = t.name;
    c.label_names = t.label_names;
    c.train = t.train;
    c.validation = t.validation;
    ARIA_CHECK(!c.validation.empty(), "tuning: task '", t.name, "' has no validation split to tune on");
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

std::vector<TuningAxis> tuning_grid(const ExperimentConfig& c, const std::string& method) {
  const ExperimentConfig m = config_for_method(c, method);
  const MethodSpec spec = method_spec(method);
  std::vector<TuningAxis> g;
  const double lr = m.train.lr;
  g.push_back({"train.lr", {lr, lr / 2, lr * 2}});
  if (spec.spc) {
    const double l = m.aria.spc_lambda;
    g.push_back({"aria.spc_lambda", {l, l / 10, l * 10}});
  }
  if (spec.plasticity) {
    const double p = m.aria.plasticity_lambda;
    g.push_back({"aria.plasticity_lambda", p > 0 ? std::vector<double>{p, 0.0, p * 10} : std::vector<double>{0.0, 0.01, 0.1}});
  }
  if (spec.asymmetric_lr) {
    std::vector<double> v = {m.aria.slow_lr_ratio};
    for (double x : {0.25, 0.5, 1.0})
      if (x != m.aria.slow_lr_ratio) v.push_back(x);
    g.push_back({"aria.slow_lr_ratio", v});
  }
  if (method == "lwf") {
    const double l = m.aria.lwf_lambda;
    g.push_back({"aria.lwf_lambda", {l, l / 2, l * 2}});
  }
  return g;
}

ClMetrics run_task_sequence(const Gpt2Model& base, const std::vector<const ClsTaskData*>& tasks,
                            const ExperimentConfig& cfg, const std::string& method, Device device,
                            const std::string& split) {
  const ExperimentConfig c = config_for_method(cfg, method);
  const MethodSpec spec = method_spec(method);
  ContinualModel model;
  model.gpt = base.to(device);
  if (spec.gated_mlp) inject_gated_mlp(model.gpt, c.train.seed, c.aria.gate_init_std);
  model.use_adapters = spec.adapters;
  model.adapter_dim = c.aria.adapter_dim;
  TrainSettings train = c.train;
  train.eval_split = split;
  TrainerOptions opt;
  opt.verbose = false;
  ContinualTrainer t(std::move(model), c.aria, train, spec, opt);
  const std::vector<double> before = t.evaluate_all_tasks(tasks, split).back();
  if (spec.joint) {
    t.train_joint(tasks);
    return compute_joint_metrics(t.evaluate_all_tasks(tasks, split).back());
  }
  AccMatrix a;
  for (const ClsTaskData* task : tasks) {
    const int id = t.add_task(task->name, task->num_labels());
    t.train(*task);
    if (spec.spc) t.consolidate_task(id, *task);
    a.push_back(t.evaluate_all_tasks(tasks, split).back());
  }
  return compute_cl_metrics(a, before);
}

std::vector<MethodTuning> tune_methods(const Gpt2Model& base, const std::vector<ClsTaskData>& tasks,
                                       const ExperimentConfig& c, Device device,
                                       const std::function<void(const std::string&, const TuningTrial&)>& on_trial) {
  const std::vector<ClsTaskData> safe = without_test(tasks);
  std::vector<const ClsTaskData*> ptrs;
  for (const ClsTaskData& t : safe) ptrs.push_back(&t);
  std::vector<MethodTuning> out;
  for (const std::string& method : c.methods) {
    MethodTuning mt;
    mt.method = method;
    const std::vector<TuningAxis> grid = tuning_grid(c, method);
    for (const TuningAxis& ax : grid) mt.chosen[ax.key] = ax.values[0];
    auto trial = [&](const std::map<std::string, double>& settings) -> const TuningTrial& {
      for (const TuningTrial& t : mt.trials)
        if (t.settings == settings) return t;  // identical settings train once
      ExperimentConfig tc = c;
      tc.method_settings[method] = settings;
      const auto t0 = std::chrono::steady_clock::now();
      TuningTrial t;
      t.settings = settings;
      t.validation = run_task_sequence(base, ptrs, tc, method, device, "validation");
      t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      mt.trials.push_back(t);
      if (on_trial) on_trial(method, mt.trials.back());
      return mt.trials.back();
    };
    for (const TuningAxis& ax : grid) {
      double best_value = mt.chosen[ax.key], best_acc = -1;
      for (double v : ax.values) {
        std::map<std::string, double> s = mt.chosen;
        s[ax.key] = v;
        const double acc = trial(s).validation.acc;
        if (acc > best_acc) best_acc = acc, best_value = v;  // ties keep the earlier (configured) value
      }
      mt.chosen[ax.key] = best_value;
    }
    out.push_back(std::move(mt));
  }
  return out;
}

ExperimentConfig apply_tuning(const ExperimentConfig& c, const std::vector<MethodTuning>& t) {
  ExperimentConfig out = c;
  for (const MethodTuning& m : t)
    for (const auto& [k, v] : m.chosen) out.method_settings[m.method][k] = v;
  validate_experiment_config(out);
  return out;
}

nlohmann::ordered_json tuning_to_json(const std::vector<MethodTuning>& t, const ExperimentConfig& c) {
  using oj = nlohmann::ordered_json;
  oj methods = oj::object();
  for (const MethodTuning& m : t) {
    oj trials = oj::array();
    for (const TuningTrial& tr : m.trials) {
      auto num = [](bool has, double v) { return has ? oj(v) : oj(nullptr); };
      trials.push_back({{"settings", tr.settings},
                        {"validation", {{"acc", num(tr.validation.has_acc, tr.validation.acc)},
                                        {"bwt", num(tr.validation.has_bwt, tr.validation.bwt)},
                                        {"forgetting", num(tr.validation.has_forgetting, tr.validation.forgetting)},
                                        {"fwt", num(tr.validation.has_fwt, tr.validation.fwt)}}},
                        {"seconds", tr.seconds}});
    }
    methods[m.method] = {{"chosen", m.chosen}, {"trials", trials}};
  }
  return {{"split", "validation"},
          {"test_split_read", false},
          {"criterion", "ACC on the validation split after the last task (joint: after joint training)"},
          {"seed", c.train.seed},
          {"order", c.tasks},
          {"search", "coordinate-wise over the keys in order (train.lr, aria.spc_lambda, aria.plasticity_lambda, "
                     "aria.slow_lr_ratio, aria.lwf_lambda): each key's candidates with the best values so far; ties "
                     "keep the configured value"},
          {"methods", methods}};
}

}  // namespace aria
