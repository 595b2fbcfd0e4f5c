#include "tools/aria/run_state.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "aria/version.h"
#include "aria/core/error.h"

// Set by tools/CMakeLists.txt for this file only: the git commit at configure time.
#ifndef ARIA_GIT_HASH
#define ARIA_GIT_HASH ""
#endif

namespace aria::cli {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string aria_version() { return ARIA_VERSION_STRING; }
std::string aria_git_hash() { return ARIA_GIT_HASH; }
std::string aria_version_line() {
  const std::string h = aria_git_hash();
  return "aria " + aria_version() + (h.empty() ? "" : " (git " + h + ")");
}

// ---- signals ----------------------------------------------------------------------------------

namespace {

std::atomic<int> g_signal{0};
struct sigaction g_old_int, g_old_term;

extern "C" void on_stop_signal(int sig) {
  // Async-signal-safe only: an atomic store, write(2) and _exit(2).
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    static const char msg[] = "\naria: second signal: exiting now (the last checkpoint is kept)\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(128 + sig);
  }
  static const char msg[] =
      "\naria: stopping after the current step (a checkpoint and a partial report follow; signal again to exit "
      "at once)\n";
  (void)!::write(2, msg, sizeof msg - 1);
}

}  // namespace

StopSignals::StopSignals() {
  g_signal = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, &g_old_int);
  ::sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
}

bool StopSignals::requested() { return g_signal.load() != 0; }
int StopSignals::signal_number() { return g_signal.load(); }
std::string StopSignals::signal_name() {
  const int s = g_signal.load();
  return s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "signal " + std::to_string(s);
}

// ---- the run-state file -------------------------------------------------------------------------

std::string run_folder_name(const std::string& method, uint64_t seed, int order) {
  return method + "-seed" + std::to_string(seed) + (order > 0 ? "-order" + std::to_string(order) : "");
}

static ojson nan_to_null(const std::vector<double>& v) {
  ojson a = ojson::array();
  for (double x : v) a.push_back(std::isfinite(x) ? ojson(x) : ojson(nullptr));
  return a;
}

static std::vector<double> null_to_nan(const ojson& a) {
  std::vector<double> v;
  for (const ojson& x : a) v.push_back(x.is_null() ? std::nan("") : x.get<double>());
  return v;
}

static ojson time_to_json(const TimeSplit& t) { return {t.train, t.fisher, t.eval, t.host}; }

static TimeSplit time_from_json(const ojson& j) {
  const std::vector<double> v = j.get<std::vector<double>>();
  ARIA_CHECK(v.size() == 4, "'time' must hold 4 numbers (train, fisher, eval, host seconds), not ", v.size());
  return {v[0], v[1], v[2], v[3]};
}

ojson method_run_to_json(const MethodRun& r) {
  return {{"seed", r.seed},     {"order_index", r.order_index}, {"order", r.order},     {"joint", r.joint},
          {"matrix", r.matrix}, {"before", r.before},           {"correct", r.correct}, {"seconds", r.seconds},
          {"info", r.info},     {"head_initial", nan_to_null(r.head_initial)},
          {"head_trained", nan_to_null(r.head_trained)}, {"time", time_to_json(r.time)}};
}

MethodRun method_run_from_json(const ojson& j) {
  MethodRun r;
  r.seed = j.at("seed").get<uint64_t>();
  // Absent in run-state files written before task orders and per-example records existed.
  r.order_index = j.value("order_index", 0);
  if (j.contains("order")) r.order = j.at("order").get<std::vector<int>>();
  if (j.contains("correct")) r.correct = j.at("correct").get<std::vector<std::vector<std::string>>>();
  if (j.contains("head_initial")) r.head_initial = null_to_nan(j.at("head_initial"));
  if (j.contains("head_trained")) r.head_trained = null_to_nan(j.at("head_trained"));
  r.joint = j.at("joint").get<bool>();
  r.matrix = j.at("matrix").get<AccMatrix>();
  r.before = j.at("before").get<std::vector<double>>();
  r.seconds = j.at("seconds").get<double>();
  if (j.contains("time")) r.time = time_from_json(j.at("time"));  // absent in older run-state files
  r.info = j.at("info");
  return r;
}

