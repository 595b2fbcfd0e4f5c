#include "train/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/file_io.h"

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;

const char* kJointNote =
    "joint training on all tasks at once (the upper bound): there is no task sequence, so the matrix has "
    "one row (the accuracies after training) and BWT, forgetting and FWT are not defined";

ojson num_or_null(bool has, double v) { return has && std::isfinite(v) ? ojson(v) : ojson(nullptr); }

struct MetricVals {
  double v[4];
  bool has[4];
};
const char* kMetricNames[4] = {"acc", "bwt", "forgetting", "fwt"};

MetricVals vals(const ClMetrics& m) {
  return {{m.acc, m.bwt, m.forgetting, m.fwt}, {m.has_acc, m.has_bwt, m.has_forgetting, m.has_fwt}};
}

void put_metrics(ojson& o, const ClMetrics& m) {
  MetricVals x = vals(m);
  for (int k = 0; k < 4; ++k) o[kMetricNames[k]] = num_or_null(x.has[k], x.v[k]);
}

// Spread of metric k over the runs of one method.
Spread metric_spread(const MethodResult& mr, int k) {
  std::vector<double> v;
  for (const MethodRun& run : mr.runs) {
    MetricVals x = vals(run_metrics(run));
    v.push_back(x.has[k] ? x.v[k] : ClMetrics::kNaN);
  }
  return spread_of(v);
}

AccMatrix mean_matrix(const MethodResult& mr) {
  AccMatrix m = mr.runs[0].matrix;
  for (auto& row : m) std::fill(row.begin(), row.end(), 0.0);
  for (const MethodRun& run : mr.runs)
    for (size_t i = 0; i < m.size(); ++i)
      for (size_t j = 0; j < m[i].size(); ++j) m[i][j] += run.matrix[i][j] / double(mr.runs.size());
  return m;
}

std::vector<double> mean_before(const MethodResult& mr) {
  std::vector<double> b(mr.runs[0].before.size(), 0.0);
  for (const MethodRun& run : mr.runs)
    for (size_t j = 0; j < b.size(); ++j) b[j] += run.before[j] / double(mr.runs.size());
  return b;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pad(const std::string& s, size_t w, bool right) {
  // Width in code points, so "±" counts as one column.
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  if (cols >= w) return s;
  return right ? std::string(w - cols, ' ') + s : s + std::string(w - cols, ' ');
}

}  // namespace

ClMetrics run_metrics(const MethodRun& r) {
  if (r.joint) {
    ARIA_CHECK(r.matrix.size() == 1, "report: a joint run has one matrix row, got ", r.matrix.size());
    return compute_joint_metrics(r.matrix[0]);
  }
  return compute_cl_metrics(r.matrix, r.before);
}

void check_report(const ClReport& r) {
  const size_t T = r.tasks.size();
  ARIA_CHECK(T >= 1, "report: no tasks");
  for (const MethodResult& mr : r.methods) {
    ARIA_CHECK(!mr.runs.empty(), "report: method '", mr.method, "' has no runs");
    for (const MethodRun& run : mr.runs) {
      const std::string who = "report: method '" + mr.method + "' seed " + std::to_string(run.seed) + ": ";
      ARIA_CHECK(run.joint == mr.runs[0].joint, who, "runs disagree on joint training");
      const size_t rows = run.joint ? 1 : T;
      ARIA_CHECK(run.matrix.size() == rows, who, "matrix has ", run.matrix.size(), " rows, expected ", rows);
      for (const auto& row : run.matrix)
        ARIA_CHECK(row.size() == T, who, "matrix row has ", row.size(), " entries for ", T, " tasks");
      ARIA_CHECK(run.before.size() == T, who, run.before.size(), " before-training accuracies for ", T, " tasks");
      try {
        run_metrics(run);
      } catch (const Error& e) {
        ARIA_FAIL(who, e.what());
      }
    }
  }
}

