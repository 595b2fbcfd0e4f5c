#include "aria/train/report/report_sections.h"

#include <cmath>
#include <vector>

#include "aria/core/error.h"
#include "aria/train/report/report_format.h"
#include "aria/train/report/report_html.h"  // html_escape

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;
using namespace report_format;

const char* kMetricKeys[4] = {"acc", "bwt", "forgetting", "fwt"};

// A value the tables show: null (shown "n/a") or a finite number in [lo, hi]; anything else is refused.
bool checked(const ojson& v, const std::string& where, double lo, double hi) {
  if (v.is_null()) return false;
  ARIA_CHECK(v.is_number(), "report.html: ", where, " must be a number or null, got ", v.dump());
  const double x = v.get<double>();
  ARIA_CHECK(std::isfinite(x) && x >= lo && x <= hi, "report.html: ", where, " = ", v.dump(), " is outside [", lo,
             ", ", hi, "]");
  return true;
}

std::string percent(const ojson& v, const std::string& where, bool sign) {
  const double lo = sign ? -1.0 : 0.0;
  return checked(v, where, lo, 1.0) ? fmt(sign ? "%+.1f" : "%.1f", 100 * v.get<double>()) : "n/a";
}

const ojson& member(const ojson& o, const char* key) {
  static const ojson null_value;
  return o.is_object() && o.contains(key) ? o.at(key) : null_value;
}


std::string order_text(const ojson& order, const std::string& where) {
  ARIA_CHECK(order.is_array() && !order.empty(), "report.html: ", where, " must be a non-empty array of task names");
  std::string s;
  for (const ojson& t : order) {
    ARIA_CHECK(t.is_string(), "report.html: ", where, " must hold task names");
    s += (s.empty() ? "" : " → ") + t.get<std::string>();
  }
  return s;
}

std::string metric_cells(const ojson& o, const std::string& where) {
  std::string s;
  for (int k = 0; k < 4; ++k)
    s += "<td>" + percent(member(o, kMetricKeys[k]), where + "." + kMetricKeys[k], k > 0) + "</td>";
  return s;
}

// One run's head-only accuracies: {initial, current} per position, checked; empty when not measured.
struct HeadOnly {
  std::vector<ojson> initial, current;
};

HeadOnly head_only_of(const ojson& run, const std::string& where) {
  const ojson& h = member(run, "head_only");
  if (h.is_null()) return {};
  const ojson &a = member(h, "initial_trunk"), &b = member(h, "current_trunk");
  ARIA_CHECK(a.is_array() && b.is_array() && a.size() == b.size(), "report.html: ", where,
             ".head_only needs arrays initial_trunk and current_trunk of one length");
  HeadOnly out;
  for (size_t j = 0; j < a.size(); ++j) {
    const std::string at = "[" + std::to_string(j) + "]";
    checked(a[j], where + ".head_only.initial_trunk" + at, 0.0, 1.0);
    checked(b[j], where + ".head_only.current_trunk" + at, 0.0, 1.0);
    out.initial.push_back(a[j]);
    out.current.push_back(b[j]);
  }
  return out;
}

}  // namespace

std::string per_order_section_html(const ojson& methods) {
  std::string rows;
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& per = member(it.value(), "per_order");
    if (per.is_null()) continue;
    const std::string where = "methods." + it.key() + ".per_order";
    ARIA_CHECK(per.is_array() && !per.empty(), "report.html: ", where, " must be a non-empty array");
    const std::string name = html_escape(it.key());
    for (size_t i = 0; i < per.size(); ++i) {
      const ojson& o = per[i];
      const std::string at = where + "[" + std::to_string(i) + "]";
      ARIA_CHECK(member(o, "order_index").is_number_integer() && member(o, "runs").is_number_integer(),
                 "report.html: ", at, " needs integer order_index and runs");
      rows += "<tr><td>" + name + "</td><td>" + std::to_string(o.at("order_index").get<int64_t>()) + "</td><td>" +
              html_escape(order_text(member(o, "order"), at + ".order")) + "</td><td>" +
              std::to_string(o.at("runs").get<int64_t>()) + "</td>" + metric_cells(o, at) + "</tr>\n";
    }
    const ojson& m = it.value();
    rows += "<tr class=\"pooled\"><td>" + name + "</td><td>pooled</td><td>all orders</td><td>" +
            std::to_string(member(m, "num_seeds").is_number_integer() ? m.at("num_seeds").get<int64_t>() : 1) +
            "</td>" + metric_cells(m, "methods." + it.key()) + "</tr>\n";
  }
  if (rows.empty()) return "";
  return "<h2 id=\"orders\">Task orders</h2>\n<p class=\"note\">Percent. Each task order's mean over its runs (one "
         "per seed; order 0 is the tasks as listed, the others seeded permutations), and the pooled metrics over "
         "every run of the method (the values of the metrics table). A method whose ranking changes with the order "
         "is not ranked by the pooled mean alone.</p>\n<table class=\"metrics\">\n<tr><th>method</th><th>order</th>"
         "<th>tasks in training order</th><th>runs</th><th>ACC</th><th>BWT</th><th>forgetting</th><th>FWT</th></tr>\n" +
         rows + "</table>\n";
}