const RunState::Done* RunState::find(const std::string& method, uint64_t seed, int order) const {
  for (const Done& d : done)
    if (d.method == method && d.seed == seed && d.run.order_index == order) return &d;
  return nullptr;
}

ojson RunState::to_json() const {
  ojson j;
  j["format"] = "aria-run-state";
  j["version"] = 1;
  j["command"] = command;
  j["checkpoint_every"] = checkpoint_every;
  j["finished"] = finished;
  j["stopped"] = stopped;
  ojson d = ojson::array();
  for (const Done& x : done) d.push_back({{"method", x.method}, {"seed", x.seed}, {"run", method_run_to_json(x.run)}});
  j["done"] = d;
  if (in_progress) {
    const InProgress& p = *in_progress;
    j["in_progress"] = {{"method", p.method},
                        {"seed", p.seed},
                        {"order_index", p.order_index},
                        {"checkpoint", p.checkpoint},
                        {"task", p.task},
                        {"phase", p.phase},
                        {"phase_steps", p.phase_steps},
                        {"optimizer_steps", p.optimizer_steps},
                        {"last_gate_means", p.last_gate_means},
                        {"head_initial", nan_to_null(p.head_initial)},
                        {"head_trained", nan_to_null(p.head_trained)},
                        {"seconds", p.seconds},
                        {"time", time_to_json(p.time)}};
  } else {
    j["in_progress"] = nullptr;
  }
  j["metrics_bytes"] = metrics_bytes;
  return j;
}

RunState RunState::from_json(const ojson& j, const std::string& where) {
  try {
    ARIA_CHECK(j.value("format", "") == "aria-run-state" && j.value("version", 0) == 1,
               "not an aria run-state file (format aria-run-state, version 1)");
    RunState s;
    s.command = j.at("command").get<std::string>();
    s.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
    s.finished = j.at("finished").get<bool>();
    s.stopped = j.at("stopped").get<std::string>();
    for (const ojson& d : j.at("done"))
      s.done.push_back({d.at("method").get<std::string>(), d.at("seed").get<uint64_t>(), method_run_from_json(d.at("run"))});
    if (!j.at("in_progress").is_null()) {
      const ojson& p = j.at("in_progress");
      InProgress q;
      q.method = p.at("method").get<std::string>();
      q.seed = p.at("seed").get<uint64_t>();
      q.order_index = p.value("order_index", 0);
      q.checkpoint = p.at("checkpoint").get<std::string>();
      q.task = p.at("task").get<int>();
      q.phase = p.at("phase").get<std::string>();
      ARIA_CHECK(q.phase == "train" || q.phase == "evaluated", "in_progress.phase '", q.phase, "' is unknown");
      q.phase_steps = p.at("phase_steps").get<int64_t>();
      q.optimizer_steps = p.at("optimizer_steps").get<int64_t>();
      q.last_gate_means = p.at("last_gate_means").get<std::vector<double>>();
      if (p.contains("head_initial")) q.head_initial = null_to_nan(p.at("head_initial"));
      if (p.contains("head_trained")) q.head_trained = null_to_nan(p.at("head_trained"));
      q.seconds = p.at("seconds").get<double>();
      if (p.contains("time")) q.time = time_from_json(p.at("time"));
      s.in_progress = q;
    }
    s.metrics_bytes = j.at("metrics_bytes").get<uint64_t>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL(where, ": malformed run-state file: ", e.what());
  } catch (const Error& e) {
    ARIA_FAIL(where, ": ", e.what());
  }
}

std::string state_path(const std::string& out) { return (fs::path(out) / "resume" / "state.json").string(); }