ojson report_to_json(const ClReport& r) {
  check_report(r);
  ojson methods = ojson::object();
  for (const MethodResult& mr : r.methods) {
    const bool several = mr.runs.size() > 1;
    const MethodRun& first = mr.runs[0];
    ojson m;
    m["joint"] = first.joint;
    m["matrix"] = several ? mean_matrix(mr) : first.matrix;
    m["before"] = several ? mean_before(mr) : first.before;
    if (!several) {
      put_metrics(m, run_metrics(first));
      m["seconds"] = first.seconds;
      m["info"] = first.info;
    } else {
      ojson mean, sd;
      double seconds = 0;
      for (int k = 0; k < 4; ++k) {
        Spread s = metric_spread(mr, k);
        m[kMetricNames[k]] = mean[kMetricNames[k]] = num_or_null(s.count > 0, s.mean);
        sd[kMetricNames[k]] = num_or_null(s.count > 0, s.std);
      }
      for (const MethodRun& run : mr.runs) seconds += run.seconds;
      m["seconds"] = seconds;
      m["info"] = first.info;
      m["num_seeds"] = mr.runs.size();
      m["mean"] = mean;
      m["std"] = sd;
      ojson per = ojson::array();
      for (const MethodRun& run : mr.runs) {
        ojson p;
        p["seed"] = run.seed;
        p["matrix"] = run.matrix;
        p["before"] = run.before;
        put_metrics(p, run_metrics(run));
        p["seconds"] = run.seconds;
        p["info"] = run.info;
        per.push_back(p);
      }
      m["per_seed"] = per;
    }
    if (first.joint) m["note"] = kJointNote;
    methods[mr.method] = m;
  }
  ojson out;
  out["settings"] = r.settings;
  out["tasks"] = r.tasks;
  out["methods"] = methods;
  return out;
}

void write_report_json(const ClReport& r, const std::string& path) {
  io::write_file_atomic(path, report_to_json(r).dump(2) + "\n");
}

void print_report(const ClReport& r, std::ostream& out) {
  check_report(r);
  size_t col = 8;
  for (const auto& t : r.tasks) col = std::max(col, t.size() + 2);
  size_t label = std::string("before training").size();
  for (const auto& t : r.tasks) label = std::max(label, t.size() + 6);
  label += 2;

  for (const MethodResult& mr : r.methods) {
    const MethodRun& first = mr.runs[0];
    const bool several = mr.runs.size() > 1;
    out << "\n" << mr.method << ": accuracy (%) on each task (columns) "
        << (first.joint ? "after joint training on all tasks" : "after training each task (rows)");
    if (several) out << ", mean over " << mr.runs.size() << " seeds";
    out << "\n" << pad("", label, false);
    for (const auto& t : r.tasks) out << pad(t, col, true);
    out << "\n";
    auto row = [&](const std::string& name, const std::vector<double>& v) {
      out << pad(name, label, false);
      for (double x : v) out << pad(fmt("%.1f", 100 * x), col, true);
      out << "\n";
    };
    row("before training", several ? mean_before(mr) : first.before);
    const AccMatrix m = several ? mean_matrix(mr) : first.matrix;
    if (first.joint)
      row("after joint", m[0]);
    else
      for (size_t i = 0; i < m.size(); ++i) row("after " + r.tasks[i], m[i]);
  }

  const char* heads[4] = {"ACC", "BWT", "forgetting", "FWT"};
  size_t mcol = 8;
  for (const MethodResult& mr : r.methods) mcol = std::max(mcol, mr.method.size() + 2);
  const size_t vcol = 16;
  out << "\nmetrics (percent; ACC: final mean accuracy, BWT: change on earlier tasks, forgetting: drop from their "
         "best, FWT: gain on a task from training the previous ones)\n"
      << pad("method", mcol, false);
  for (const char* h : heads) out << pad(h, vcol, true);
  out << "\n";
  for (const MethodResult& mr : r.methods) {
    out << pad(mr.method, mcol, false);
    for (int k = 0; k < 4; ++k) {
      Spread s = metric_spread(mr, k);
      std::string cell = "n/a";
      if (s.count > 0) {
        cell = fmt(k == 0 ? "%.1f" : "%+.1f", 100 * s.mean);
        if (mr.runs.size() > 1) cell += " ± " + fmt("%.1f", 100 * s.std);
      }
      out << pad(cell, vcol, true);
    }
    if (mr.runs[0].joint) out << "   (joint training: upper bound)";
    out << "\n";
  }
  if (r.methods.size() > 0 && r.methods[0].runs.size() > 1)
    out << "(mean ± sample standard deviation over " << r.methods[0].runs.size() << " seeds)\n";
}

}  // namespace aria
