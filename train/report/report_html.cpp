#include "aria/train/report/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/continual_model.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/report/report_format.h"
#include "aria/train/report/report_sections.h"

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;

using namespace report_format;  // kPalette, fmt, px, pct, finite_num: shared with report_charts.cpp

// A metric cell: percent with sign (except ACC), "± std" with several seeds, "n/a" for null.
std::string metric_cell(const ojson& m, const char* key, bool sign) {
  const ojson& v = m.contains(key) ? m.at(key) : ojson();
  if (!finite_num(v)) return "n/a";
  std::string s = fmt(sign ? "%+.1f" : "%.1f", 100 * v.get<double>());
  if (m.contains("std") && m.at("std").contains(key) && finite_num(m.at("std").at(key)))
    s += " ± " + pct(m.at("std").at(key).get<double>());
  return s;
}

std::vector<std::vector<double>> matrix_of(const ojson& j, const std::string& where) {
  ARIA_CHECK(j.is_array() && !j.empty(), "report.html: ", where, " must be a non-empty array");
  std::vector<std::vector<double>> m;
  for (const ojson& row : j) {
    ARIA_CHECK(row.is_array(), "report.html: ", where, " rows must be arrays");
    std::vector<double> r;
    for (const ojson& x : row) {
      ARIA_CHECK(finite_num(x), "report.html: ", where, " holds a non-number: ", x.dump());
      r.push_back(x.get<double>());
    }
    m.push_back(r);
  }
  return m;
}

std::vector<double> vector_of(const ojson& j, const std::string& where) {
  return matrix_of(ojson::array({j}), where)[0];
}

// The report's numbers must be what report.json can hold: accuracies in [0, 1], BWT / forgetting / FWT in
// [-1, 1] (or null where undefined), all finite. A page must never show "inf" or 1e308 %: a report with
// such a value is refused, naming the field.
void check_value(const ojson& v, const std::string& where, double lo, double hi, bool nullable) {
  if (v.is_null() && nullable) return;
  ARIA_CHECK(v.is_number(), "report.html: ", where, " must be a number", nullable ? " or null" : "", ", got ",
             v.dump());
  const double x = v.get<double>();
  ARIA_CHECK(std::isfinite(x) && x >= lo && x <= hi, "report.html: ", where, " = ", v.dump(), " is ",
             std::isfinite(x) ? "outside " : "not finite, not in ", "[", lo, ", ", hi, "]");
}

void check_cells(const ojson& j, const std::string& where, bool nested) {
  ARIA_CHECK(j.is_array() && !j.empty(), "report.html: ", where, " must be a non-empty array");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (nested)
      check_cells(j[i], at, false);
    else
      check_value(j[i], at, 0.0, 1.0, false);
  }
}

void check_run_values(const ojson& r, const std::string& where) {
  ARIA_CHECK(r.is_object(), "report.html: ", where, " must be an object");
  if (r.contains("matrix")) check_cells(r.at("matrix"), where + ".matrix", true);
  if (r.contains("before")) check_cells(r.at("before"), where + ".before", false);
  for (const char* k : {"acc", "bwt", "forgetting", "fwt"}) {
    const double lo = std::string(k) == "acc" ? 0.0 : -1.0;
    if (r.contains(k)) check_value(r.at(k), where + "." + k, lo, 1.0, true);
    if (r.contains("mean") && r.at("mean").is_object() && r.at("mean").contains(k))
      check_value(r.at("mean").at(k), where + ".mean." + k, lo, 1.0, true);
    if (r.contains("std") && r.at("std").is_object() && r.at("std").contains(k))
      check_value(r.at("std").at(k), where + ".std." + k, 0.0, 2.0, true);
  }
  if (r.contains("seconds")) check_value(r.at("seconds"), where + ".seconds", 0.0, 1e12, true);
}

void check_report_values(const ojson& methods) {
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const std::string where = "methods." + it.key();
    const ojson& m = it.value();
    check_run_values(m, where);
    if (m.contains("num_seeds"))
      ARIA_CHECK(m.at("num_seeds").is_number_integer() && m.at("num_seeds").get<int64_t>() >= 1 &&
                     m.at("num_seeds").get<int64_t>() <= 1000000,
                 "report.html: ", where, ".num_seeds = ", m.at("num_seeds").dump(), " is not a count of seeds");
    if (m.contains("per_seed")) {
      ARIA_CHECK(m.at("per_seed").is_array(), "report.html: ", where, ".per_seed must be an array");
      for (size_t i = 0; i < m.at("per_seed").size(); ++i)
        check_run_values(m.at("per_seed")[i], where + ".per_seed[" + std::to_string(i) + "]");
    }
  }
}