void save_state(const std::string& out, const RunState& s) {
  std::error_code ec;
  fs::create_directories(fs::path(out) / "resume", ec);
  ARIA_CHECK(!ec, "cannot create '", (fs::path(out) / "resume").string(), "': ", ec.message());
  io::write_file_atomic(state_path(out), s.to_json().dump(1) + "\n");
}

RunState load_state(const std::string& out) {
  const std::string p = state_path(out);
  std::error_code ec;
  ARIA_CHECK(fs::is_regular_file(p, ec), "--resume: '", out, "' is not a resumable run folder (no ", p,
             "; it is written by aria continual / aria run from this version on)");
  const std::string text = io::read_file(p, "run-state file");
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("'", p, "' is not valid JSON: ", e.what());
  }
  return RunState::from_json(j, p);
}

// ---- metrics.jsonl ----------------------------------------------------------------------------

namespace {
io::FileWriter open_metrics(const std::string& out, bool resume, uint64_t keep) {
  const std::string p = (fs::path(out) / "metrics.jsonl").string();
  if (resume) {
    std::error_code ec;
    if (fs::exists(p, ec)) {
      fs::resize_file(p, keep, ec);
      ARIA_CHECK(!ec, "cannot truncate '", p, "' to the last checkpoint's ", keep, " bytes: ", ec.message());
    }
  }
  return io::FileWriter(p, /*append=*/resume);
}
}  // namespace

MetricsLog::MetricsLog(const std::string& out, bool resume, uint64_t keep_bytes)
    : file_(open_metrics(out, resume, keep_bytes)), bytes_(resume ? keep_bytes : 0) {
  std::error_code ec;
  const auto sz = fs::file_size(file_.path(), ec);
  if (!ec) bytes_ = sz;
}

void MetricsLog::line(const ojson& j) {
  const std::string s = j.dump() + "\n";
  file_.write(s);  // FileWriter writes through to the OS at once; a failure throws, naming the file
  bytes_ += s.size();
}

void MetricsLog::step(const std::string& method, uint64_t seed, const std::string& task, const StepStats& s,
                      int64_t phase_done, int64_t phase_total) {
  const auto now = std::chrono::steady_clock::now();
  ojson j;
  j["type"] = "step";
  j["method"] = method;
  j["seed"] = seed;
  j["task"] = task;
  j["step"] = s.step;
  j["task_step"] = phase_done;
  j["task_steps"] = phase_total;
  j["loss"] = s.loss;
  j["ce"] = s.ce;
  j["plasticity"] = s.plasticity;
  j["spc"] = s.spc;
  j["accuracy"] = s.accuracy;
  j["grad_norm"] = s.grad_norm;
  j["lr"] = s.lr;
  j["plasticity_on"] = s.plasticity_on;
  j["gate_means"] = s.gate_means;
  j["examples"] = s.examples;
  j["tokens"] = s.tokens;
  // Tokens of the report step times the steps since the last report point, over the wall time since it.
  if (last_step_ >= 0 && s.step > last_step_) {
    const double dt = std::chrono::duration<double>(now - last_time_).count();
    if (dt > 0)
      j["tokens_per_s"] = double(s.tokens) * double(s.step - last_step_) / dt;
    else
      j["tokens_per_s"] = nullptr;
  } else {
    j["tokens_per_s"] = nullptr;
  }
  last_step_ = s.step;
  last_time_ = now;
  line(j);
}

void MetricsLog::eval(const std::string& method, uint64_t seed, const std::string& after, int64_t optimizer_steps,
                      const std::vector<std::string>& tasks, const std::vector<double>& acc) {
  ojson j;
  j["type"] = "eval";
  j["method"] = method;
  j["seed"] = seed;
  j["after"] = after;
  j["step"] = optimizer_steps;
  ojson a = ojson::object();
  for (size_t i = 0; i < acc.size() && i < tasks.size(); ++i) a[tasks[i]] = acc[i];
  j["accuracy"] = a;
  line(j);
  last_step_ = -1;  // evaluation time is not training time
}

}  // namespace aria::cli
