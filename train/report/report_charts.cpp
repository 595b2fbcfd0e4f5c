#include "aria/train/report/report_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/train/report/report_format.h"
#include "aria/train/report/report_html.h"

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using namespace report_format;  // kPalette, fmt, px, pct, finite_num: shared with report_html.cpp

std::string svg_open(double w, double h, const std::string& label) {
  return "<svg class=\"chart\" width=\"" + px(w) + "\" height=\"" + px(h) + "\" viewBox=\"0 0 " + px(w) + " " +
         px(h) + "\" role=\"img\" aria-label=\"" + html_escape(label) + "\">\n";
}

std::string text(double x, double y, const std::string& s, const std::string& attrs = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" + html_escape(s) +
         "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  return "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" + px(y2) + "\" " + attrs +
         "/>\n";
}

std::string legend_entry(double x, double y, const std::string& color, const std::string& name) {
  return "<rect x=\"" + px(x) + "\" y=\"" + px(y - 8) + "\" width=\"12\" height=\"12\" fill=\"" + color + "\"/>\n" +
         text(x + 18, y + 2, name, "class=\"axis\"");
}

double json_num(const ojson& j, const char* key) {
  if (!j.contains(key)) return kNaN;
  const ojson& v = j.at(key);
  return finite_num(v) ? v.get<double>() : kNaN;
}

// Tick values for [lo, hi]: about n steps of 1, 2 or 5 times a power of ten.
std::vector<double> ticks(double lo, double hi, int n) {
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return t;
}

// "before" and "after joint" stay; a task name becomes "after <task>" (tooltips).
std::string stage(const std::string& x) {
  return x.rfind("before", 0) == 0 || x.rfind("after", 0) == 0 ? x : "after " + x;
}

}  // namespace

std::vector<LossPoint> read_loss_curves(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  const std::string text_all = io::read_file(path, "metrics file");  // regular files only (never a FIFO)
  std::vector<LossPoint> out;
  std::istringstream in(text_all);
  std::string ln;
  for (int64_t no = 1; std::getline(in, ln); ++no) {
    if (ln.empty()) continue;
    try {
      const ojson j = ojson::parse(ln);
      if (j.value("type", std::string()) != "step") continue;
      LossPoint p;
      p.method = j.at("method").get<std::string>();
      p.seed = j.at("seed").get<uint64_t>();
      p.task = j.at("task").get<std::string>();
      p.step = j.at("step").get<int64_t>();
      p.task_step = j.value("task_step", int64_t(0));
      p.loss = json_num(j, "loss");
      p.ce = json_num(j, "ce");
      p.plasticity = json_num(j, "plasticity");
      p.spc = json_num(j, "spc");
      p.accuracy = json_num(j, "accuracy");
      p.lr = json_num(j, "lr");
      p.grad_norm = json_num(j, "grad_norm");
      out.push_back(p);
    } catch (const nlohmann::json::exception& e) {
      ARIA_FAIL("'", path, "' line ", no, " is not a metrics record: ", e.what());
    }
  }
  return out;
}