// Per-cell sample standard deviation over per_seed matrices (empty without per_seed), of "matrix" or,
// as one row, of "before". Runs in another task order (order_index > 0) have other tasks in their
// columns and are left out, as in the mean matrix.
std::vector<std::vector<double>> matrix_std(const ojson& m, const std::string& where, const char* key = "matrix") {
  if (!m.contains("per_seed") || !m.at("per_seed").is_array()) return {};
  std::vector<std::vector<std::vector<double>>> all;
  for (const ojson& r : m.at("per_seed")) {
    if (r.value("order_index", 0) != 0) continue;
    const ojson& v = r.at(key);
    all.push_back(matrix_of(std::string(key) == "matrix" ? v : ojson::array({v}), where + ".per_seed." + key));
  }
  if (all.size() < 2) return {};
  auto sd = all[0];
  for (size_t i = 0; i < sd.size(); ++i)
    for (size_t j = 0; j < sd[i].size(); ++j) {
      double mu = 0, q = 0;
      for (const auto& a : all) mu += a.at(i).at(j) / double(all.size());
      for (const auto& a : all) q += (a.at(i).at(j) - mu) * (a.at(i).at(j) - mu);
      sd[i][j] = std::sqrt(q / double(all.size() - 1));
    }
  return sd;
}

