// Runs that survive (aria continual / aria run): the stop signals, the run-state file that --resume
// reads, metrics.jsonl and the version that report.json carries.
//
//  - StopSignals: while alive, SIGINT and SIGTERM only set a flag (async-signal-safe); the trainer asks
//    it after every optimizer step (TrainerOptions::stop_requested), and the run then saves a checkpoint,
//    writes a partial report and exits 128 + the signal (130 for SIGINT, 143 for SIGTERM). A second
//    signal exits at once (same code), losing only the steps since the last checkpoint.
//  - OUT/resume/state.json (written atomically): the finished (method, seed) runs with their results,
//    and the one in progress (task, phase, steps) whose trainer checkpoint is OUT/resume/<method>-seed<N>/.
//  - OUT/metrics.jsonl: one JSON line per report point and one per evaluation, flushed line by line.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/core/file_io.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/report/report.h"

namespace aria::cli {

// The version of CMake's project(aria VERSION ...) (<aria/version.h>), the git hash at configure time ("" when unknown), and both in one line.
std::string aria_version();
std::string aria_git_hash();
std::string aria_version_line();

// ---- signals ----------------------------------------------------------------------------------

class StopSignals {
 public:
  StopSignals();   // installs the handlers (SIGINT, SIGTERM); clears an earlier request
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static bool requested();
  static int signal_number();  // 0 when none
  static int exit_code() { return 128 + signal_number(); }
  static std::string signal_name();
};

// Thrown (after the checkpoint and the partial report are written) to end the run with exit_code.
struct Interrupted {
  int exit_code;
};

// ---- the run-state file -------------------------------------------------------------------------

nlohmann::ordered_json method_run_to_json(const MethodRun& r);
// The folder name of one run's checkpoints: "<method>-seed<N>", with "-order<K>" for task order K > 0.
std::string run_folder_name(const std::string& method, uint64_t seed, int order);
MethodRun method_run_from_json(const nlohmann::ordered_json& j);

struct RunState {
  struct Done {
    std::string method;
    uint64_t seed = 0;
    MethodRun run;
  };
  struct InProgress {
    std::string method;
    uint64_t seed = 0;
    int order_index = 0;     // which task order (MethodRun::order_index)
    std::string checkpoint;  // relative to the run folder: resume/<method>-seed<N>
    int task = 0;            // index of the task being trained (joint: 0)
    std::string phase;       // "train" (inside the task's steps) or "evaluated" (the task is done)
    int64_t phase_steps = 0, optimizer_steps = 0;
    std::vector<double> last_gate_means;  // the last step's (a loaded trainer has taken none yet)
    std::vector<double> head_initial, head_trained;  // the head-only probe so far (MethodRun's)
    double seconds = 0;                   // wall time spent on this run before the checkpoint
    TimeSplit time;                       // and where it went (host: the rest, set at the run's end)
  };
  std::string command;    // "continual" or "run"
  int64_t checkpoint_every = 0;
  std::vector<Done> done;
  std::optional<InProgress> in_progress;
  uint64_t metrics_bytes = 0;  // metrics.jsonl's size at the last checkpoint (resume truncates to it)
  bool finished = false;       // report.json is final
  std::string stopped;         // where an interrupted run stopped ("" while running)

  // The finished run of (method, seed, task order), or nullptr.
  const Done* find(const std::string& method, uint64_t seed, int order = 0) const;
  nlohmann::ordered_json to_json() const;
  static RunState from_json(const nlohmann::ordered_json& j, const std::string& where);
};

std::string state_path(const std::string& out);  // OUT/resume/state.json
void save_state(const std::string& out, const RunState& s);
RunState load_state(const std::string& out);     // a clear error when missing or malformed

// ---- metrics.jsonl ----------------------------------------------------------------------------

class MetricsLog {
 public:
  // Creates OUT/metrics.jsonl, or (resume) truncates it to `keep_bytes` and appends.
  MetricsLog(const std::string& out, bool resume, uint64_t keep_bytes);
  void step(const std::string& method, uint64_t seed, const std::string& task, const StepStats& s, int64_t phase_done,
            int64_t phase_total);
  void eval(const std::string& method, uint64_t seed, const std::string& after, int64_t optimizer_steps,
            const std::vector<std::string>& tasks, const std::vector<double>& acc);
  uint64_t bytes() const { return bytes_; }
  void reset_clock() { last_step_ = -1; }
  void close() { file_.close(); }

 private:
  void line(const nlohmann::ordered_json& j);
  io::FileWriter file_;
  uint64_t bytes_ = 0;
  int64_t last_step_ = -1;
  std::chrono::steady_clock::time_point last_time_;
};

}  // namespace aria::cli
