// Two tables of report.html drawn from issue 15's per-run measures (report.json, train/report/report.h):
//   - per task order: each order's mean ACC / BWT / forgetting / FWT ("per_order", present when a
//     method ran in more than one order) next to the method's pooled metrics over all its runs;
//   - head-only transfer: per method the mean of "head_transfer" over its runs, and per position j > 0
//     of the listed order the accuracy of a head trained alone on the initial trunk and on the trunk
//     after tasks < j ("head_only", train/continual/head_probe.h).
// report_html.cpp places them; report_csv.h writes the same numbers as per_order.csv and
// head_transfer.csv. A value outside what report.json can hold (an accuracy outside [0, 1], a
// difference outside [-1, 1], a non-number) is refused with an aria::Error naming the field.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace aria {

// "" when no method has "per_order" (every run in the listed order, as the CPU default).
std::string per_order_section_html(const nlohmann::ordered_json& methods);

// "" when no run has "head_only" (train.head_probe_steps 0, or only joint methods). `report` is the
// whole report.json (tasks, methods, settings.config.train.head_probe_steps).
std::string head_transfer_section_html(const nlohmann::ordered_json& report);

}  // namespace aria