std::string loss_curve_svg(const std::string& method, const std::vector<LossPoint>& points) {
  std::vector<const LossPoint*> mine;
  std::vector<std::string> tasks;  // in order of first appearance: their colours
  std::vector<uint64_t> seeds;
  for (const LossPoint& p : points) {
    if (p.method != method) continue;
    mine.push_back(&p);
    if (std::find(tasks.begin(), tasks.end(), p.task) == tasks.end()) tasks.push_back(p.task);
    if (std::find(seeds.begin(), seeds.end(), p.seed) == seeds.end()) seeds.push_back(p.seed);
  }
  if (mine.empty()) return "";
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  int64_t max_step = 1;
  for (const LossPoint* p : mine) {
    if (std::isfinite(p->loss)) lo = std::min(lo, p->loss), hi = std::max(hi, p->loss);
    max_step = std::max(max_step, p->step);
  }
  if (!std::isfinite(lo)) return "";  // no finite loss to draw
  const double pad = hi > lo ? 0.06 * (hi - lo) : 0.5;
  lo -= pad, hi += pad;
  const double left = 52, top = 12, pw = 420, ph = 200, legend = 150, w = left + pw + legend, h = top + ph + 40;
  auto X = [&](double s) { return left + pw * s / double(max_step); };
  auto Y = [&](double v) { return top + ph - ph * (v - lo) / (hi - lo); };
  std::string s = svg_open(w, h, method + ": training loss per task");
  for (double t : ticks(lo, hi, 4))
    s += line(left, Y(t), left + pw, Y(t), "class=\"grid\"") +
         text(left - 6, Y(t) + 4, fmt("%.3g", t), "text-anchor=\"end\" class=\"axis\"");
  for (double t : ticks(0, double(max_step), 5))
    s += text(X(t), top + ph + 16, fmt("%.0f", t), "text-anchor=\"middle\" class=\"axis\"");
  s += text(left + pw / 2, top + ph + 32, "optimizer step", "text-anchor=\"middle\" class=\"small\"");
  s += text(12, top + ph / 2, "loss", "class=\"axis\" transform=\"rotate(-90 12 " + px(top + ph / 2) + ")\"");
  // Task boundaries of the first seed: where the task changes.
  for (size_t i = 1; i < mine.size(); ++i)
    if (mine[i]->seed == seeds[0] && mine[i - 1]->seed == seeds[0] && mine[i]->task != mine[i - 1]->task) {
      const double xb = X(0.5 * double(mine[i - 1]->step + mine[i]->step));
      s += line(xb, top, xb, top + ph, "stroke=\"#999\" stroke-dasharray=\"4 3\"");
    }
  // One polyline per (seed, task) run of consecutive points; a non-finite loss breaks the line.
  auto flush = [&](std::string& pts, size_t task, bool first_seed, const std::string& tip) {
    if (pts.empty()) return;
    s += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + kPalette[task % 10] + "\" stroke-width=\"" +
         (first_seed ? "2" : "1.2") + "\" stroke-opacity=\"" + (first_seed ? "1" : "0.45") + "\"><title>" +
         html_escape(tip) + "</title></polyline>\n";
    pts.clear();
  };
  std::string pts;
  size_t cur_task = 0;
  bool cur_first = true;
  std::string tip;
  for (size_t i = 0; i < mine.size(); ++i) {
    const LossPoint& p = *mine[i];
    const bool new_segment = i == 0 || p.seed != mine[i - 1]->seed || p.task != mine[i - 1]->task;
    if (new_segment) flush(pts, cur_task, cur_first, tip);
    cur_task = size_t(std::find(tasks.begin(), tasks.end(), p.task) - tasks.begin());
    cur_first = p.seed == seeds[0];
    tip = method + ", seed " + std::to_string(p.seed) + ", " + p.task;
    if (!std::isfinite(p.loss)) {
      flush(pts, cur_task, cur_first, tip);
      continue;
    }
    pts += px(X(double(p.step))) + "," + px(Y(p.loss)) + " ";
  }
  flush(pts, cur_task, cur_first, tip);
  for (size_t j = 0; j < tasks.size(); ++j) s += legend_entry(left + pw + 16, top + 10 + 18 * double(j), kPalette[j % 10], tasks[j]);
  if (seeds.size() > 1)
    s += text(left + pw + 16, top + 18 * double(tasks.size()) + 20,
              std::to_string(seeds.size()) + " seeds (faint: seed 2+)", "class=\"small\"");
  return s + "</svg>\n";
}