// Light blue (0) to dark blue (1).
std::string heat_color(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const int r = int(std::lround(247 + (8 - 247) * v)), g = int(std::lround(251 + (48 - 251) * v)),
            b = int(std::lround(255 + (107 - 255) * v));
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

std::string svg_open(double w, double h, const std::string& label) {
  return "<svg class=\"chart\" width=\"" + px(w) + "\" height=\"" + px(h) + "\" viewBox=\"0 0 " + px(w) + " " +
         px(h) + "\" role=\"img\" aria-label=\"" + html_escape(label) + "\">\n";
}

std::string text(double x, double y, const std::string& s, const std::string& attrs = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" + html_escape(s) +
         "</text>\n";
}

// ---- charts ----------------------------------------------------------------------------------

std::string heat_map(const std::vector<std::string>& tasks, const std::vector<std::string>& row_names,
                     const std::vector<std::vector<double>>& rows, const std::vector<std::vector<double>>& sd,
                     int diagonal_from_row, const std::string& label) {
  size_t longest = 0;
  for (const auto& t : tasks) longest = std::max(longest, t.size());
  for (const auto& r : row_names) longest = std::max(longest, r.size() - std::min(r.size(), size_t(6)));
  const double cw = std::max(84.0, 7.2 * double(longest) + 12), ch = sd.empty() ? 30 : 38;
  double lw = 0;
  for (const auto& r : row_names) lw = std::max(lw, 7.0 * double(r.size()) + 14);
  const double top = 26, w = lw + cw * double(tasks.size()) + 4, h = top + ch * double(rows.size()) + 4;
  std::string s = svg_open(w, h, label);
  for (size_t j = 0; j < tasks.size(); ++j)
    s += text(lw + cw * (double(j) + 0.5), top - 9, tasks[j], "text-anchor=\"middle\" class=\"axis\"");
  for (size_t i = 0; i < rows.size(); ++i) {
    const double y = top + ch * double(i);
    s += text(lw - 8, y + ch / 2 + 4, row_names[i], "text-anchor=\"end\" class=\"axis\"");
    for (size_t j = 0; j < rows[i].size(); ++j) {
      const double v = rows[i][j], x = lw + cw * double(j);
      const bool diag = diagonal_from_row >= 0 && int(i) - diagonal_from_row == int(j);
      std::string tip = row_names[i] + ", " + tasks[j] + ": " + pct(v) + " %";
      const size_t off = rows.size() - sd.size();  // sd covers the last rows (the matrix, not "before")
      const bool has_sd = !sd.empty() && i >= off;
      if (has_sd) tip += " ± " + pct(sd[i - off][j]);
      s += "<rect x=\"" + px(x + 1) + "\" y=\"" + px(y + 1) + "\" width=\"" + px(cw - 2) + "\" height=\"" + px(ch - 2) +
           "\" fill=\"" + heat_color(v) + "\"" + (diag ? " class=\"diag\"" : "") + "><title>" + html_escape(tip) +
           "</title></rect>\n";
      const std::string ink = v > 0.55 ? "#ffffff" : "#1b1b1b";
      s += text(x + cw / 2, y + (has_sd ? ch / 2 + 1 : ch / 2 + 5), pct(v),
                "text-anchor=\"middle\" class=\"cell\" fill=\"" + ink + "\"");
      if (has_sd)
        s += text(x + cw / 2, y + ch / 2 + 13, "± " + pct(sd[i - off][j]),
                  "text-anchor=\"middle\" class=\"small\" fill=\"" + ink + "\"");
    }
  }
  return s + "</svg>\n";
}

// Final ACC per method, with error bars over seeds and a dashed line at the mean chance level (NaN: none).
std::string acc_bars(const ojson& methods, double chance) {
  size_t longest = 0;
  for (auto it = methods.begin(); it != methods.end(); ++it) longest = std::max(longest, it.key().size());
  const double left = 7.5 * double(longest) + 16, bw = 360, bh = 22, top = 8;
  const double h = top + (bh + 8) * double(methods.size()) + 26;
  std::string s = svg_open(left + bw + 80, h, "final mean accuracy (ACC) per method");
  for (int k = 0; k <= 4; ++k) {
    const double x = left + bw * k / 4.0;
    s += "<line x1=\"" + px(x) + "\" y1=\"" + px(top) + "\" x2=\"" + px(x) + "\" y2=\"" + px(h - 22) +
         "\" class=\"grid\"/>\n" + text(x, h - 8, std::to_string(25 * k) + " %", "text-anchor=\"middle\" class=\"axis\"");
  }
  size_t i = 0;
  for (auto it = methods.begin(); it != methods.end(); ++it, ++i) {
    const ojson& m = it.value();
    const double y = top + (bh + 8) * double(i);
    s += text(left - 8, y + bh / 2 + 4, it.key(), "text-anchor=\"end\" class=\"axis\"");
    if (!finite_num(m.value("acc", ojson()))) continue;
    const double acc = m.at("acc").get<double>();
    s += "<rect x=\"" + px(left) + "\" y=\"" + px(y) + "\" width=\"" + px(bw * std::clamp(acc, 0.0, 1.0)) +
         "\" height=\"" + px(bh) + "\" fill=\"" + kPalette[i % 10] + "\"><title>" +
         html_escape(it.key() + ": ACC " + metric_cell(m, "acc", false) + " %") + "</title></rect>\n";
    double end = left + bw * std::clamp(acc, 0.0, 1.0);
    if (m.contains("std") && finite_num(m.at("std").value("acc", ojson()))) {
      const double sd = m.at("std").at("acc").get<double>();
      const double x0 = left + bw * std::clamp(acc - sd, 0.0, 1.0), x1 = left + bw * std::clamp(acc + sd, 0.0, 1.0);
      s += "<line x1=\"" + px(x0) + "\" y1=\"" + px(y + bh / 2) + "\" x2=\"" + px(x1) + "\" y2=\"" + px(y + bh / 2) +
           "\" class=\"err\"/>\n";
      end = std::max(end, x1);
    }
    s += text(end + 6, y + bh / 2 + 4, metric_cell(m, "acc", false) + " %", "class=\"axis\"");
  }
  if (std::isfinite(chance)) {
    const double x = left + bw * std::clamp(chance, 0.0, 1.0);
    s += "<line class=\"chance\" x1=\"" + px(x) + "\" y1=\"" + px(top - 4) + "\" x2=\"" + px(x) + "\" y2=\"" +
         px(h - 22) + "\" stroke=\"#777\" stroke-dasharray=\"5 4\"><title>chance (mean over the tasks): " + pct(chance) +
         " %</title></line>\n";
  }
  return s + "</svg>\n";
}

std::string gate_chart(const GateHistogram& g) {
  const double left = 36, top = 8, pw = 240, ph = 110, w = left + pw + 12, h = top + ph + 34;
  const size_t n = g.counts.size();
  std::string s = svg_open(w, h, "gate histogram, layer " + std::to_string(g.layer));
  int64_t mx = 1;
  for (int64_t c : g.counts) mx = std::max(mx, c);
  const double total = double(std::max<int64_t>(g.tokens, 1));
  for (int k = 0; k <= 2; ++k) {
    const double y = top + ph - ph * k / 2.0;
    s += "<line x1=\"" + px(left) + "\" y1=\"" + px(y) + "\" x2=\"" + px(left + pw) + "\" y2=\"" + px(y) +
         "\" class=\"grid\"/>\n" +
         text(left - 4, y + 4, fmt("%.0f%%", 100.0 * double(mx) * k / 2.0 / total), "text-anchor=\"end\" class=\"small\"");
  }
  for (size_t k = 0; k < n; ++k) {
    const double bh = ph * double(g.counts[k]) / double(mx), bw = pw / double(n);
    const std::string range = fmt("%.2f", double(k) / double(n)) + "-" + fmt("%.2f", double(k + 1) / double(n));
    s += "<rect x=\"" + px(left + bw * double(k) + 0.5) + "\" y=\"" + px(top + ph - bh) + "\" width=\"" +
         px(std::max(bw - 1, 0.5)) + "\" height=\"" + px(bh) + "\" class=\"bar\"><title>pi in " + range + ": " +
         std::to_string(g.counts[k]) + " tokens (" + fmt("%.1f", 100.0 * double(g.counts[k]) / total) +
         " %)</title></rect>\n";
  }
  for (int k = 0; k <= 2; ++k)
    s += text(left + pw * k / 2.0, top + ph + 14, fmt("%.1f", k / 2.0), "text-anchor=\"middle\" class=\"axis\"");
  s += text(left + pw / 2, top + ph + 29, "pi (0: slow pathway, 1: fast)", "text-anchor=\"middle\" class=\"small\"");
  return s + "</svg>\n";
}

// ---- page sections -----------------------------------------------------------------------------

std::string scalar_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt("%.6g", v.get<double>());
  return v.dump();
}

