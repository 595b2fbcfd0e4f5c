// aria continual's experiment with a hook, for aria run (cmd_run.cpp), which keeps each method's
// final trainer checkpoint and ARIA's gate histograms: run_continual takes cmd_continual's flags and
// writes the same files and output, calling hooks.after_run after each (method, seed) run.
// Returns 0, or 128 + the signal when SIGINT/SIGTERM stopped the run (checkpoint and partial report
// written; tools/aria/run_state.h).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace aria {
class ContinualTrainer;
struct ClsTaskData;
class Progress;
}  // namespace aria

namespace aria::cli {

struct ContinualHooks {
  // The trained trainer of one (method, seed) and the tasks in order; print with progress.message().
  // `order` is the task order's index (0: as listed); `tasks` are in that order.
  std::function<void(const std::string& method, uint64_t seed, int order, ContinualTrainer& trainer,
                     const std::vector<const ClsTaskData*>& tasks, Progress& progress)>
      after_run;
  // After task `task` (its index in `tasks`, the training order) was trained, consolidated and
  // evaluated: aria run's gate diagnostics per task.
  std::function<void(const std::string& method, uint64_t seed, int order, int task, ContinualTrainer& trainer,
                     const std::vector<const ClsTaskData*>& tasks, Progress& progress)>
      after_task;
  // The caller (aria run) has claimed --out already (tools/aria/run_folder.h: locked, checked, writable).
  bool folder_claimed = false;
  // The command line report.json records ("" : aria continual's own).
  std::string command_line;
};

int run_continual(int argc, char** argv, const ContinualHooks& hooks);

}  // namespace aria::cli