std::string forgetting_bars_svg(const ojson& methods) {
  struct Bar {
    std::string method, metric;
    double v = kNaN, lo = kNaN, hi = kNaN;
    std::string interval;  // "95% interval" or "± std"
  };
  std::vector<std::string> names;
  std::vector<Bar> bars;
  double lo = 0, hi = 0;
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const ojson& m = it.value();
    if (m.value("joint", false)) continue;  // joint training has no BWT or forgetting
    bool any = false;
    for (const char* k : {"bwt", "forgetting"}) {
      Bar b{it.key(), k};
      b.v = json_num(m, k);
      if (!std::isfinite(b.v)) continue;
      const ojson ci = m.contains("ci95") && m.at("ci95").is_object() ? m.at("ci95").value(k, ojson()) : ojson();
      if (ci.is_array() && ci.size() == 2 && finite_num(ci[0]) && finite_num(ci[1])) {
        b.lo = ci[0].get<double>(), b.hi = ci[1].get<double>(), b.interval = "95% interval";
      } else if (m.contains("std") && m.at("std").is_object() && std::isfinite(json_num(m.at("std"), k))) {
        const double sd = json_num(m.at("std"), k);
        b.lo = b.v - sd, b.hi = b.v + sd, b.interval = "± std";
      }
      lo = std::min({lo, b.v, std::isfinite(b.lo) ? b.lo : 0.0});
      hi = std::max({hi, b.v, std::isfinite(b.hi) ? b.hi : 0.0});
      bars.push_back(b);
      any = true;
    }
    if (any) names.push_back(it.key());
  }
  if (bars.empty()) return "";
  const double pad = std::max(0.02, 0.08 * (hi - lo));
  lo -= lo < 0 ? pad : 0, hi += pad;
  const double left = 52, top = 12, group = 96, bw = 30, ph = 220, legend = 130;
  const double pw = group * double(names.size()), w = left + pw + legend, h = top + ph + 30;
  auto Y = [&](double v) { return top + ph - ph * (v - lo) / (hi - lo); };
  std::string s = svg_open(w, h, "BWT and forgetting per method with 95% intervals");
  for (double t : ticks(lo, hi, 5))
    s += line(left, Y(t), left + pw, Y(t), t == 0 ? "stroke=\"#555\" stroke-width=\"1.2\"" : "class=\"grid\"") +
         text(left - 6, Y(t) + 4, fmt("%.0f", 100 * t), "text-anchor=\"end\" class=\"axis\"");
  s += text(12, top + ph / 2, "percent", "class=\"axis\" transform=\"rotate(-90 12 " + px(top + ph / 2) + ")\"");
  const char* colors[2] = {"#4e79a7", "#e15759"};  // BWT, forgetting
  for (const Bar& b : bars) {
    const size_t g = size_t(std::find(names.begin(), names.end(), b.method) - names.begin());
    const int k = b.metric == "bwt" ? 0 : 1;
    const double x = left + group * double(g) + 14 + (bw + 6) * k;
    const double y0 = Y(0), y1 = Y(b.v);
    std::string tip = b.method + ": " + (k == 0 ? "BWT " : "forgetting ") + fmt("%+.1f", 100 * b.v) + " %";
    if (!b.interval.empty()) tip += ", " + b.interval + " [" + pct(b.lo) + ", " + pct(b.hi) + "]";
    s += "<rect x=\"" + px(x) + "\" y=\"" + px(std::min(y0, y1)) + "\" width=\"" + px(bw) + "\" height=\"" +
         px(std::max(std::abs(y1 - y0), 0.5)) + "\" fill=\"" + colors[k] + "\"><title>" + html_escape(tip) +
         "</title></rect>\n";
    if (!b.interval.empty()) {
      const double xc = x + bw / 2;
      s += line(xc, Y(b.hi), xc, Y(b.lo), "class=\"err\"") + line(xc - 5, Y(b.hi), xc + 5, Y(b.hi), "class=\"err\"") +
           line(xc - 5, Y(b.lo), xc + 5, Y(b.lo), "class=\"err\"");
    }
  }
  for (size_t g = 0; g < names.size(); ++g)
    s += text(left + group * (double(g) + 0.5), top + ph + 18, names[g], "text-anchor=\"middle\" class=\"axis\"");
  s += legend_entry(left + pw + 16, top + 10, colors[0], "BWT") + legend_entry(left + pw + 16, top + 28, colors[1], "forgetting");
  return s + "</svg>\n";
}

std::string accuracy_lines_svg(const std::vector<std::string>& tasks, const std::vector<std::string>& xs,
                               const std::vector<std::vector<double>>& points, const std::vector<std::vector<double>>& sd,
                               const std::vector<double>& chance, const std::string& label) {
  const double left = 40, top = 12, pw = std::max(260.0, 84.0 * double(xs.size())), ph = 200, legend = 130;
  const double w = left + pw + legend, h = top + ph + 44;
  std::string s = svg_open(w, h, label);
  auto X = [&](size_t i) { return left + (xs.size() == 1 ? pw / 2 : pw * double(i) / double(xs.size() - 1)); };
  auto Y = [&](double v) { return top + ph - ph * std::clamp(v, 0.0, 1.0); };
  for (int k = 0; k <= 4; ++k)
    s += line(left, Y(k / 4.0), left + pw, Y(k / 4.0), "class=\"grid\"") +
         text(left - 6, Y(k / 4.0) + 4, std::to_string(25 * k), "text-anchor=\"end\" class=\"axis\"");
  for (size_t i = 0; i < xs.size(); ++i) s += text(X(i), top + ph + 18, xs[i], "text-anchor=\"middle\" class=\"axis\"");
  s += text(left - 34, top + ph / 2, "acc %",
            "class=\"axis\" transform=\"rotate(-90 " + px(left - 30) + " " + px(top + ph / 2) + ")\"");
  // Chance: one grey line when every task has the same, else one faint line per task in its colour.
  const bool same_chance = !chance.empty() && std::all_of(chance.begin(), chance.end(), [&](double c) {
    return std::abs(c - chance[0]) < 1e-12;
  });
  if (chance.size() == tasks.size()) {
    for (size_t j = 0; j < (same_chance ? 1 : tasks.size()); ++j) {
      const std::string color = same_chance ? "#777" : kPalette[j % 10];
      const std::string who = same_chance ? "every task" : tasks[j];
      s += "<line class=\"chance\" x1=\"" + px(left) + "\" y1=\"" + px(Y(chance[j])) + "\" x2=\"" + px(left + pw) +
           "\" y2=\"" + px(Y(chance[j])) + "\" stroke=\"" + color + "\" stroke-dasharray=\"5 4\" stroke-opacity=\"" +
           (same_chance ? "0.9" : "0.6") + "\"><title>" + html_escape("chance, " + who + ": " + pct(chance[j]) + " %") +
           "</title></line>\n";
    }
    if (same_chance) s += text(left + pw - 4, Y(chance[0]) - 4, "chance " + pct(chance[0]) + " %", "text-anchor=\"end\" class=\"small\"");
  }
  const bool band = sd.size() == points.size() && !sd.empty();
  for (size_t j = 0; j < tasks.size(); ++j) {
    const std::string color = kPalette[j % 10];
    if (band) {  // mean ± sd over seeds: the upper edge left to right, the lower edge back
      std::string poly;
      for (size_t i = 0; i < points.size(); ++i) poly += px(X(i)) + "," + px(Y(points[i][j] + sd[i][j])) + " ";
      for (size_t i = points.size(); i-- > 0;) poly += px(X(i)) + "," + px(Y(points[i][j] - sd[i][j])) + " ";
      s += "<polygon class=\"band\" points=\"" + poly + "\" fill=\"" + color + "\" fill-opacity=\"0.18\" stroke=\"none\"/>\n";
    }
    std::string pts;
    for (size_t i = 0; i < points.size(); ++i) pts += px(X(i)) + "," + px(Y(points[i][j])) + " ";
    s += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    for (size_t i = 0; i < points.size(); ++i) {
      // The point right after the task itself was trained is drawn larger.
      const bool own = points.size() == tasks.size() + 1 && i == j + 1;
      std::string tip = tasks[j] + ", " + stage(xs[i]) + ": " + pct(points[i][j]) + " %";
      if (band) tip += " ± " + pct(sd[i][j]);
      s += "<circle cx=\"" + px(X(i)) + "\" cy=\"" + px(Y(points[i][j])) + "\" r=\"" + (own ? "5" : "3") +
           "\" fill=\"" + color + "\"><title>" + html_escape(tip) + "</title></circle>\n";
    }
    s += legend_entry(left + pw + 16, top + 10 + 18 * double(j), color, tasks[j]);
  }
  return s + "</svg>\n";
}