std::string settings_section(const ojson& settings) {
  std::string s = "<h2 id=\"settings\">Settings</h2>\n<table class=\"kv\">\n";
  for (auto it = settings.begin(); it != settings.end(); ++it) {
    const ojson& v = it.value();
    std::string cell;
    if (v.is_primitive()) {
      cell = scalar_text(v);
    } else if (v.is_object()) {  // its plain members; nested ones are in the full JSON below
      for (auto f = v.begin(); f != v.end(); ++f)
        if (f.value().is_primitive()) cell += (cell.empty() ? "" : ", ") + f.key() + " " + scalar_text(f.value());
    }
    if (cell.empty()) continue;
    s += "<tr><th>" + html_escape(it.key()) + "</th><td>" + html_escape(cell) + "</td></tr>\n";
  }
  s += "</table>\n<details><summary>all settings (JSON)</summary><pre>" + html_escape(settings.dump(2)) +
       "</pre></details>\n";
  return s;
}

std::string metrics_section(const ojson& methods, int seeds, double chance) {
  std::string s =
      "<h2 id=\"metrics\">Metrics</h2>\n<p class=\"note\">Percent. ACC: mean final accuracy over the tasks. BWT: "
      "change on earlier tasks since they were trained (negative = forgetting). Forgetting: drop from the best "
      "accuracy after the task was learned. FWT: accuracy on a task before training it, minus before any training "
      "(an untrained task is evaluated through a fixed probe head per task and seed).";
  if (seeds > 1) s += " Mean ± sample standard deviation over " + std::to_string(seeds) + " seeds.";
  s += "</p>\n<table class=\"metrics\">\n<tr><th>method</th><th>ACC</th><th>BWT</th><th>forgetting</th><th>FWT</th>"
       "<th>time</th></tr>\n";
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& m = it.value();
    const bool joint = m.value("joint", false);
    s += "<tr><td>" + html_escape(it.key()) + (joint ? " <span class=\"tag\">joint: upper bound</span>" : "") + "</td>";
    s += "<td>" + html_escape(metric_cell(m, "acc", false)) + "</td><td>" + html_escape(metric_cell(m, "bwt", true)) +
         "</td><td>" + html_escape(metric_cell(m, "forgetting", true)) + "</td><td>" +
         html_escape(metric_cell(m, "fwt", true)) + "</td>";
    s += "<td>" + (finite_num(m.value("seconds", ojson())) ? fmt("%.0f s", m.at("seconds").get<double>()) : "") +
         "</td></tr>\n";
  }
  return s + "</table>\n" + acc_bars(methods, chance);
}

