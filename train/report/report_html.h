// report.html of a continual-learning run: one self-contained page (inline CSS and SVG, no script,
// no network) that a browser renders offline. From report.json (train/report/report.h) and, for ARIA,
// the gate histograms it can draw:
//   - the metrics table (ACC, BWT, forgetting, FWT; "± std" over seeds) and a bar chart of ACC,
//   - the scenario, and the statistics table (issue 15): ACC above chance, 95% bootstrap intervals
//     over seeds, the paired comparison with finetune (when report.json carries "statistics"),
//   - BWT and forgetting per method as bars with 95% intervals, the training-loss curves per task
//     (from metrics.jsonl) and the run's version, commit, device and command line (report_charts.h),
//   - per method: the accuracy matrix as a heat map with the numbers in the cells, and the
//     accuracy of each task over the sequence (a line chart, one line per task, ± sd bands over seeds,
//     dashed chance lines),
//   - each task order's metrics next to the pooled ones, and the head-only transfer per method and
//     task (report_sections.h),
//   - per layer: a histogram of the gate pi over the real tokens of an evaluation set,
//   - the settings the comparison ran under (the main ones in a table, all of them as JSON).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/train/report/report_charts.h"

namespace aria {

// Histogram of one layer's gate values pi in [0, 1], counts[k] over [k/n, (k+1)/n) (the last bin
// closed), n = counts.size().
struct GateHistogram {
  int layer = 0;
  std::vector<int64_t> counts;
  double mean = 0;     // mean pi over the tokens counted
  int64_t tokens = 0;  // sum of counts
};

struct GateReport {
  std::string method = "aria";  // the method whose gates these are
  std::string when;             // "after the last task (wordnet_class), seed 1234"
  std::string data;             // "test split, 128 examples per task, real tokens only"
  std::vector<GateHistogram> layers;
};

struct ContinualModel;  // model/continual_model.h
struct ClsTaskData;     // train/data/cls_data.h

// Histograms (`bins` bins over [0, 1]) of every layer's gate pi over the real (non-pad) tokens of
// each task's `split` ("test" or "validation"; at most max_examples_per_task examples, 0 = all),
// each task classified through its own adapter and head, under NoGradGuard. The model must have
// gated MLPs and a slot for every task. `when` and `data` are filled in for the page.
GateReport collect_gate_histograms(const ContinualModel& m, const std::vector<const ClsTaskData*>& tasks,
                                   const std::string& split, int64_t max_examples_per_task, int batch_size,
                                   int bins = 20);

// gates.json <-> GateReport: {"method", "when", "data", "layers": [{"layer", "counts", "mean", "tokens"}]}.
nlohmann::ordered_json gate_report_to_json(const GateReport& g);
GateReport gate_report_from_json(const nlohmann::json& j);  // throws aria::Error on a malformed file

struct HtmlReportOptions {
  std::string title = "aria: continual learning report";
  std::string subtitle;  // a line under the title (command, date, wall time)
  std::vector<GateReport> gates;
  std::vector<LossPoint> loss;  // metrics.jsonl's report points (read_loss_curves): the training-loss curves
};

// The page for a report as report_to_json writes it (throws aria::Error on a malformed report).
std::string report_html(const nlohmann::ordered_json& report, const HtmlReportOptions& opt);
// Writes report_html(...) to path (temp file + rename).
void write_report_html(const nlohmann::ordered_json& report, const HtmlReportOptions& opt, const std::string& path);

// HTML text escaping (&, <, >, ", ').
std::string html_escape(const std::string& s);

}  // namespace aria