std::string forgetting_section_html(const ojson& methods) {
  const std::string svg = forgetting_bars_svg(methods);
  if (svg.empty()) return "";
  return "<h2 id=\"forgetting\">Forgetting and BWT</h2>\n<p class=\"note\">Percent, per sequential method. BWT: "
         "change on earlier tasks since they were trained (negative = forgetting). Forgetting: drop from the best "
         "accuracy after the task was learned. Whiskers: the 95% bootstrap interval of report.json (\"ci95\"), or "
         "± one standard deviation over seeds where no interval exists; none with a single run.</p>\n<figure>" +
         svg + "<figcaption>BWT and forgetting per method (hover for the numbers).</figcaption></figure>\n";
}

std::string loss_section_html(const ojson& methods, const std::vector<LossPoint>& points) {
  std::string figures;
  for (auto it = methods.begin(); it != methods.end(); ++it) {
    const std::string svg = loss_curve_svg(it.key(), points);
    if (!svg.empty())
      figures += "<figure>" + svg + "<figcaption>" + html_escape(it.key()) +
                 ": training loss at each report point, coloured by the task being trained.</figcaption></figure>\n";
  }
  if (figures.empty()) return "";
  return "<h2 id=\"loss\">Training loss</h2>\n<p class=\"note\">The training loss (cross-entropy plus the method's "
         "own terms: plasticity loss, SPC/EWC penalty, LwF distillation) at every report point of metrics.jsonl "
         "(every train.log_every optimizer steps) against the run's optimizer step; dashed lines: task boundaries. "
         "tables/loss_curves.csv holds every term.</p>\n<div class=\"row\">\n" + figures + "</div>\n";
}

std::vector<double> chance_per_task(const ojson& report) {
  std::vector<double> c;
  if (!report.contains("chance") || !report.at("chance").is_object()) return c;
  const ojson per = report.at("chance").value("per_task", ojson());
  if (!per.is_array()) return c;
  for (const ojson& v : per) {
    if (!finite_num(v)) return {};
    c.push_back(v.get<double>());
  }
  return c;
}

std::string run_facts_line(const ojson& settings) {
  if (!settings.is_object()) return "";
  auto str = [&](const char* k) {
    return settings.contains(k) && settings.at(k).is_string() ? settings.at(k).get<std::string>() : std::string();
  };
  const std::string version = str("version"), hash = str("git_hash"), device = str("device"), cmd = str("command_line");
  std::string s;
  if (!version.empty()) s = "aria " + version + (hash.empty() ? "" : " (git " + hash + ")");
  if (!device.empty()) s += (s.empty() ? "" : " · ") + std::string("device ") + device;
  if (!cmd.empty()) s += (s.empty() ? "" : " · ") + std::string("command: ") + cmd;
  return s;
}

}  // namespace aria
