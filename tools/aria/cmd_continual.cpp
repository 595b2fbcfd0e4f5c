// aria continual: runs a task sequence for every requested method (aria and the baselines) and
// seed on the same data, budget and evaluation protocol, and writes OUT/report.json (matrices and
// metrics, train/report/report.h), OUT/config.json (the config used, every default filled in, paths
// absolute) and OUT/log.txt (everything printed), then prints the tables.
//
// Protocol per (seed, method): a fresh ContinualModel from the loaded GPT-2 (gated MLPs injected
// when the method's spec says so), accuracies b[j] of every task before any training, then per
// task: add_task, train steps_per_task optimizer steps, consolidate (SPC / EWC methods), evaluate
// every task -> one matrix row. multitask trains jointly on all tasks (the same total number of
// steps) and reports its final accuracies only.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/kernels/backend.h"
#include "aria/model/continual_model.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/continual_run.h"
#include "tools/aria/run_folder.h"
#include "tools/aria/run_state.h"
#include "aria/train/continual/aria_config.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/continual/fisher.h"
#include "aria/train/continual/head_probe.h"
#include "aria/train/report/progress.h"
#include "aria/train/report/report.h"
#include "aria/train/report/report_csv.h"
#include "aria/train/experiment/task_orders.h"

namespace aria::cli {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// ---- output: the screen and log.txt ------------------------------------------------------------

// Copies a stream to the screen (stderr for progress, stdout for results) and to log.txt. Two TeeBufs
// may share one log: it receives whole lines only, so their lines never mix. A line that a terminal
// progress bar redraws with '\r' is logged in its last state, without escape codes.
// Every write to log.txt is checked: the first failure (a full disk, a file size limit) is kept, the
// log is not written to after it, and check() throws it at the run's next check point, naming log.txt
// and the OS's reason. A run never ends "successfully" with a truncated log.
class TeeBuf : public std::streambuf {
 public:
  TeeBuf(std::streambuf* screen, io::FileWriter* log) : screen_(screen), log_(log) {}
  ~TeeBuf() override {
    try {
      flush_pending();
    } catch (...) {
    }
  }
  // Throws the first failed write to log.txt, if any.
  void check() {
    ARIA_CHECK(error_.empty(), "log file: ", error_);
  }
  bool failed() const { return !error_.empty(); }
  // A line for log.txt only (a warning already printed on stderr).
  void log_only(const std::string& line) { write_log(line + "\n"); }
  // Writes what is pending to log.txt without closing it (a TeeBuf that shares another one's log).
  void flush_lines() {
    flush_pending();
    check();
  }
  // Writes what is pending, then closes log.txt (checked).
  void close() {
    flush_pending();
    if (error_.empty()) {
      try {
        log_->close();
      } catch (const Error& e) {
        error_ = e.what();
      }
    }
    check();
  }

 protected:
  int overflow(int c) override {
    if (c == EOF) return 0;
    if (screen_->sputc(char(c)) == EOF) return EOF;
    if (c == '\r') {
      pending_.clear();
    } else if (c == '\n') {
      strip_escapes();
      write_log(pending_ + '\n');
      pending_.clear();
    } else {
      pending_ += char(c);
    }
    return c;
  }
  int sync() override { return screen_->pubsync(); }

 private:
  void write_log(const std::string& s) {
    if (!error_.empty()) return;
    try {
      log_->write(s);
    } catch (const Error& e) {
      error_ = e.what();
    }
  }
  void strip_escapes() {
    for (size_t p; (p = pending_.find("\033[K")) != std::string::npos;) pending_.erase(p, 3);
  }
  void flush_pending() {
    strip_escapes();
    if (!pending_.empty()) write_log(pending_ + '\n');
    pending_.clear();
  }
  std::streambuf* screen_;
  io::FileWriter* log_;
  std::string pending_, error_;
};

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100 * x);
  return b;
}

std::string accuracies_line(const std::vector<std::string>& names, const std::vector<double>& acc) {
  std::string s;
  for (size_t j = 0; j < acc.size(); ++j) s += (j ? " | " : "") + names[j] + " " + pct(acc[j]);
  return s;
}

// ---- the experiment ----------------------------------------------------------------------------

// What makes a run survive: the run folder, its run-state file, metrics.jsonl, checkpoint cadence.
struct Durable {
  fs::path out;
  RunState state;
  MetricsLog* metrics = nullptr;
  int64_t checkpoint_every = 0;  // optimizer steps of a task (or the joint phase); 0 = task boundaries only
};

// Thrown where a stop request (SIGINT/SIGTERM) was honoured, after the checkpoint: names the place.
struct StopHere {
  std::string where;
};

struct Experiment {
  Durable* durable = nullptr;
  ExperimentConfig cfg;
  Device device;
  Gpt2Model base;  // the loaded GPT-2; every (method, seed) starts from a copy
  std::vector<ClsTaskData> tasks;
  std::vector<std::string> names;
  std::vector<std::vector<int>> orders;  // task orders (train/experiment/task_orders.h); orders[0] is as listed
};

// Work in "training-step equivalents", so the ETA covers evaluation and Fisher passes too: an
// optimizer step processes batch * accum examples forward and backward (~3 forward passes), an
// evaluation example costs one forward pass, a Fisher example (per-sample gradients) about three.
struct WorkModel {
  double eval_all = 0, fisher_per_task = 0;
  int64_t total = 0;
};