std::string interval_text(const ojson& iv, bool sign) {
  if (!iv.is_array() || iv.size() != 2 || !finite_num(iv[0]) || !finite_num(iv[1])) return "n/a";
  const char* f = sign ? "%+.1f" : "%.1f";
  return "[" + fmt(f, 100 * iv[0].get<double>()) + ", " + fmt(f, 100 * iv[1].get<double>()) + "]";
}

std::string paired_text(const ojson& c) {
  if (!c.is_object() || !finite_num(c.value("diff", ojson()))) return "n/a";
  return fmt("%+.1f", 100 * c.at("diff").get<double>()) + " " + interval_text(c.value("ci95", ojson()), true) + ", " +
         std::to_string(c.value("wins", 0)) + " wins / " + std::to_string(c.value("ties", 0)) + " ties / " +
         std::to_string(c.value("losses", 0)) + " losses";
}

// Issue 15's statistics: ACC above chance, 95% bootstrap intervals over seeds, the paired comparison
// with finetune. Empty for a report written before they existed (no "statistics").
std::string statistics_section(const ojson& report) {
  if (!report.contains("statistics") || !report.at("statistics").is_object()) return "";
  const ojson& st = report.at("statistics");
  const ojson& methods = report.at("methods");
  const ojson chance = report.value("chance", ojson());
  const bool has_chance = chance.is_object() && finite_num(chance.value("mean", ojson()));
  std::string s = "<h2 id=\"statistics\">Statistics</h2>\n<p class=\"note\">";
  if (has_chance) s += "Chance (1/labels per task, averaged): " + pct(chance.at("mean").get<double>()) + " %. ";
  s += "95% intervals: " + html_escape(st.value("interval", std::string("bootstrap"))) + ", " +
       std::to_string(st.value("resamples", 0)) + " resamples (seed " + std::to_string(st.value("seed", 0)) + "). " +
       html_escape(st.value("note", std::string())) + ".</p>\n";
  s += "<table class=\"metrics\">\n<tr><th>method</th><th>ACC</th><th>ACC − chance</th><th>ACC 95%</th><th>BWT 95%</th>"
       "<th>forgetting 95%</th><th>FWT 95%</th><th>vs finetune: ACC diff [95%], wins</th>"
       "<th>vs finetune: forgetting diff [95%], wins (less)</th></tr>\n";
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& m = it.value();
    const ojson ci = m.value("ci95", ojson::object());
    const ojson v = m.value("vs_finetune", ojson());
    auto civ = [&](const char* k, bool sign) { return ci.is_object() ? interval_text(ci.value(k, ojson()), sign) : "n/a"; };
    s += "<tr><td>" + html_escape(it.key()) + "</td><td>" + html_escape(metric_cell(m, "acc", false)) + "</td><td>" +
         (finite_num(m.value("acc_above_chance", ojson())) ? fmt("%+.1f", 100 * m.at("acc_above_chance").get<double>())
                                                        : std::string("n/a")) +
         "</td><td>" + civ("acc", false) + "</td><td>" + civ("bwt", true) + "</td><td>" + civ("forgetting", true) +
         "</td><td>" + civ("fwt", true) + "</td><td>" +
         (v.is_object() ? html_escape(paired_text(v.value("acc", ojson()))) : std::string("")) + "</td><td>" +
         (v.is_object() ? html_escape(paired_text(v.value("forgetting", ojson()))) : std::string("")) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

std::string method_section(const std::string& name, const ojson& m, const std::vector<std::string>& tasks,
                           const std::vector<double>& chance) {
  const std::string where = "methods." + name;
  const bool joint = m.value("joint", false);
  const auto matrix = matrix_of(m.at("matrix"), where + ".matrix");
  const auto before = vector_of(m.at("before"), where + ".before");
  const size_t T = tasks.size();
  ARIA_CHECK(before.size() == T && matrix.size() == (joint ? 1 : T), "report.html: ", where,
             " does not match the ", T, " tasks");
  for (const auto& row : matrix) ARIA_CHECK(row.size() == T, "report.html: ", where, ".matrix rows need ", T, " entries");
  const auto sd = matrix_std(m, where);
  const int seeds = m.value("num_seeds", 1);

  std::vector<std::string> row_names = {"before training"}, xs = {"before"};
  std::vector<std::vector<double>> rows = {before};
  for (size_t i = 0; i < matrix.size(); ++i) {
    row_names.push_back(joint ? "after joint training" : "after " + tasks[i]);
    xs.push_back(joint ? "after joint" : tasks[i]);
    rows.push_back(matrix[i]);
  }
  std::string s = "<section class=\"method\" id=\"method-" + html_escape(name) + "\">\n<h2>" + html_escape(name) +
                  (joint ? " <span class=\"tag\">joint training on all tasks: the upper bound</span>" : "") + "</h2>\n";
  s += "<p class=\"metrics-line\">ACC " + html_escape(metric_cell(m, "acc", false)) + " · BWT " +
       html_escape(metric_cell(m, "bwt", true)) + " · forgetting " + html_escape(metric_cell(m, "forgetting", true)) +
       " · FWT " + html_escape(metric_cell(m, "fwt", true)) + (seeds > 1 ? " (" + std::to_string(seeds) + " seeds)" : "") +
       "</p>\n";
  if (m.contains("note") && m.at("note").is_string())
    s += "<p class=\"note\">" + html_escape(m.at("note").get<std::string>()) + "</p>\n";
  s += "<div class=\"row\"><figure>" +
       heat_map(tasks, row_names, rows, sd, joint ? -1 : 1, name + ": accuracy matrix") +
       "<figcaption>Accuracy (%) on each task (columns) before training and after each training stage (rows)" +
       std::string(joint ? "" : "; outlined: the task just trained") + (seeds > 1 ? "; mean ± std over seeds" : "") +
       ".</figcaption></figure>\n";
  std::vector<std::vector<double>> band;  // ± sd over seeds at every point, "before" included
  if (!sd.empty()) {
    band = matrix_std(m, where, "before");
    band.insert(band.end(), sd.begin(), sd.end());
  }
  s += "<figure>" +
       accuracy_lines_svg(tasks, xs, rows, band, chance, name + ": accuracy of each task over the sequence") +
       "<figcaption>Accuracy of each task over the sequence (x: before training, then after training each task)" +
       std::string(band.empty() ? "" : "; bands: ± one standard deviation over seeds") +
       std::string(chance.empty() ? "" : "; dashed: chance (1 / labels)") +
       std::string(joint ? "" : "; the large dot: right after the task was trained") + ".</figcaption></figure></div>\n";
  if (m.contains("info") && m.at("info").is_object() && !m.at("info").empty())
    s += "<details><summary>" + html_escape(name) + ": method details</summary><pre>" +
         html_escape(m.at("info").dump(2)) + "</pre></details>\n";
  return s + "</section>\n";
}

std::string gates_section(const GateReport& g) {
  std::string s = "<section class=\"gates\" id=\"gates-" + html_escape(g.method) + "\">\n<h2>" + html_escape(g.method) +
                  ": gate values per layer</h2>\n<p class=\"note\">Histogram of pi (per token: y = pi fast(x) + (1 - pi) "
                  "slow(x)) " + html_escape(g.when) + "; " + html_escape(g.data) +
                  ". The plasticity loss pushes pi toward 0 or 1.</p>\n<div class=\"row\">\n";
  for (const GateHistogram& h : g.layers) {
    int64_t low = 0, high = 0;
    const size_t n = h.counts.size();
    for (size_t k = 0; k < n; ++k) {
      if (double(k + 1) / double(n) <= 0.1 + 1e-12) low += h.counts[k];
      if (double(k) / double(n) >= 0.9 - 1e-12) high += h.counts[k];
    }
    const double tot = double(std::max<int64_t>(h.tokens, 1));
    s += "<figure>" + gate_chart(h) + "<figcaption>layer " + std::to_string(h.layer) + ": mean " + fmt("%.3f", h.mean) +
         ", " + fmt("%.1f", 100.0 * double(low) / tot) + " % below 0.1, " + fmt("%.1f", 100.0 * double(high) / tot) +
         " % above 0.9 (" + std::to_string(h.tokens) + " tokens)</figcaption></figure>\n";
  }
  return s + "</div>\n</section>\n";
}

const char* kStyle = R"(<style>
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1b;
       max-width: 1440px; margin: 24px auto; padding: 0 20px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin: 0 0 12px; } .note { color: #555; font-size: 13px; max-width: 900px; }
nav a { margin-right: 12px; color: #2b5b8a; }
table { border-collapse: collapse; margin: 8px 0 12px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
table.metrics td:not(:first-child), table.metrics th:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
.tag { font-size: 11px; background: #eef3f8; color: #2b5b8a; border-radius: 3px; padding: 1px 5px; font-weight: normal; }
.metrics-line { font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; max-width: 520px; }
svg.chart { display: block; font-size: 11px; }
svg .axis { fill: #333; font-size: 11px; } svg .small { font-size: 9px; fill: #444; }
svg .cell { font-size: 12px; font-weight: 600; }
svg .grid { stroke: #e3e3e3; stroke-width: 1; } svg .err { stroke: #222; stroke-width: 2; }
svg .diag { stroke: #e15759; stroke-width: 2.5; } svg .bar { fill: #4e79a7; }
tr.pooled td { font-weight: 600; background: #f6f8fa; }
pre { background: #f6f8fa; padding: 10px; overflow: auto; font-size: 12px; max-height: 420px; }
details { margin: 6px 0 10px; }
</style>
)";

}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

GateReport collect_gate_histograms(const ContinualModel& m, const std::vector<const ClsTaskData*>& tasks,
                                   const std::string& split, int64_t max_examples_per_task, int batch_size, int bins) {
  ARIA_CHECK(bins >= 1 && batch_size >= 1, "gate histograms: bins and batch_size must be >= 1");
  ARIA_CHECK(split == "test" || split == "validation", "gate histograms: split must be test or validation");
  ARIA_CHECK(tasks.size() <= m.tasks.size(), "gate histograms: the model has ", m.tasks.size(), " task slots for ",
             tasks.size(), " tasks");
  const size_t L = m.gpt.blocks.size();
  for (size_t l = 0; l < L; ++l)
    ARIA_CHECK(m.gpt.blocks[l].gated, "gate histograms: block ", l, " has no gated MLP (not an ARIA model)");
  std::vector<GateHistogram> hist(L);
  std::vector<double> sums(L, 0.0);
  for (size_t l = 0; l < L; ++l) hist[l].layer = int(l), hist[l].counts.assign(size_t(bins), 0);
  NoGradGuard no_grad;
  int64_t examples = 0;
  for (size_t t = 0; t < tasks.size(); ++t) {
    const auto& all = split == "test" ? tasks[t]->test : tasks[t]->validation;
    const size_t n = max_examples_per_task > 0 ? std::min(all.size(), size_t(max_examples_per_task)) : all.size();
    const std::vector<ClsExample> data(all.begin(), all.begin() + long(n));
    examples += int64_t(n);
    for (const ClsBatch& b : fixed_batches(data, batch_size, m.device(), 0, pad_id_for(m.gpt.config.vocab_size))) {
      GateValues gates;
      classify_logits(m, b, int(t), ForwardOptions{&gates});
      const std::vector<float> mask = b.mask.to_floats();
      for (size_t l = 0; l < L; ++l) {
        const std::vector<float> pi = gates.pi[l].to_floats();
        ARIA_CHECK(pi.size() == mask.size(), "gate histograms: pi has ", pi.size(), " values for ", mask.size(),
                   " token positions");
        for (size_t k = 0; k < pi.size(); ++k) {
          if (mask[k] <= 0) continue;
          const double v = std::clamp(double(pi[k]), 0.0, 1.0);
          hist[l].counts[std::min(size_t(bins) - 1, size_t(v * bins))] += 1;
          hist[l].tokens += 1;
          sums[l] += v;
        }
      }
    }
  }
  GateReport g;
  for (size_t l = 0; l < L; ++l) {
    hist[l].mean = hist[l].tokens ? sums[l] / double(hist[l].tokens) : 0.0;
    g.layers.push_back(hist[l]);
  }
  g.data = split + " split of every task (" + std::to_string(examples) + " examples, each through its own task's "
           "adapter and head), real tokens only";
  return g;
}

ojson gate_report_to_json(const GateReport& g) {
  ojson layers = ojson::array();
  for (const GateHistogram& h : g.layers)
    layers.push_back({{"layer", h.layer}, {"counts", h.counts}, {"mean", h.mean}, {"tokens", h.tokens}});
  return {{"method", g.method}, {"when", g.when}, {"data", g.data}, {"layers", layers}};
}

GateReport gate_report_from_json(const nlohmann::json& j) {
  try {
    GateReport g;
    g.method = j.at("method").get<std::string>();
    g.when = j.value("when", "");
    g.data = j.value("data", "");
    for (const auto& l : j.at("layers")) {
      GateHistogram h;
      h.layer = l.at("layer").get<int>();
      h.counts = l.at("counts").get<std::vector<int64_t>>();
      h.mean = l.at("mean").get<double>();
      h.tokens = l.at("tokens").get<int64_t>();
      ARIA_CHECK(!h.counts.empty(), "layer ", h.layer, " has no bins");
      g.layers.push_back(h);
    }
    return g;
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("gate histograms: malformed JSON: ", e.what());
  }
}

std::string report_html(const ojson& report, const HtmlReportOptions& opt) {
  ARIA_CHECK(report.is_object() && report.contains("tasks") && report.contains("methods"),
             "report.html: the report needs 'tasks' and 'methods'");
  const ojson& methods = report.at("methods");
  ARIA_CHECK(methods.is_object() && !methods.empty(), "report.html: 'methods' must be a non-empty object");
  std::vector<std::string> tasks;
  for (const ojson& t : report.at("tasks")) {
    ARIA_CHECK(t.is_string(), "report.html: task names must be strings");
    tasks.push_back(t.get<std::string>());
  }
  ARIA_CHECK(!tasks.empty(), "report.html: no tasks");
  check_report_values(methods);
  int seeds = 1;
  for (const ojson& m : methods) seeds = std::max(seeds, m.value("num_seeds", 1));

  std::string s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                  html_escape(opt.title) + "</title>\n" + kStyle + "</head>\n<body>\n<h1>" + html_escape(opt.title) +
                  "</h1>\n";
  if (!opt.subtitle.empty()) s += "<p class=\"sub\">" + html_escape(opt.subtitle) + "</p>\n";
  s += "<p class=\"sub\">Tasks in training order: ";
  for (size_t j = 0; j < tasks.size(); ++j) s += (j ? " → " : "") + html_escape(tasks[j]);
  s += "</p>\n";
  if (report.contains("scenario") && report.at("scenario").is_string())
    s += "<p class=\"sub\">Scenario: " + html_escape(report.at("scenario").get<std::string>()) + "</p>\n";
  if (report.contains("settings")) {
    const std::string facts = run_facts_line(report.at("settings"));  // version, commit, device, command line
    if (!facts.empty()) s += "<p class=\"sub\">" + html_escape(facts) + "</p>\n";
  }
  s += "<nav><a href=\"#metrics\">metrics</a><a href=\"#forgetting\">forgetting</a>";
  if (!opt.loss.empty()) s += "<a href=\"#loss\">training loss</a>";
  if (report.contains("statistics")) s += "<a href=\"#statistics\">statistics</a>";
  const std::string orders = per_order_section_html(methods), transfer = head_transfer_section_html(report);
  if (!orders.empty()) s += "<a href=\"#orders\">task orders</a>";
  if (!transfer.empty()) s += "<a href=\"#head-transfer\">head transfer</a>";
  for (auto it = methods.begin(); it != methods.end(); ++it)
    s += "<a href=\"#method-" + html_escape(it.key()) + "\">" + html_escape(it.key()) + "</a>";
  for (const GateReport& g : opt.gates) s += "<a href=\"#gates-" + html_escape(g.method) + "\">gates</a>";
  s += "<a href=\"#settings\">settings</a></nav>\n";
  const std::vector<double> chance = chance_per_task(report);
  double chance_mean = std::numeric_limits<double>::quiet_NaN();
  if (!chance.empty()) {
    chance_mean = 0;
    for (double c : chance) chance_mean += c / double(chance.size());
  }
  s += metrics_section(methods, seeds, chance_mean);
  s += forgetting_section_html(methods);
  s += loss_section_html(methods, opt.loss);
  s += statistics_section(report);
  s += orders + transfer;
  for (auto it = methods.begin(); it != methods.end(); ++it) s += method_section(it.key(), it.value(), tasks, chance);
  for (const GateReport& g : opt.gates) s += gates_section(g);
  if (report.contains("settings") && report.at("settings").is_object()) s += settings_section(report.at("settings"));
  s += "</body>\n</html>\n";
  return s;
}

void write_report_html(const ojson& report, const HtmlReportOptions& opt, const std::string& path) {
  io::write_file_atomic(path, report_html(report, opt));
}

}  // namespace aria
