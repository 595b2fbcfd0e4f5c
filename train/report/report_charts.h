// The charts of report.html that are drawn from more than one number per cell (issue 20, "Report"):
// inline SVG written here, no script and no library, so the page renders offline.
//   - training-loss curves per method: the loss at every report point of metrics.jsonl against the
//     optimizer step, one colour per task, a dashed line at each task boundary;
//   - forgetting and BWT per method as bars with their 95% intervals (the bootstrap of report.json's
//     "ci95"; ± one standard deviation where no interval exists);
//   - the accuracy of each task over the sequence with a band of ± one standard deviation over seeds
//     and a dashed line at the task's chance level (1 / number of labels);
//   - the line under the title with the version, git commit, command line and device of the run.
// report_html.cpp places them; report_csv.h writes the same numbers as CSV.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aria {

// One report point of metrics.jsonl ({"type": "step", ...}): what a loss curve is drawn from.
struct LossPoint {
  std::string method, task;  // task: the task being trained, or "joint training"
  uint64_t seed = 0;
  int64_t step = 0;       // optimizer steps of this run so far (the x axis)
  int64_t task_step = 0;  // steps of the current task
  double loss = 0, ce = 0, plasticity = 0, spc = 0, accuracy = 0, lr = 0, grad_norm = 0;  // NaN where null
};

// The step lines of a metrics.jsonl file, in file order. A missing file gives an empty list (a run
// folder written before metrics.jsonl existed); a malformed line is an aria::Error naming file and line.
std::vector<LossPoint> read_loss_curves(const std::string& metrics_jsonl_path);

// Per method (in report order): the loss of each (seed, task) over the optimizer steps. Empty
// string when `points` holds none of the method's.
std::string loss_curve_svg(const std::string& method, const std::vector<LossPoint>& points);

// BWT and forgetting of every sequential method (joint ones have neither) as bars with 95% interval
// whiskers. `methods` is report.json's "methods" object.
std::string forgetting_bars_svg(const nlohmann::ordered_json& methods);

// The accuracy of each task (one line each) at each point of the sequence (x: xs), with a band of
// ± sd (same shape as points; empty: no band) and a dashed line at chance[j] for each task (empty: none).
std::string accuracy_lines_svg(const std::vector<std::string>& tasks, const std::vector<std::string>& xs,
                               const std::vector<std::vector<double>>& points, const std::vector<std::vector<double>>& sd,
                               const std::vector<double>& chance, const std::string& label);

// The page's sections around these charts (an h2 with its id, a note, the figures); "" when there is
// nothing to draw (no sequential method; no loss points, as in a report rendered without metrics.jsonl).
std::string forgetting_section_html(const nlohmann::ordered_json& methods);
std::string loss_section_html(const nlohmann::ordered_json& methods, const std::vector<LossPoint>& points);

// Chance per task from report.json's "chance": {"per_task": [...]}, or empty when absent.
std::vector<double> chance_per_task(const nlohmann::ordered_json& report);

// "aria 0.7.0 (git abc1234) · device cpu · aria run --tasks ..." from report.json's settings; "" when
// the report carries none of them (older reports).
std::string run_facts_line(const nlohmann::ordered_json& settings);

}  // namespace aria
