// aria run: the main job. With no arguments it runs the embedded default experiment
// (train/experiment/default_experiment.h) on the real tasks in third_party/data with every method, using
// cache:default, a small GPT-2 that aria pretrains on third_party/data/corpus on first use and
// caches (train/experiment/model_cache.h). The experiment itself is `aria continual`'s (cmd_continual.cpp),
// run in-process with two additions after each method: its final trainer checkpoint in
// OUT/checkpoints/<method>-seed<N>/ and, for aria, the gate histograms. Then OUT/report.html.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/continual_run.h"
#include "tools/aria/run_folder.h"
#include "tools/aria/run_state.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/experiment/default_experiment.h"
#include "aria/train/experiment/model_cache.h"
#include "aria/train/report/progress.h"
#include "aria/train/continual/gate_diagnostics.h"
#include "aria/train/report/report_csv.h"
#include "aria/train/report/report_html.h"
#include "aria/train/experiment/tuning.h"

namespace aria::cli {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d_%H-%M-%S", std::localtime(&t));
  return buf;
}

std::string fmt3(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The embedded default (or --config), with the command line's overrides, validated.
ExperimentConfig resolve_config(const Args& a) {
  ExperimentConfig c = a.given("config") ? load_experiment_config(a.str("config")) : default_experiment();
  if (a.on("quick")) make_quick(c);
  apply_experiment_flags(a, c, "aria run");  // --set, --seed, --num-seeds, --text-field, --label-field
  if (a.given("model")) c.model = a.str("model");
  if (a.given("data")) c.data_dir = a.str("data");
  if (a.given("tasks")) c.tasks = split_list(a.str("tasks"));
  if (a.given("methods")) c.methods = split_list(a.str("methods"));
  if (a.given("device")) c.device = a.str("device");
  if (a.given("steps-per-task")) c.train.steps_per_task = a.integer("steps-per-task", 1, int64_t(1) << 40);
  ARIA_USAGE_CHECK(!(a.on("bf16") && a.on("fp32")), "aria run: --bf16 and --fp32 are two precisions: choose one");
  if (a.on("bf16")) c.train.precision = "bf16";
  if (a.on("fp32")) c.train.precision = "fp32";
  try {
    validate_experiment_config(c);
  } catch (const Error& e) {
    throw UsageError(std::string("aria run: ") + e.what());
  }
  return c;
}

// Every task is read and checked (train/data/cls_data.h check_cls_tasks) before a model is pretrained
// for them or the run folder is claimed.
void check_tasks(const ExperimentConfig& c) { check_cls_tasks(c.data_dir, c.tasks, cls_data_options(c.data), "aria run"); }

void check_model_dir(const ExperimentConfig& c) {
  if (c.model.rfind("cache:", 0) == 0) return;
  ARIA_CHECK(fs::exists(fs::path(c.model) / "config.json"), "aria run: --model '", c.model,
             "' is not a Hugging Face GPT-2 directory (no config.json)");
}

// The model directory to load: a cached model (built now on first use) or the user's directory.
struct ResolvedModel {
  std::string dir;
  ojson info;  // what report.json's settings say about where the model came from
};

ResolvedModel resolve_model(const ExperimentConfig& c, Device dev) {
  ResolvedModel r;
  if (c.model.rfind("cache:", 0) != 0) {
    check_model_dir(c);
    r.dir = fs::absolute(c.model).lexically_normal().string();
    r.info = {{"source", "directory"}, {"path", r.dir}};
    return r;
  }
  // The recipe and its data (the corpus under data_dir, or the token shards of the large corpus).
  const ModelCacheRequest req = cached_model_request(c.model.substr(6), c.data_dir);
  // Pretraining on first use is progress: stderr (stdout is for the run's result).
  const CachedModel cm = ensure_cached_model(req, dev, std::cerr);
  if (!cm.built)
    std::cerr << "model " << c.model << ": cached " << cm.dir << " (pretrained in "
              << format_duration(cm.build_seconds) << " on first use)\n";
  r.dir = cm.dir;
  r.info = {{"source", c.model},
            {"path", cm.dir},
            {"built_now", cm.built},
            {"pretraining", ojson::parse(cm.marker.dump())}};
  return r;
}

void write_json(const fs::path& p, const ojson& j) { io::write_file_atomic(p.string(), j.dump(2) + "\n"); }

ojson read_json(const fs::path& p) {
  const std::string text = io::read_file(p.string(), "JSON file");  // a regular file only (never a FIFO)
  try {
    return ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("'", p.string(), "' is not valid JSON: ", e.what());
  }
}

// The gates of a gated method (aria and its gated ablations) after one task: first seed, listed order.
struct TaskGates {
  std::string method, task;
  int task_index = 0;
  GateReport report;
  GateDiagnosis diagnosis;
};

ojson task_gates_to_json(const TaskGates& t) {
  return {{"method", t.method},
          {"task", t.task},
          {"task_index", t.task_index},
          {"histograms", gate_report_to_json(t.report)},
          {"diagnosis", gate_diagnosis_to_json(t.diagnosis)}};
}

TaskGates task_gates_from_json(const ojson& j) {
  TaskGates t;
  try {
    t.method = j.at("method").get<std::string>();
    t.task = j.at("task").get<std::string>();
    t.task_index = j.at("task_index").get<int>();
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("gates.json: malformed per_task entry: ", e.what());
  }
  t.report = gate_report_from_json(nlohmann::json::parse(j.at("histograms").dump()));
  t.diagnosis = diagnose_gates(t.report);
  return t;
}

// What aria run does after each task and each (method, seed) of the experiment.
struct RunExtras {
  fs::path out;
  bool checkpoints = true;
  std::string eval_split;
  int batch_size = 16;
  int64_t gate_examples = 0;
  uint64_t first_seed = 0;
  std::vector<GateReport> gates;  // the first seed's aria run
  std::vector<TaskGates> per_task;  // every gated method's gates after each task (first seed, listed order)

  // gates.json: aria's histograms after the last task (the page's and older readers' format), and the
  // per-task histograms with their collapse diagnosis (train/continual/gate_diagnostics.h).
  void write_gates() const {
    if (gates.empty() && per_task.empty()) return;
    ojson j = gate_report_to_json(gates.empty() ? per_task.back().report : gates[0]);
    ojson pt = ojson::array();
    for (const TaskGates& t : per_task) pt.push_back(task_gates_to_json(t));
    j["per_task"] = pt;
    write_json(out / "gates.json", j);
  }

  // report.json "gates": per gated method, the diagnosis after each task.
  ojson report_gates() const {
    ojson g = ojson::object();
    for (const TaskGates& t : per_task) {
      ojson d = gate_diagnosis_to_json(t.diagnosis);
      d["task"] = t.task;
      d["when"] = t.report.when;
      g[t.method]["per_task"].push_back(d);
      g[t.method]["collapsed_after_last_task"] = t.diagnosis.collapsed;
    }
    return g;
  }

  void after_task(const std::string& method, uint64_t seed, int order, int task, ContinualTrainer& trainer,
                  const std::vector<const ClsTaskData*>& tasks, Progress& progress) {
    if (!trainer.method().gated_mlp || seed != first_seed || order != 0) return;
    const std::vector<const ClsTaskData*> trained(tasks.begin(), tasks.begin() + task + 1);
    TaskGates t;
    t.method = method;
    t.task = tasks[size_t(task)]->name;
    t.task_index = task;
    // Every trained task's evaluation split, at most 128 examples each when the evaluation takes all.
    t.report = collect_gate_histograms(trainer.model(), trained, eval_split, gate_examples > 0 ? gate_examples : 128,
                                       batch_size);
    t.report.method = method;
    t.report.when = "after " + t.task + " (task " + std::to_string(task + 1) + " of " + std::to_string(tasks.size()) +
                    "), seed " + std::to_string(seed);
    t.diagnosis = diagnose_gates(t.report);
    std::string means;
    for (const GateLayerDiagnosis& l : t.diagnosis.layers)
      means += (means.empty() ? "" : ", ") + std::to_string(l.mean).substr(0, 5) +
               (l.collapsed.empty() ? "" : " (" + l.collapsed + ")");
    progress.message(method + " gates after " + t.task + ": mean pi per layer " + means +
                     (t.diagnosis.collapsed ? "; collapsed" : ""));
    per_task.push_back(std::move(t));
    write_gates();  // now: a resumed run reads it back
  }

  void after_run(const std::string& method, uint64_t seed, int order, ContinualTrainer& trainer,
                 const std::vector<const ClsTaskData*>& tasks, Progress& progress) {
    if (checkpoints) {
      const fs::path ckpt = out / "checkpoints" / run_folder_name(method, seed, order);
      trainer.save(ckpt.string());
      progress.message(method + " seed " + std::to_string(seed) + ": checkpoint " + ckpt.string());
    }
    if (method != "aria" || order != 0 || !gates.empty()) return;
    GateReport g = collect_gate_histograms(trainer.model(), tasks, eval_split, gate_examples, batch_size);
    g.method = method;
    g.when = "after the last task (" + tasks.back()->name + "), seed " + std::to_string(seed);
    std::string means;
    for (const GateHistogram& h : g.layers) means += (means.empty() ? "" : ", ") + std::to_string(h.mean).substr(0, 5);
    progress.message("aria seed " + std::to_string(seed) + ": mean gate per layer " + means);
    gates.push_back(std::move(g));
    write_gates();  // now: a resumed run that skips this (method, seed) reads it back
  }
};

// --tune: each method's settings chosen on the validation split (train/experiment/tuning.h) before the
// experiment; tuning.json records every trial. The test splits are not read here: tune_methods drops
// them before any training.
ExperimentConfig tune(const ExperimentConfig& cfg, const std::string& model_dir, Device dev, const fs::path& out) {
  const auto t0 = std::chrono::steady_clock::now();
  const Gpt2Model base = gpt2_load(model_dir, dev);
  const Gpt2Tokenizer tok = load_tokenizer_for(model_dir);
  std::vector<ClsTaskData> tasks;
  for (const std::string& name : cfg.tasks)
    tasks.push_back(load_cls_task((fs::path(cfg.data_dir) / name).string(), tok, cfg.train.max_seq_len,
                                  cfg.train.max_train_examples, cfg.train.max_eval_examples, cls_data_options(cfg.data)));
  size_t trials = 0;
  for (const std::string& m : cfg.methods) {
    size_t n = 1;
    for (const TuningAxis& ax : tuning_grid(cfg, m)) n += ax.values.size() - 1;
    trials += n;
  }
  std::cout << "aria run --tune: up to " << trials << " trials (one seed, the listed order, validation split)\n"
            << std::flush;
  const std::vector<MethodTuning> result =
      tune_methods(base, tasks, cfg, dev, [&](const std::string& m, const TuningTrial& t) {
        std::string s;
        for (const auto& [k, v] : t.settings) s += (s.empty() ? "" : ", ") + k + "=" + fmt3(v);
        std::cout << "  tune " << m << ": " << s << ": validation ACC " << fmt3(t.validation.acc) << " ("
                  << format_duration(t.seconds) << ")\n" << std::flush;
      });
  const ExperimentConfig tuned = apply_tuning(cfg, result);
  ojson j = tuning_to_json(result, cfg);
  j["seconds"] = since(t0);
  write_json(out / "tuning.json", j);
  for (const MethodTuning& m : result) {
    std::string s;
    for (const auto& [k, v] : m.chosen) s += (s.empty() ? "" : ", ") + k + "=" + fmt3(v);
    std::cout << "aria run --tune: " << m.method << ": " << s << "\n";
  }
  std::cout << "aria run --tune: " << (out / "tuning.json").string() << " (" << format_duration(since(t0)) << ")\n"
            << std::flush;
  return tuned;
}

// --render DIR: the page of an existing run folder.
int render_only(const std::string& dir) {
  const RunFolderLock lock(dir);  // not while a run is writing the folder
  HtmlReportOptions opt;
  const fs::path gates = fs::path(dir) / "gates.json";
  std::error_code ec;
  if (fs::exists(gates, ec)) opt.gates.push_back(gate_report_from_json(nlohmann::json::parse(read_json(gates).dump())));
  opt.subtitle = "run folder " + dir;
  opt.loss = read_loss_curves((fs::path(dir) / "metrics.jsonl").string());
  const ojson report = read_json(fs::path(dir) / "report.json");
  write_report_html(report, opt, (fs::path(dir) / "report.html").string());
  // The CSV tables too (a report that the page refuses gets none).
  const std::vector<std::string> tables = write_report_tables(report, opt.loss, (fs::path(dir) / "tables").string());
  std::cout << "wrote " << (fs::path(dir) / "report.html").string() << "\n"
            << "wrote " << tables.size() << " tables in " << (fs::path(dir) / "tables").string() << "\n";
  return 0;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  Args args("run",
            "Runs the default experiment (or --config): every method (aria, finetune, ewc, adapters,\n"
            "multitask) over the real task sequence in third_party/data, on cache:default, a small GPT-2\n"
            "pretrained by aria on third_party/data/corpus on first use and cached ($ARIA_CACHE, else\n"
            "~/.cache/aria). Prints the accuracy matrices and the metrics table and writes OUT/report.json,\n"
            "config.json, log.txt, gates.json, checkpoints/<method>-seed<N>/ and report.html. docs/run.md.");
  args.option("out", "run folder (default: runs/<date>_<time>)", "")
      .option("model", "Hugging Face GPT-2 directory (gpt2, distilgpt2, ...) or cache:default", "")
      .option("tasks", "comma-separated task folders under the data directory, in training order", "")
      .option("methods", "comma-separated subset of aria,finetune,ewc,adapters,multitask", "")
      .option("device", "cpu, cuda, cuda:N or auto", "")
      .option("steps-per-task", "optimizer steps per task (every method)", "")
      .toggle("bf16", "train in bfloat16 with float32 masters (CUDA only; the default there)")
      .toggle("fp32", "train in float32 (the default on the CPU)")
      .option("data", "data directory (default: third_party/data, found from the current directory up)", "")
      .option("config", "an experiment config (JSON, see --print-config) instead of the embedded default", "")
      .toggle("quick", "a much shorter run of the same shape (CI, smoke tests): cache:quick, few steps and examples")
      .toggle("tune", "before the experiment, choose each method's lr (and EWC/SPC lambda, plasticity lambda, "
                      "slow_lr_ratio, LwF lambda) from a small grid on the validation split (train/experiment/tuning.h); the "
                      "choice goes to config.json's method_settings, tuning.json and report.json")
      .toggle("no-checkpoints", "do not save each method's final trainer checkpoint (about 100 MB each by default)")
      .toggle("print-config", "print the resolved experiment config as JSON and exit")
      .toggle("overwrite", "replace the previous run in --out (its report, config, log, checkpoints); without it "
                           "a run folder that is not empty is refused")
      .option("resume", "continue the interrupted run in this run folder (after Ctrl-C, SIGTERM or a kill): its "
                        "config, finished runs kept, the run in progress from its last checkpoint", "")
      .option("checkpoint-every", "save the run in progress every N optimizer steps of a task, and at task "
                                  "boundaries (0: task boundaries only)", "200")
      .option("render", "only (re)write DIR/report.html from DIR/report.json and DIR/gates.json (any run folder, "
                        "aria continual's too)", "");
  add_experiment_flags(args);
  if (!args.parse(argc, argv)) return 0;
  // aria continual parses it once the run folder is claimed: a bad value must be refused before that.
  (void)args.integer("checkpoint-every", 0, int64_t(1) << 40);
  if (args.given("render")) return render_only(args.str("render"));
  const auto t0 = std::chrono::steady_clock::now();
  const bool resume = args.given("resume");
  if (resume) {
    // The experiment is the run folder's: a flag that would change it is refused, not silently ignored.
    std::vector<std::string> refused = {"out", "model", "tasks", "methods", "device", "steps-per-task", "data", "config"};
    for (const std::string& f : experiment_flag_names()) refused.push_back(f);
    for (const std::string& f : refused)
      ARIA_USAGE_CHECK(!args.given(f), "aria run: --resume continues the run folder's experiment (its config.json); --", f,
                 " cannot be combined with it");
    for (const char* f : {"quick", "no-checkpoints", "print-config", "overwrite", "bf16", "fp32", "tune"})
      ARIA_USAGE_CHECK(!args.on(f), "aria run: --resume continues the run folder's experiment; --", f,
                 " cannot be combined with it");
    ARIA_USAGE_CHECK(!args.str("resume").empty(), "aria run: --resume needs a run folder");
  }
  ExperimentConfig cfg;
  fs::path out;
  ResolvedModel model;
  std::optional<RunFolder> folder;
  ojson run_info;  // OUT/resume/run.json: what aria run adds to the experiment (read back by --resume)
  if (resume) {
    out = args.str("resume");
    folder.emplace(out.string(), false, "aria run", /*resume=*/true);
    const fs::path info = out / "resume" / "run.json";
    std::error_code ec;
    ARIA_CHECK(fs::is_regular_file(info, ec), "aria run --resume: '", out.string(),
               "' is not a resumable aria run folder (no ", info.string(), ")");
    run_info = read_json(info);
    try {
      cfg = load_experiment_config((out / "config.json").string());
      model.dir = cfg.model;
      model.info = run_info.at("model_info");
      cfg.model = run_info.at("model").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      ARIA_FAIL("'", info.string(), "' is malformed: ", e.what());
    }
    std::cerr << "aria run: resuming " << out.string() << "\n";
  } else {
    cfg = resolve_config(args);
    if (args.on("print-config")) {
      std::cout << experiment_config_to_json(cfg).dump(2) << "\n";
      return 0;
    }
    cfg.data_dir = find_data_dir(cfg.data_dir);
    check_tasks(cfg);
    check_model_dir(cfg);
    out = args.given("out") ? fs::path(args.str("out")) : fs::path("runs") / timestamp();
  }
  const Device dev = parse_device(cfg.device);
  if (!resume) {
    // Claimed before any work (pretraining included): locked, empty or cleared with --overwrite, writable.
    folder.emplace(out.string(), args.on("overwrite"), "aria run");
    std::cerr << "aria run: " << (args.given("config") ? args.str("config") : "the default experiment")
              << (args.on("quick") ? " (--quick)" : "") << " -> " << out.string() << "\n";
    model = resolve_model(cfg, dev);
    run_info = {{"model", cfg.model}, {"model_info", model.info}, {"checkpoints", !args.on("no-checkpoints")}};
    if (args.on("tune")) {
      cfg = tune(cfg, model.dir, dev, out);
      run_info["tuned"] = true;
    }
  }
  const double model_seconds = since(t0);

  // The experiment: aria continual on the resolved config, with checkpoints and gate histograms.
  ExperimentConfig run_cfg = cfg;
  run_cfg.model = model.dir;
  run_cfg.device = dev.str();
  // aria continual reads it and writes it back resolved.
  const fs::path input = out / "config.json";
  if (!resume) {
    write_json(input, ojson::parse(experiment_config_to_json(run_cfg).dump()));
    check_writable_dir((out / "resume").string(), "run folder");
    write_json(out / "resume" / "run.json", run_info);
  }
  RunExtras extras;
  extras.out = out;
  extras.checkpoints = run_info.value("checkpoints", true);
  std::error_code gates_ec;
  if (resume && fs::exists(out / "gates.json", gates_ec)) {  // gates collected before the resume
    const ojson g = read_json(out / "gates.json");
    for (const ojson& t : g.value("per_task", ojson::array())) extras.per_task.push_back(task_gates_from_json(t));
    if (g.contains("layers") && run_info.value("aria_gates", false))  // aria's first seed had finished
      extras.gates.push_back(gate_report_from_json(nlohmann::json::parse(g.dump())));
  }
  extras.eval_split = cfg.train.eval_split;
  extras.batch_size = cfg.train.batch_size;
  extras.gate_examples = cfg.train.max_eval_examples;
  extras.first_seed = cfg.train.seed;
  ContinualHooks hooks;
  hooks.folder_claimed = true;
  std::string cmd = "aria run";
  for (int i = 0; i < argc; ++i) cmd += std::string(" ") + argv[i];
  hooks.command_line = cmd;
  hooks.after_run = [&](const std::string& m, uint64_t s, int o, ContinualTrainer& t,
                        const std::vector<const ClsTaskData*>& d, Progress& p) {
    extras.after_run(m, s, o, t, d, p);
    if (!extras.gates.empty() && !run_info.value("aria_gates", false)) {
      run_info["aria_gates"] = true;  // gates.json's top level is aria's final histograms from now on
      write_json(out / "resume" / "run.json", run_info);
    }
  };
  hooks.after_task = [&](const std::string& m, uint64_t s, int o, int i, ContinualTrainer& t,
                         const std::vector<const ClsTaskData*>& d, Progress& p) { extras.after_task(m, s, o, i, t, d, p); };
  const std::string in_s = input.string(), out_s = out.string();
  std::vector<std::string> sub = resume ? std::vector<std::string>{"--resume", out_s}
                                        : std::vector<std::string>{"--config", in_s, "--out", out_s};
  if (args.given("checkpoint-every") || !resume) {
    sub.push_back("--checkpoint-every");
    sub.push_back(args.str("checkpoint-every"));
  }
  std::vector<char*> sub_argv;
  for (std::string& s : sub) sub_argv.push_back(s.data());
  const auto t_exp = std::chrono::steady_clock::now();
  const int rc = run_continual(int(sub_argv.size()), sub_argv.data(), hooks);
  if (rc != 0) return rc;
  const double experiment_seconds = since(t_exp);

  // report.json: where the model came from, and the times; gates.json; report.html.
  ojson report = read_json(out / "report.json");
  report["settings"]["model"]["source"] = model.info;
  report["settings"]["timing"] = {{"model_seconds", model_seconds},
                                  {"experiment_seconds", experiment_seconds},
                                  {"total_seconds", since(t0)},
                                  {"pretrained_now", model.info.value("built_now", false)}};
  if (!extras.per_task.empty()) report["gates"] = extras.report_gates();
  if (fs::exists(out / "tuning.json", gates_ec)) report["settings"]["tuning"] = read_json(out / "tuning.json");
  write_json(out / "report.json", report);
  HtmlReportOptions opt;
  opt.gates = extras.gates;
  for (const TaskGates& t : extras.per_task)
    if (t.method == "aria") {  // aria's gates after each task, for the page
      GateReport g = t.report;
      g.method = "aria-after-" + t.task;
      opt.gates.push_back(g);
    }
  extras.write_gates();
  opt.subtitle = aria_version_line() + " · " + cmd + " · " + timestamp() + " · device " + dev.str() + " · experiment " +
                 format_duration(experiment_seconds) +
                 (model.info.value("built_now", false) ? " (+ " + format_duration(model_seconds) + " pretraining)" : "");
  opt.loss = read_loss_curves((out / "metrics.jsonl").string());  // the training-loss curves
  write_report_html(report, opt, (out / "report.html").string());
  write_report_tables(report, opt.loss, (out / "tables").string());  // of the final report.json

  std::ostringstream tail;
  tail << "aria run: model " << cfg.model << " (" << model.dir << ")";
  if (model.info.contains("pretraining")) {
    const ojson& p = model.info["pretraining"];
    tail << ": pretrained by aria on " << p.value("training_tokens", 0) << " corpus tokens, " << p["recipe"]["train"]["steps"]
         << " steps, validation loss "
         << (p.contains("final_val_loss") && p["final_val_loss"].is_number() ? fmt3(p["final_val_loss"].get<double>()) : "n/a")
         << ", in "
         << format_duration(p.value("build_seconds", 0.0)) << (model.info.value("built_now", false) ? " (now)" : " (cached)");
  }
  tail << "; experiment " << format_duration(experiment_seconds) << "; total " << format_duration(since(t0)) << "\n"
       << "aria run: wrote " << (out / "report.html").string() << " (open it in a browser)"
       << (extras.checkpoints ? ", checkpoints in " + (out / "checkpoints").string() : "") << "\n";
  std::cout << tail.str() << std::flush;  // the result's last lines: stdout
  io::FileWriter log_tail((out / "log.txt").string(), /*append=*/true);
  log_tail.write(tail.str());
  log_tail.close();
  return 0;
}

}  // namespace aria::cli