WorkModel estimate_work(const Experiment& e) {
  const TrainSettings& t = e.cfg.train;
  const double per_step_examples = 3.0 * t.batch_size * t.grad_accum;
  WorkModel w;
  double eval_examples = 0, train_examples = 0;
  for (const ClsTaskData& d : e.tasks) {
    eval_examples += double((t.eval_split == "test" ? d.test : d.validation).size());
    train_examples += double(d.train.size());
  }
  w.eval_all = eval_examples / per_step_examples;
  const double fisher_examples = e.cfg.aria.consolidation_steps_per_task > 0
                                     ? double(e.cfg.aria.consolidation_steps_per_task) * t.batch_size
                                     : train_examples / double(e.tasks.size());
  w.fisher_per_task = 3.0 * fisher_examples / per_step_examples;
  const double T = double(e.tasks.size());
  double per_seed = 0;
  const double orders = double(e.orders.size());
  for (const std::string& m : e.cfg.methods) {
    const MethodSpec spec = method_spec(m);
    // A joint method has no order: it runs once per seed.
    double run = T * double(t.steps_per_task) + w.eval_all * (spec.joint ? 2 : T + 1);
    if (spec.spc) run += w.fisher_per_task * T;
    per_seed += spec.joint ? run : run * orders;
  }
  w.total = std::max<int64_t>(1, int64_t(std::ceil(per_seed * e.cfg.seeds)));
  return w;
}

// The run's single progress line, advanced in work units.
struct Tracker {
  Progress& progress;
  const WorkModel& work;
  TeeBuf& tee;  // a failed write to log.txt stops the run at the next step
  double done = 0;
  void add(double units, const std::string& what) {
    done += units;
    progress.update(std::min<int64_t>(work.total - 1, int64_t(done)), what);
    tee.check();
  }
};

// The tasks in training order `order` (an index into e.orders).
std::vector<const ClsTaskData*> task_ptrs(const Experiment& e, int order) {
  std::vector<const ClsTaskData*> v;
  for (int i : e.orders[size_t(order)]) v.push_back(&e.tasks[size_t(i)]);
  return v;
}

std::vector<std::string> ordered_names(const Experiment& e, int order) {
  std::vector<std::string> v;
  for (int i : e.orders[size_t(order)]) v.push_back(e.names[size_t(i)]);
  return v;
}

ojson method_spec_json(const MethodSpec& s, const AriaSettings& a) {
  return {{"gated_mlp", s.gated_mlp},       {"adapters", s.adapters},
          {"consolidation", s.spc ? (s.name.rfind("aria", 0) == 0 ? "spc" : "ewc") : "none"},
          {"plasticity_loss", s.plasticity}, {"gradient_dampening", s.dampening && a.gradient_dampening},
          {"asymmetric_lr", s.asymmetric_lr}, {"freeze_trunk", s.freeze_trunk},
          {"joint", s.joint}};
}

FisherScope fisher_scope_of(const Experiment& e, const MethodSpec& spec) {
  return spec.scope_from_settings ? parse_fisher_scope(e.cfg.aria.fisher_scope) : spec.fisher_scope;
}

// Which Fisher runs, as the trainer computes it (ContinualTrainer::consolidate_task).
std::string fisher_line(const Experiment& e, const MethodSpec& spec) {
  const int64_t n = e.cfg.aria.consolidation_steps_per_task;
  return "Fisher estimator " + e.cfg.aria.fisher_estimator + ", scope " + fisher_scope_name(fisher_scope_of(e, spec)) +
         ", on the training split (" + (n > 0 ? std::to_string(n) + " batches" : std::string("all of it")) + ")";
}

std::string step_fields(const ContinualTrainer& t) {
  const StepStats& s = t.last_step();
  char b[160];
  std::snprintf(b, sizeof b, "loss %.4f | ce %.4f | acc %.2f | lr %.2e", s.loss, s.ce, s.accuracy, s.lr);
  return b;
}

