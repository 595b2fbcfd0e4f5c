// Every table of a continual-learning report as CSV, for paper figures (issue 20, "Report"):
// OUT/tables/*.csv next to report.json, written from report.json's own numbers (and metrics.jsonl's
// report points for the loss curves), so a CSV cell and the JSON field it comes from are the same
// double (printed with 17 significant digits). Fractions stay fractions (0.5, not 50 %). docs/run.md
// lists the files and their columns:
//   metrics.csv          method, joint, runs, then per metric (acc, bwt, forgetting, fwt): the value,
//                        its std and its 95% interval (lo, hi); then acc_above_chance, seconds and any
//                        other numeric field of the method (e.g. head_transfer)
//   runs.csv             one row per run (seed x task order): method, seed, order_index, the four
//                        metrics, seconds and any other numeric field of the run
//   accuracy_matrix.csv  long format: method, seed ("mean" for the mean over seeds), order_index, row
//                        (0 = before training), stage ("before training", "after <task>"), task, accuracy
//   vs_finetune.csv      method, metric, pairs, diff, ci95_lo, ci95_hi, wins, ties, losses
//   chance.csv           task, chance (1 / number of labels)
//   loss_curves.csv      method, seed, task, step, task_step, loss, ce, plasticity, spc, accuracy, lr, grad_norm
//   per_order.csv        method, order_index, order (task names joined by " > "), runs, acc, bwt,
//                        forgetting, fwt: report.json's "per_order" (methods run in several orders only)
//   head_transfer.csv    method, seed, order_index, position (j > 0), task, initial_trunk, current_trunk,
//                        transfer (current - initial): every run's "head_only" probe
// A missing value (null in report.json, NaN in metrics.jsonl) is an empty cell.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/train/report/report_charts.h"

namespace aria {

struct CsvTable {
  std::string name;  // file name without ".csv"
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// The tables of a report (report.json as report_to_json writes it) and its loss points.
std::vector<CsvTable> report_tables(const nlohmann::ordered_json& report, const std::vector<LossPoint>& loss);

// RFC 4180 text of a table: fields with a comma, quote or line break are quoted, quotes doubled.
std::string csv_text(const CsvTable& t);

// Writes every table to dir/<name>.csv (dir created; each file atomically). Returns the paths.
std::vector<std::string> write_report_tables(const nlohmann::ordered_json& report, const std::vector<LossPoint>& loss,
                                             const std::string& dir);

}  // namespace aria