std::string head_transfer_section_html(const ojson& report) {
  const ojson& methods = report.at("methods");
  const std::vector<std::string> tasks = report.at("tasks").get<std::vector<std::string>>();
  std::string rows;
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const std::string where = "methods." + it.key();
    // Per position of the listed order (order_index 0): the mean over its runs of each trunk's accuracy.
    std::vector<double> init(tasks.size(), 0.0), cur(tasks.size(), 0.0);
    std::vector<int> n(tasks.size(), 0);
    bool measured = false;
    const std::vector<const ojson*> runs = runs_of(it.value());
    for (size_t r = 0; r < runs.size(); ++r) {
      const HeadOnly h = head_only_of(*runs[r], runs.size() > 1 ? where + ".per_seed[" + std::to_string(r) + "]" : where);
      if (h.initial.empty()) continue;
      measured = true;
      if (member(*runs[r], "order_index").is_number_integer() && runs[r]->at("order_index").get<int64_t>() != 0)
        continue;
      ARIA_CHECK(h.initial.size() == tasks.size(), "report.html: ", where, ".head_only has ", h.initial.size(),
                 " positions for ", tasks.size(), " tasks");
      for (size_t j = 1; j < tasks.size(); ++j)
        if (h.initial[j].is_number() && h.current[j].is_number())
          init[j] += h.initial[j].get<double>(), cur[j] += h.current[j].get<double>(), n[j] += 1;
    }
    if (!measured) continue;
    rows += "<tr><td>" + html_escape(it.key()) + "</td><td>" +
            percent(member(it.value(), "head_transfer"), where + ".head_transfer", true) + "</td>";
    for (size_t j = 1; j < tasks.size(); ++j) {
      if (n[j] == 0) {
        rows += "<td>n/a</td>";
        continue;
      }
      const double a = init[j] / n[j], b = cur[j] / n[j];
      rows += "<td title=\"" + html_escape(tasks[j]) + ": head alone on the initial trunk " + pct(a) +
              " %, on the trunk after the earlier tasks " + pct(b) + " %\">" + pct(a) + " → " + pct(b) + " (" +
              fmt("%+.1f", 100 * (b - a)) + ")</td>";
    }
    rows += "</tr>\n";
  }
  if (rows.empty()) return "";
  const ojson& steps = member(member(member(member(report, "settings"), "config"), "train"), "head_probe_steps");
  std::string s = "<h2 id=\"head-transfer\">Head-only transfer</h2>\n<p class=\"note\">Percent. For each task j > 0 "
                  "in training order, a new head trained alone";
  if (steps.is_number_integer()) s += " for " + std::to_string(steps.get<int64_t>()) + " steps";
  s += " (trunk frozen, from the task's fixed probe-head draw) on the trunk after the earlier tasks, against the same "
       "on the initial trunk: positive when the earlier tasks made the features better for a trained readout. "
       "Transfer: the mean difference over j > 0 and over the method's runs. Per task: initial trunk → current trunk "
       "(difference), mean over the runs of the listed order. FWT in the metrics table is the same question asked "
       "of an untrained random head.</p>\n<table class=\"metrics\">\n<tr><th>method</th><th>transfer</th>";
  for (size_t j = 1; j < tasks.size(); ++j) s += "<th>" + html_escape(tasks[j]) + "</th>";
  return s + "</tr>\n" + rows + "</table>\n";
}

}  // namespace aria