// One method, one seed: the accuracy matrix and the before-training accuracies.
MethodRun run_method(const Experiment& e, const std::string& method, uint64_t seed, int order, Tracker& tr,
                     std::ostream& log, const ContinualHooks& hooks) {
  const MethodSpec spec = method_spec(method);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string who = method + " seed " + std::to_string(seed) + (order > 0 ? " order " + std::to_string(order) : "");
  Durable& d = *e.durable;
  const std::string ckpt_rel = "resume/" + run_folder_name(method, seed, order);
  const std::string ckpt = (d.out / ckpt_rel).string();
  // This run was in progress when the previous process stopped: it continues from its checkpoint.
  std::optional<RunState::InProgress> resumed;
  if (d.state.in_progress && d.state.in_progress->method == method && d.state.in_progress->seed == seed &&
      d.state.in_progress->order_index == order)
    resumed = d.state.in_progress;
  const ExperimentConfig mcfg = config_for_method(e.cfg, method);  // the method's own settings (tuned)
  TrainSettings train = mcfg.train;
  train.seed = seed;
  TrainerOptions opt;
  opt.verbose = false;  // the run's own progress line reports at the trainer's report points
  opt.log = &log;
  std::string phase;     // what the progress line names: the task being trained, or "joint"
  int64_t reported = 0;  // steps of the phase already added to the progress
  const ContinualTrainer* self = nullptr;
  opt.on_report = [&](const StepStats& s, int64_t done, int64_t total) {
    d.metrics->step(method, seed, phase, s, done, total);
    tr.add(double(done - reported), who + " | " + phase + " step " + std::to_string(done) + "/" +
                                        std::to_string(total) + " | " + step_fields(*self));
    reported = done;
  };
  opt.stop_requested = [] { return StopSignals::requested(); };
  std::optional<ContinualTrainer> holder;
  if (resumed) {
    holder.emplace(ContinualTrainer::load(ckpt, opt, e.device));
  } else {
    ContinualModel model;
    model.gpt = e.base.to(e.device);
    if (spec.gated_mlp) inject_gated_mlp(model.gpt, seed, e.cfg.aria.gate_init_std);
    model.use_adapters = spec.adapters;
    model.adapter_dim = e.cfg.aria.adapter_dim;
    holder.emplace(std::move(model), mcfg.aria, train, spec, opt);
  }
  ContinualTrainer& trainer = *holder;
  self = &trainer;
  const std::vector<const ClsTaskData*> all = task_ptrs(e, order);
  const std::vector<std::string> names = ordered_names(e, order);
  const double seconds_before = resumed ? resumed->seconds : 0.0;
  // Where the time goes (report.json "time_split", the log's time table). Each part drains the
  // device's queue at its end, so asynchronous GPU work is charged to the part that queued it: one
  // wait per part (a slice of steps, a consolidation, an evaluation), never inside a step.
  TimeSplit time = resumed ? resumed->time : TimeSplit{};
  auto charge = [&](double& part, const auto& work) {
    const auto start = std::chrono::steady_clock::now();
    auto drained = [&] {
      if (e.device.is_cuda()) cuda::synchronize();
      part += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    if constexpr (std::is_void_v<decltype(work())>) {
      work();
      drained();
    } else {
      auto result = work();
      drained();
      return result;
    }
  };
  std::vector<double> last_gates = resumed ? resumed->last_gate_means : std::vector<double>{};
  // The head-only transfer probe (train/continual/head_probe.h): per position, on the initial trunk (before any
  // training) and on the trunk after the earlier tasks.
  const bool probe = mcfg.train.head_probe_steps > 0 && !spec.joint && all.size() > 1;
  std::vector<double> head_initial = resumed ? resumed->head_initial : std::vector<double>{};
  std::vector<double> head_trained = resumed ? resumed->head_trained : std::vector<double>{};
  auto head_accuracy = [&](size_t j) {
    const ClsTaskData& t = *all[j];
    const HeadProbeSettings hs{mcfg.train.head_probe_steps, train.batch_size, train.lr * mcfg.aria.head_lr_mult, seed};
    return charge(time.eval, [&] {
      return head_only_accuracy(trainer.model(), t.name, t.num_labels(), t.train,
                                train.eval_split == "test" ? t.test : t.validation, hs);
    });
  };

  // A checkpoint of this run (atomic) and the run-state file naming it; then, on a stop request, stop.
  auto checkpoint = [&](int task, const std::string& where) {
    if (trainer.last_step().step > 0) last_gates = trainer.last_step().gate_means;
    trainer.save(ckpt);
    RunState::InProgress p;
    p.method = method;
    p.seed = seed;
    p.order_index = order;
    p.checkpoint = ckpt_rel;
    p.task = task;
    p.phase = where;
    p.phase_steps = trainer.phase_steps();
    p.optimizer_steps = trainer.optimizer_steps();
    p.last_gate_means = last_gates;
    p.head_initial = head_initial;
    p.head_trained = head_trained;
    p.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.time = time;
    d.state.in_progress = p;
    d.state.metrics_bytes = d.metrics->bytes();
    save_state(d.out.string(), d.state);
  };
  auto stop_if_requested = [&](int task, const std::string& where, const std::string& place) {
    if (!StopSignals::requested()) return;
    checkpoint(task, where);
    throw StopHere{who + ", " + place + " (checkpoint " + ckpt + ")"};
  };
  // Trains the current phase to its end in slices of checkpoint_every steps, with a checkpoint after each.
  auto train_phase = [&](int task, const std::function<int64_t(int64_t)>& steps, int64_t total) {
    const int64_t every = d.checkpoint_every > 0 ? d.checkpoint_every : total;
    while (trainer.phase_steps() < total) {
      const int64_t ran = charge(time.train, [&] { return steps(every - trainer.phase_steps() % every); });
      stop_if_requested(task, "train", phase + " step " + std::to_string(trainer.phase_steps()) + "/" +
                                           std::to_string(total));
      if (ran == 0) break;
      if (trainer.phase_steps() < total) checkpoint(task, "train");
    }
  };

  MethodRun run;
  run.seed = seed;
  run.order_index = order;
  if (order > 0) run.order = e.orders[size_t(order)];
  run.joint = spec.joint;
  if (resumed) {
    // The accuracy history is inside the checkpoint: row 0 before training, then one per finished task.
    const std::vector<std::vector<double>>& h = trainer.history();
    ARIA_CHECK(!h.empty(), "checkpoint ", ckpt, " holds no accuracy history");
    run.before = h[0];
    for (size_t i = 1; i < h.size(); ++i) run.matrix.push_back(h[i]);
    reported = trainer.phase_steps();
    tr.progress.message(who + ": resumed from " + ckpt + " (" + std::to_string(trainer.optimizer_steps()) +
                        " optimizer steps done)");
  } else {
    run.before = charge(time.eval, [&] { return trainer.evaluate_all_tasks(all).back(); });
    d.metrics->eval(method, seed, "before training", trainer.optimizer_steps(), names, run.before);
    tr.add(tr.work.eval_all, who + " | evaluated before training");
    tr.progress.message(who + " before training: " + accuracies_line(names, run.before));
    if (probe) {
      head_initial.assign(all.size(), std::nan(""));
      head_trained.assign(all.size(), std::nan(""));
      for (size_t j = 1; j < all.size(); ++j) head_initial[j] = head_accuracy(j);
      tr.progress.message(who + ": head-only probe (" + std::to_string(mcfg.train.head_probe_steps) +
                          " steps) on the initial trunk: " +
                          accuracies_line(std::vector<std::string>(names.begin() + 1, names.end()),
                                          std::vector<double>(head_initial.begin() + 1, head_initial.end())));
    }
    stop_if_requested(0, "evaluated", "before training");
  }
  if (spec.joint) {
    phase = "joint training";
    if (run.matrix.empty()) {
      train_phase(0, [&](int64_t n) { return trainer.train_joint_steps(all, n); },
                  e.cfg.train.steps_per_task * int64_t(all.size()));
      run.matrix.push_back(charge(time.eval, [&] { return trainer.evaluate_all_tasks(all).back(); }));
      d.metrics->eval(method, seed, phase, trainer.optimizer_steps(), names, run.matrix.back());
      tr.add(tr.work.eval_all, who + " | evaluated");
      tr.progress.message(who + " after joint training: " + accuracies_line(names, run.matrix.back()));
    }
  } else {
    for (size_t i = run.matrix.size(); i < all.size(); ++i) {
      const ClsTaskData& task = *all[i];
      // A resumed checkpoint taken inside this task's steps has it registered already.
      const bool registered = trainer.task_id(task.name) >= 0;
      const int id = registered ? trainer.task_id(task.name) : trainer.add_task(task.name, task.num_labels());
      phase = task.name;
      if (!registered) reported = 0;
      train_phase(int(i), [&](int64_t n) { return trainer.train_steps(task, n); }, e.cfg.train.steps_per_task);
      resumed.reset();
      if (spec.spc) {
        tr.progress.message(who + ": consolidating " + task.name + ": " + fisher_line(e, spec));
        charge(time.fisher, [&] { trainer.consolidate_task(id, task); });
        tr.add(tr.work.fisher_per_task, who + " | consolidated " + task.name);
      } else {
        // A plug-in method's on_consolidate hook (a no-op for the others).
        charge(time.fisher, [&] { trainer.consolidate_task(id, task); });
      }
      run.matrix.push_back(charge(time.eval, [&] { return trainer.evaluate_all_tasks(all).back(); }));
      d.metrics->eval(method, seed, "after " + task.name, trainer.optimizer_steps(), names, run.matrix.back());
      tr.add(tr.work.eval_all, who + " | evaluated after " + task.name);
      tr.progress.message(who + " after " + task.name + ": " + accuracies_line(names, run.matrix.back()));
      if (hooks.after_task)  // aria run's gate histograms: forwards over the evaluation sets
        charge(time.eval, [&] { hooks.after_task(method, seed, order, int(i), trainer, all, tr.progress); });
      if (probe && i + 1 < all.size()) {
        head_trained[i + 1] = head_accuracy(i + 1);
        tr.progress.message(who + ": head-only probe of " + all[i + 1]->name + " after " + task.name + ": " +
                            pct(head_trained[i + 1]) + " (initial trunk " + pct(head_initial[i + 1]) + ")");
      }
      if (i + 1 < all.size()) {  // a task boundary (the last one ends the run: its result is recorded)
        checkpoint(int(i), "evaluated");
        stop_if_requested(int(i), "evaluated", "after " + task.name);
      }
    }
  }
  if (trainer.last_step().step > 0) last_gates = trainer.last_step().gate_means;
  // Per-example correctness of every row (before, then each task): the report's bootstrap over test
  // examples. A run resumed from a checkpoint written before it was recorded has none.
  if (trainer.correct_history().size() == trainer.history().size()) run.correct = trainer.correct_history();
  if (probe) {
    run.head_initial = head_initial;
    run.head_trained = head_trained;
  }
  run.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.time = time;
  run.time.host = std::max(0.0, run.seconds - time.train - time.fisher - time.eval);
  run.info = method_spec_json(spec, e.cfg.aria);
  run.info["optimizer_steps"] = trainer.optimizer_steps();
  run.info["parameters"] = trainer.model().num_parameters();
  if (spec.spc) {
    run.info["fisher_estimator"] = e.cfg.aria.fisher_estimator;
    run.info["fisher_scope"] = fisher_scope_name(fisher_scope_of(e, spec));
  }
  if (!last_gates.empty()) run.info["final_gate_means"] = last_gates;
  if (const auto it = e.cfg.method_settings.find(method); it != e.cfg.method_settings.end())
    run.info["method_settings"] = ojson::parse(nlohmann::json(it->second).dump());
  run.info["seconds"] = run.seconds;
  if (hooks.after_run) hooks.after_run(method, seed, order, trainer, all, tr.progress);
  return run;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

// The config of the file with the command line's overrides, validated; paths made absolute.
ExperimentConfig resolve_config(const Args& args) {
  // --resume DIR: the run folder's config.json (written resolved by the run being resumed).
  ExperimentConfig c = load_experiment_config(
      args.given("resume") ? (fs::path(args.str("resume")) / "config.json").string() : args.str("config"));
  apply_experiment_flags(args, c, "aria continual");  // --set, --seed, --num-seeds, --text-field, --label-field
  if (args.given("methods")) c.methods = split_list(args.str("methods"));
  if (args.given("device")) c.device = args.str("device");
  if (args.given("model")) c.model = args.str("model");
  ARIA_USAGE_CHECK(!(args.on("bf16") && args.on("fp32")), "aria continual: --bf16 and --fp32 are two precisions: choose one");
  if (args.on("bf16")) c.train.precision = "bf16";
  if (args.on("fp32")) c.train.precision = "fp32";
  try {
    validate_experiment_config(c);
  } catch (const Error& e) {
    throw UsageError(std::string("aria continual: with the command line's overrides: ") + e.what());
  }
  if (c.model.rfind("cache:", 0) == 0)
    ARIA_FAIL("'model' = \"", c.model, "\": ", c.model == "cache:default" ? "cache:default is" : "cached models are",
              " created by `aria run`; pass an HF directory (the config's 'model' or --model)");
  c.model = absolute(c.model);
  c.data_dir = absolute(c.data_dir);
  // Cheap checks before the run folder is claimed (a typo must not leave a folder that needs --overwrite).
  ARIA_CHECK(fs::exists(fs::path(c.model) / "config.json"), "aria continual: model '", c.model,
             "' is not a Hugging Face GPT-2 directory (no config.json)");
  // Every task read and checked (no tokenizing), so a data error never leaves a run folder behind.
  check_cls_tasks(c.data_dir, c.tasks, cls_data_options(c.data), "aria continual");
  return c;
}

ojson settings_json(const Experiment& e) {
  const TrainSettings& t = e.cfg.train;
  const TrainerOptions opt;  // run_method uses the defaults
  ojson s;
  s["config"] = ojson::parse(experiment_config_to_json(e.cfg).dump());
  s["device"] = e.device.str();
  s["precision"] = bf16_precision(e.cfg.train, e.device) ? "bf16" : "fp32";  // what trains (auto resolved)
  s["model"] = {{"path", e.cfg.model},
                {"n_layer", e.base.config.n_layer},
                {"n_embd", e.base.config.n_embd},
                {"n_head", e.base.config.n_head},
                {"n_positions", e.base.config.n_positions},
                {"parameters", e.base.num_parameters()}};
  ojson tasks = ojson::array();
  for (const ClsTaskData& d : e.tasks)
    tasks.push_back({{"name", d.name},
                     {"labels", d.label_names},
                     {"labels_source", d.labels_source},
                     {"validation_source", d.validation_source},
                     {"files", d.files},
                     {"train", d.train.size()},
                     {"validation", d.validation.size()},
                     {"test", d.test.size()}});
  s["task_data"] = tasks;
  ojson orders = ojson::array();
  for (const std::vector<int>& o : e.orders) {
    std::vector<std::string> v;
    for (int i : o) v.push_back(e.names[size_t(i)]);
    orders.push_back(v);
  }
  s["task_orders"] = orders;
  if (!e.cfg.method_settings.empty())
    s["method_settings"] = ojson::parse(nlohmann::json(e.cfg.method_settings).dump());
  ojson methods;
  for (const std::string& m : e.cfg.methods) methods[m] = method_spec_json(method_spec(m), e.cfg.aria);
  s["method_specs"] = methods;
  s["protocol"] =
      "every method: the same GPT-2, tasks in the same order, one head per task selected by the task id at "
      "evaluation, " + std::to_string(t.steps_per_task) + " optimizer steps per task (batch " +
      std::to_string(t.batch_size) + " x accumulation " + std::to_string(t.grad_accum) +
      "), the same base lr and weight decay (2-D weights only; heads and adapters at lr x head_lr_mult for every "
      "method, aria's slow pathway at lr x slow_lr_ratio), evaluation on the " + t.eval_split +
      " split of every task after every task; multitask trains on all tasks jointly for tasks x steps_per_task "
      "steps";
  char sched[160];
  std::snprintf(sched, sizeof sched, "per task, optimizer restarted: linear warmup over %.0f%% of the steps, then %s to %g x lr",
                100 * opt.warmup_fraction, opt.schedule == ScheduleConfig::Kind::Cosine ? "cosine" : "constant",
                opt.min_lr_ratio);
  s["lr_schedule"] = sched;
  s["fisher_estimator"] = e.cfg.aria.fisher_estimator;
  s["fisher_scope"] = e.cfg.aria.fisher_scope;
  s["metrics"] = {{"acc", "mean_j a[T-1][j]"},
                  {"bwt", "mean_{j<T-1} (a[T-1][j] - a[j][j])"},
                  {"forgetting", "mean_{j<T-1} (max_{j<=i<T-1} a[i][j] - a[T-1][j])"},
                  {"fwt", "mean_{j>0} (a[j-1][j] - b[j]), b = accuracies before any training"},
                  {"untrained_tasks", "evaluated through one fixed probe head per (task, seed): N(0, 0.02) "
                                      "seeded by the task name and train.seed, identity adapter, current trunk"}};
  return s;
}

void write_json(const fs::path& p, const ojson& j) { io::write_file_atomic(p.string(), j.dump(2) + "\n"); }

// Loads model, tokenizer and tasks, runs every (seed, method), writes the report and prints it.
void run_experiment(const ExperimentConfig& resolved, const std::string& config_path, const fs::path& out,
                    std::ostream& log, TeeBuf& tee, std::ostream& results, const ContinualHooks& hooks,
                    Durable& durable, bool resume, const std::string& command_line) {
  Experiment e;
  e.durable = &durable;
  e.cfg = resolved;
  e.device = parse_device(resolved.device);
  e.cfg.device = e.device.str();
  e.cfg.orders = resolved_orders(e.cfg, e.device.is_cuda());  // config.json records the number that ran
  if (!resume) {
    write_json(out / "config.json", ojson::parse(experiment_config_to_json(e.cfg).dump()));
    save_state(out.string(), durable.state);  // resumable from here on (a kill now restarts every run)
    log << "aria continual: " << config_path << " -> " << out.string() << "\n";
  } else {
    log << "aria continual: resuming " << out.string() << " (" << durable.state.done.size() << " run(s) finished"
        << (durable.state.in_progress ? ", " + durable.state.in_progress->method + " seed " +
                                            std::to_string(durable.state.in_progress->seed) + " from step " +
                                            std::to_string(durable.state.in_progress->optimizer_steps)
                                      : std::string())
        << ")\n";
  }
  e.base = gpt2_load(e.cfg.model, e.device);
  ARIA_CHECK(e.cfg.train.max_seq_len <= e.base.config.n_positions, "experiment config: 'train.max_seq_len' = ",
             e.cfg.train.max_seq_len, " exceeds the model's n_positions = ", e.base.config.n_positions);
  const Gpt2Tokenizer tok = load_tokenizer_for(e.cfg.model);
  log << "model " << e.cfg.model << ": " << e.base.num_parameters() << " parameters (" << e.base.config.n_layer
      << " layers, d=" << e.base.config.n_embd << "), device " << e.device.str() << "\n";
  // Refuses bf16 on the CPU here, before any run starts (the error names the device).
  const bool bf16 = bf16_precision(e.cfg.train, e.device);
  log << "precision: " << (bf16 ? "bf16 (float32 AdamW masters)" : "fp32") << " (train.precision \""
      << e.cfg.train.precision << "\")\n";
  for (const std::string& name : e.cfg.tasks) {
    e.tasks.push_back(load_cls_task((fs::path(e.cfg.data_dir) / name).string(), tok, e.cfg.train.max_seq_len,
                                    e.cfg.train.max_train_examples, e.cfg.train.max_eval_examples,
                                    cls_data_options(e.cfg.data)));
    const ClsTaskData& d = e.tasks.back();
    e.names.push_back(d.name);
    log << "task " << d.name << ": " << d.num_labels() << " labels, " << d.train.size() << " train / "
        << d.validation.size() << " validation / " << d.test.size() << " test\n";
    log << "  labels: " << d.labels_source << "; validation: " << d.validation_source << "\n";
    // Checked before the first step, not found after hours of training:
    // the tokenizer's ids must be rows of the model's embedding,
    const int32_t top = max_token_id(d);
    ARIA_CHECK(top < e.base.config.vocab_size, "task '", d.name, "': token id ", top, " (from the vocabulary in ",
               find_vocab_dir(e.cfg.model), ") is out of range for the model's vocabulary of ",
               e.base.config.vocab_size, " tokens: the model and its vocabulary files do not match");
    // a training split with one class teaches nothing (a warning: the run is still well defined).
    if (const std::string w = train_class_warning(d); !w.empty()) {
      log << std::flush;
      std::cerr << "aria: warning: " << w << "\n" << std::flush;
      tee.log_only("aria: warning: " + w);
    }
  }
  // Task names (folder names) are unique: the config check compares them; two paths that differ
  // only after normalisation are caught here.
  for (size_t i = 0; i < e.names.size(); ++i)
    for (size_t p = 0; p < i; ++p)
      ARIA_CHECK(e.names[p] != e.names[i], "tasks '", e.cfg.tasks[p], "' and '", e.cfg.tasks[i],
                 "' have the same task name '", e.names[i], "' (a task is named by its folder): rename one");
  e.orders = task_orders(int(e.tasks.size()), e.cfg.orders, e.cfg.train.seed);
  log << "methods: ";
  for (size_t i = 0; i < e.cfg.methods.size(); ++i) log << (i ? ", " : "") << e.cfg.methods[i];
  log << "; " << e.cfg.seeds << " seed(s) from " << e.cfg.train.seed << "; " << e.orders.size() << " task order(s)";
  for (size_t o = 1; o < e.orders.size(); ++o) log << (o == 1 ? " (" : "; ") << o << ": " << order_text(e.orders[o], e.names);
  log << (e.orders.size() > 1 ? ")" : "") << "; " << e.cfg.train.steps_per_task
      << " steps per task; evaluation on the " << e.cfg.train.eval_split << " split\n";
  for (const std::string& m : e.cfg.methods)
    if (method_spec(m).spc) log << m << " consolidation: " << fisher_line(e, method_spec(m)) << "\n";
  log << std::flush;
  tee.check();

  const WorkModel work = estimate_work(e);
  Progress progress(log, work.total, "run", std::max<int64_t>(1, work.total / 100), is_terminal(std::cerr));
  Tracker tracker{progress, work, tee};
  ClReport report;
  report.tasks = e.names;
  for (const std::string& m : e.cfg.methods) report.methods.push_back(MethodResult{m, {}});
  auto add_run_facts = [&](ClReport& r) {
    r.settings = settings_json(e);
    r.settings["total_seconds"] = progress.elapsed_seconds();
    r.settings["version"] = aria_version();
    r.settings["git_hash"] = aria_git_hash();
    r.settings["command_line"] = command_line;
    r.num_labels.clear();  // chance = 1/num_labels per task (report.json "chance")
    for (const ClsTaskData& d : e.tasks) r.num_labels.push_back(d.num_labels());
  };
  try {
    size_t total_runs = 0;
    for (const std::string& m : e.cfg.methods) total_runs += size_t(e.cfg.seeds) * (method_spec(m).joint ? 1 : e.orders.size());
    for (int s = 0; s < e.cfg.seeds; ++s)
      for (int o = 0; o < int(e.orders.size()); ++o)
        for (size_t m = 0; m < e.cfg.methods.size(); ++m) {
          const std::string& method = e.cfg.methods[m];
          if (o > 0 && method_spec(method).joint) continue;  // joint training has no task order
          const uint64_t seed = e.cfg.train.seed + uint64_t(s);
          const std::string who = method + " seed " + std::to_string(seed) + (o > 0 ? " order " + std::to_string(o) : "");
          if (const RunState::Done* done = durable.state.find(method, seed, o)) {  // finished before a resume
            report.methods[m].runs.push_back(done->run);
            progress.message(who + ": finished before the resume (run-state file)");
            continue;
          }
          report.methods[m].runs.push_back(run_method(e, method, seed, o, tracker, log, hooks));
          durable.state.done.push_back({method, seed, report.methods[m].runs.back()});
          durable.state.in_progress.reset();
          durable.state.metrics_bytes = durable.metrics->bytes();
          save_state(out.string(), durable.state);
          std::error_code ec;
          fs::remove_all(out / "resume" / run_folder_name(method, seed, o), ec);  // its resume checkpoint
          if (StopSignals::requested() && durable.state.done.size() < total_runs)
            throw StopHere{"after " + who + " finished"};
        }
  } catch (const StopHere& stop) {
    // A partial report of the finished runs, the run-state file saying where it stopped, and the exit code.
    progress.finish();
    ClReport partial;
    partial.tasks = report.tasks;
    for (const MethodResult& mr : report.methods)
      if (!mr.runs.empty()) partial.methods.push_back(mr);
    add_run_facts(partial);
    ojson j = report_to_json(partial);
    j["partial"] = true;
    j["stopped_at"] = stop.where;
    write_json(out / "report.json", j);
    durable.state.stopped = StopSignals::signal_name() + ": " + stop.where;
    save_state(out.string(), durable.state);
    log << "\naria: interrupted by " << StopSignals::signal_name() << ": stopped at " << stop.where << "\n"
        << "aria: wrote a partial report " << (out / "report.json").string() << " (" << durable.state.done.size()
        << " finished run(s)); continue with: aria " << (hooks.folder_claimed ? "run" : "continual")
        << " --resume " << out.string() << "\n"
        << std::flush;
    tee.check();
    throw Interrupted{StopSignals::exit_code()};
  }
  progress.update(work.total, "done");
  progress.finish();

  add_run_facts(report);
  tee.check();
  const ojson final_json = report_to_json(report);
  write_json(out / "report.json", final_json);
  // Every table as CSV next to it, for paper figures (train/report/report_csv.h), the loss curves from metrics.jsonl.
  write_report_tables(final_json, read_loss_curves((out / "metrics.jsonl").string()), (out / "tables").string());
  durable.state.finished = true;
  durable.state.stopped.clear();
  durable.state.metrics_bytes = durable.metrics->bytes();
  save_state(out.string(), durable.state);
  // The result: the tables on stdout (and in log.txt), after the progress on stderr.
  log << std::flush;
  print_report(report, results);
  results << "\nwrote " << (out / "report.json").string() << ", " << (out / "tables").string() << "/*.csv, "
      << (out / "config.json").string() << ", " << (out / "log.txt").string() << " (" << format_duration(progress.elapsed_seconds()) << ")\n"
      << std::flush;
  tee.check();
}

}  // namespace

int cmd_continual(int argc, char** argv) { return run_continual(argc, argv, {}); }

int run_continual(int argc, char** argv, const ContinualHooks& hooks) {
  Args args("continual",
            "Runs the experiment config's task sequence for every method (aria, finetune, ewc, adapters,\n"
            "multitask) and seed on the same protocol; writes OUT/report.json, OUT/config.json, OUT/log.txt\n"
            "and prints the accuracy matrices and the metrics table. The data format is docs/data.md's.");
  args.option("config", "experiment config (JSON, train/continual/aria_config.h); required unless --resume", "")
      .option("out", "output directory (created; an existing run in it is refused unless --overwrite); required "
                     "unless --resume", "")
      .option("resume", "continue the interrupted run in this run folder (its config.json; finished runs are kept, "
                        "the one in progress continues from its last checkpoint)", "")
      .option("checkpoint-every", "save the run in progress every N optimizer steps of a task, and at task "
                                  "boundaries (0: task boundaries only)", "200")
      .option("model", "Hugging Face GPT-2 directory (overrides the config's 'model')", "")
      .option("device", "cpu, cuda, cuda:N or auto (overrides the config's 'device')", "")
      .option("methods", "comma-separated subset of aria,finetune,ewc,adapters,multitask (overrides 'methods')", "")
      .toggle("bf16", "train in bfloat16 with float32 masters (train.precision \"bf16\"; CUDA only; the default there)")
      .toggle("fp32", "train in float32 (train.precision \"fp32\"; the default on the CPU)")
      .toggle("overwrite", "replace the previous run in --out (its report, config, log, checkpoints)");
  add_experiment_flags(args);
  if (!args.parse(argc, argv)) return 0;
  const bool resume = args.given("resume");
  if (resume) {
    // The experiment is the run folder's: a flag that would change it is refused, not silently ignored.
    std::vector<std::string> refused = {"config", "out", "model", "device", "methods", "overwrite"};
    for (const std::string& f : experiment_flag_names()) refused.push_back(f);
    for (const std::string& f : refused)
      ARIA_USAGE_CHECK(!args.given(f) && !(f == "overwrite" && args.on(f)), "aria continual: --resume continues "
                 "the run folder's experiment (its config.json); --", f, " cannot be combined with it");
    ARIA_USAGE_CHECK(!args.str("resume").empty(), "aria continual: --resume needs a run folder");
    ARIA_USAGE_CHECK(!args.on("bf16") && !args.on("fp32"), "aria continual: --resume continues the run folder's "
               "experiment (its config.json); --bf16 / --fp32 cannot be combined with it");
  } else {
    ARIA_USAGE_CHECK(args.given("config") && !args.str("config").empty(), "aria continual: --config is required (or --resume DIR)");
    ARIA_USAGE_CHECK(args.given("out") && !args.str("out").empty(), "aria continual: --out is required (or --resume DIR)");
  }
  const int64_t checkpoint_every = args.integer("checkpoint-every", 0, int64_t(1) << 40);
  const fs::path out(resume ? args.str("resume") : args.str("out"));
  std::optional<RunFolder> folder;
  Durable durable;
  durable.out = out;
  if (resume) {
    // Locked before the state is read; a folder of aria run is resumed by aria run (its report.html, gates).
    if (!hooks.folder_claimed) folder.emplace(out.string(), false, "aria continual", /*resume=*/true);
    durable.state = load_state(out.string());
    const std::string mine = hooks.folder_claimed ? "run" : "continual";
    ARIA_CHECK(durable.state.command == mine, "--resume: '", out.string(), "' was written by `aria ",
               durable.state.command, "`: resume it with `aria ", durable.state.command, " --resume ", out.string(), "`");
    if (durable.state.finished) {
      std::cout << "aria " << mine << ": " << out.string() << " holds a finished run (report.json); nothing to resume\n";
      return 0;
    }
    durable.checkpoint_every = args.given("checkpoint-every") ? checkpoint_every : durable.state.checkpoint_every;
  } else {
    durable.checkpoint_every = checkpoint_every;
    durable.state.command = hooks.folder_claimed ? "run" : "continual";
  }
  durable.state.checkpoint_every = durable.checkpoint_every;
  durable.state.stopped.clear();
  const ExperimentConfig resolved = resolve_config(args);

  // The folder is claimed (locked, checked empty or cleared, proven writable) before any work; aria run
  // has claimed it already.
  if (!hooks.folder_claimed && !resume) folder.emplace(out.string(), args.on("overwrite"), "aria continual");
  io::FileWriter log_file((out / "log.txt").string(), /*append=*/resume);
  // What the run says while it works (progress, evaluations, warnings) goes to stderr; its result (the
  // tables, the files written) to stdout, so `aria continual ... > results.txt` holds only the result.
  // log.txt gets both, in order.
  TeeBuf tee_buf(std::cerr.rdbuf(), &log_file);
  std::ostream log(&tee_buf);
  TeeBuf result_buf(std::cout.rdbuf(), &log_file);
  std::ostream results(&result_buf);
  MetricsLog metrics(out.string(), resume, durable.state.metrics_bytes);
  durable.metrics = &metrics;
  std::string command_line = hooks.command_line;
  if (command_line.empty()) {
    command_line = "aria continual";
    for (int i = 0; i < argc; ++i) command_line += std::string(" ") + argv[i];
  }

  try {
    const StopSignals signals;  // SIGINT/SIGTERM: stop after the current step (a checkpoint, a partial report)
    run_experiment(resolved, resume ? "" : args.str("config"), out, log, tee_buf, results, hooks, durable, resume,
                   command_line);
    log.flush();
    results.flush();
    metrics.close();
    result_buf.flush_lines();
    tee_buf.close();
  } catch (const Interrupted& stop) {
    log.flush();
    metrics.close();
    result_buf.flush_lines();
    tee_buf.close();
    return stop.exit_code;
  } catch (const Error& err) {
    log.flush();
    if (!tee_buf.failed()) tee_buf.log_only(std::string("aria: error: ") + err.what());  // the screen gets it from main()
    throw;
  }
  return 0;
}

}  // namespace aria::cli
