#include "aria/train/report/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/train/report/cl_bootstrap.h"
#include "aria/train/report/report_format.h"

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

// The runs in the configured task order (order_index 0): the mean matrix and "before" average over
// these only, since another order puts other tasks in the columns.
std::vector<const MethodRun*> first_order_runs(const MethodResult& mr) {
  std::vector<const MethodRun*> v;
  for (const MethodRun& run : mr.runs)
    if (run.order_index == 0) v.push_back(&run);
  if (v.empty()) v.push_back(&mr.runs[0]);
  return v;
}

AccMatrix mean_matrix(const MethodResult& mr) {
  const std::vector<const MethodRun*> runs = first_order_runs(mr);
  AccMatrix m = runs[0]->matrix;
  for (auto& row : m) std::fill(row.begin(), row.end(), 0.0);
  for (const MethodRun* run : runs)
    for (size_t i = 0; i < m.size(); ++i)
      for (size_t j = 0; j < m[i].size(); ++j) m[i][j] += run->matrix[i][j] / double(runs.size());
  return m;
}

std::vector<double> mean_before(const MethodResult& mr) {
  const std::vector<const MethodRun*> runs = first_order_runs(mr);
  std::vector<double> b(runs[0]->before.size(), 0.0);
  for (const MethodRun* run : runs)
    for (size_t j = 0; j < b.size(); ++j) b[j] += run->before[j] / double(runs.size());
  return b;
}

// A run's head-only accuracies and their transfer (when measured).
void put_head_transfer(ojson& o, const MethodRun& run) {
  if (run.head_initial.empty()) return;
  auto vals = [](const std::vector<double>& v) {
    ojson a = ojson::array();
    for (double x : v) a.push_back(num_or_null(true, x));
    return a;
  };
  o["head_only"] = {{"initial_trunk", vals(run.head_initial)}, {"current_trunk", vals(run.head_trained)}};
  o["head_transfer"] = num_or_null(true, head_transfer(run));
}

using report_format::fmt;

std::string pad(const std::string& s, size_t w, bool right) {
  // Width in code points, so "±" counts as one column.
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  if (cols >= w) return s;
  return right ? std::string(w - cols, ' ') + s : s + std::string(w - cols, ' ');
}

ojson interval_json(const Interval& i) { return i.has ? ojson::array({i.lo, i.hi}) : ojson(nullptr); }

// Metric k of every run of a method (NaN where not defined), in run order.
std::vector<double> metric_values(const MethodResult& mr, int k) {
  std::vector<double> v;
  for (const MethodRun& run : mr.runs) {
    MetricVals x = vals(run_metrics(run));
    v.push_back(x.has[k] ? x.v[k] : ClMetrics::kNaN);
  }
  return v;
}

const MethodResult* find_method(const ClReport& r, const std::string& name) {
  for (const MethodResult& mr : r.methods)
    if (mr.method == name) return &mr;
  return nullptr;
}

// The runs of `mr` and of `base` with the same seed and task order, in mr's run order.
std::pair<std::vector<const MethodRun*>, std::vector<const MethodRun*>> pair_runs(const MethodResult& mr,
                                                                                 const MethodResult& base) {
  std::pair<std::vector<const MethodRun*>, std::vector<const MethodRun*>> p;
  for (const MethodRun& a : mr.runs)
    for (const MethodRun& b : base.runs)
      if (a.seed == b.seed && a.order_index == b.order_index) {
        p.first.push_back(&a);
        p.second.push_back(&b);
      }
  return p;
}

// Metric k of `mr` against `base`, paired by (seed, task order). The interval resamples the pairs
// and the test examples together when every run recorded its examples (train/report/cl_bootstrap.h), else
// the pairs only.
PairedComparison compare_by_seed(const MethodResult& mr, const MethodResult& base, int k, bool higher_is_better) {
  const auto [ra, rb] = pair_runs(mr, base);
  std::vector<double> a, b;
  for (size_t i = 0; i < ra.size(); ++i) {
    MetricVals x = vals(run_metrics(*ra[i])), y = vals(run_metrics(*rb[i]));
    a.push_back(x.has[k] ? x.v[k] : ClMetrics::kNaN);
    b.push_back(y.has[k] ? y.v[k] : ClMetrics::kNaN);
  }
  PairedComparison p = paired_compare(a, b, higher_is_better);
  std::vector<const MethodRun*> both = ra;
  both.insert(both.end(), rb.begin(), rb.end());
  if (p.pairs > 0 && has_example_records(both)) p.interval = paired_bootstrap_runs_and_examples(ra, rb, k);
  return p;
}

std::vector<const MethodRun*> all_runs(const MethodResult& mr) {
  std::vector<const MethodRun*> v;
  for (const MethodRun& run : mr.runs) v.push_back(&run);
  return v;
}

bool every_run_has_examples(const ClReport& r) {
  for (const MethodResult& mr : r.methods)
    if (!has_example_records(all_runs(mr))) return false;
  return !r.methods.empty();
}

// The 95% intervals of a method's four metrics: over runs and test examples when recorded, else over runs.
std::array<Interval, 4> method_intervals(const MethodResult& mr) {
  if (has_example_records(all_runs(mr))) return bootstrap_runs_and_examples(all_runs(mr));
  std::array<Interval, 4> out;
  for (int k = 0; k < 4; ++k) out[size_t(k)] = bootstrap_mean_interval(metric_values(mr, k));
  return out;
}

int num_orders(const MethodResult& mr) {
  int n = 0;
  for (const MethodRun& run : mr.runs) n = std::max(n, run.order_index + 1);
  return n;
}

std::vector<std::string> order_names(const ClReport& r, const MethodRun& run) {
  std::vector<std::string> v;
  for (size_t i = 0; i < r.tasks.size(); ++i) v.push_back(r.tasks[run.order.empty() ? i : size_t(run.order[i])]);
  return v;
}

// Per task order: the runs in it and the mean of each metric over them.
ojson per_order_json(const ClReport& r, const MethodResult& mr) {
  ojson out = ojson::array();
  for (int o = 0; o < num_orders(mr); ++o) {
    MethodResult sub{mr.method, {}};
    for (const MethodRun& run : mr.runs)
      if (run.order_index == o) sub.runs.push_back(run);
    if (sub.runs.empty()) continue;
    ojson e;
    e["order_index"] = o;
    e["order"] = order_names(r, sub.runs[0]);
    e["runs"] = sub.runs.size();
    for (int k = 0; k < 4; ++k) {
      const Spread sp = metric_spread(sub, k);
      e[kMetricNames[k]] = num_or_null(sp.count > 0, sp.mean);
    }
    out.push_back(e);
  }
  return out;
}

ojson paired_json(const PairedComparison& p) {
  if (p.pairs == 0) return nullptr;
  return ojson{{"diff", num_or_null(true, p.mean_diff)}, {"ci95", interval_json(p.interval)}, {"wins", p.wins},
               {"ties", p.ties}, {"losses", p.losses}};
}

const char* kBaseline = "finetune";

}  // namespace

double mean_chance(const ClReport& r) {
  if (r.num_labels.empty()) return ClMetrics::kNaN;
  double s = 0;
  for (int n : r.num_labels) s += 1.0 / double(n);
  return s / double(r.num_labels.size());
}

double head_transfer(const MethodRun& r) {
  if (r.head_initial.size() < 2 || r.head_trained.size() != r.head_initial.size()) return ClMetrics::kNaN;
  double s = 0;
  for (size_t j = 1; j < r.head_initial.size(); ++j) s += r.head_trained[j] - r.head_initial[j];
  return s / double(r.head_initial.size() - 1);
}

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
  ARIA_CHECK(r.num_labels.empty() || r.num_labels.size() == T, "report: ", r.num_labels.size(),
             " label counts for ", T, " tasks");
  for (int n : r.num_labels) ARIA_CHECK(n >= 1, "report: a task with ", n, " labels");
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

namespace {

ojson time_split_json(const TimeSplit& t) {
  return {{"train_seconds", t.train}, {"fisher_seconds", t.fisher}, {"eval_seconds", t.eval}, {"host_seconds", t.host}};
}

TimeSplit method_time(const MethodResult& mr) {
  TimeSplit t;
  for (const MethodRun& run : mr.runs) t += run.time;
  return t;
}

}  // namespace

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
      m["time_split"] = time_split_json(first.time);
      m["info"] = first.info;
      if (!first.correct.empty()) m["correct"] = first.correct;
      put_head_transfer(m, first);
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
      m["time_split"] = time_split_json(method_time(mr));
      m["info"] = first.info;
      m["num_seeds"] = mr.runs.size();  // runs: seeds x task orders
      if (num_orders(mr) > 1) m["per_order"] = per_order_json(r, mr);
      m["mean"] = mean;
      m["std"] = sd;
      ojson per = ojson::array();
      for (const MethodRun& run : mr.runs) {
        ojson p;
        p["seed"] = run.seed;
        p["order_index"] = run.order_index;
        p["order"] = order_names(r, run);
        p["matrix"] = run.matrix;
        p["before"] = run.before;
        put_metrics(p, run_metrics(run));
        p["seconds"] = run.seconds;
        p["time_split"] = time_split_json(run.time);
        p["info"] = run.info;
        if (!run.correct.empty()) p["correct"] = run.correct;
        put_head_transfer(p, run);
        per.push_back(p);
      }
      m["per_seed"] = per;
    }
    if (first.joint) m["note"] = kJointNote;
    // Statistics: intervals over seeds, ACC above chance, the paired comparison with finetune.
    ojson ci, ci_runs;
    const std::array<Interval, 4> iv = method_intervals(mr);
    for (int k = 0; k < 4; ++k) {
      ci[kMetricNames[k]] = interval_json(iv[size_t(k)]);
      ci_runs[kMetricNames[k]] = interval_json(bootstrap_mean_interval(metric_values(mr, k)));
    }
    m["ci95"] = ci;
    m["ci95_runs"] = ci_runs;
    {
      std::vector<double> ht;
      for (const MethodRun& run : mr.runs) ht.push_back(head_transfer(run));
      const Spread sp = spread_of(ht);
      m["head_transfer"] = num_or_null(sp.count > 0, sp.mean);
    }
    const Spread acc = metric_spread(mr, 0);
    m["acc_above_chance"] = num_or_null(acc.count > 0 && !r.num_labels.empty(), acc.mean - mean_chance(r));
    if (const MethodResult* base = find_method(r, kBaseline); base && mr.method != kBaseline) {
      const PairedComparison pa = compare_by_seed(mr, *base, 0, true);
      const PairedComparison pf = compare_by_seed(mr, *base, 2, false);
      m["vs_finetune"] = {{"pairs", pa.pairs}, {"acc", paired_json(pa)}, {"forgetting", paired_json(pf)}};
    }
    methods[mr.method] = m;
  }
  ojson out;
  out["settings"] = r.settings;
  out["scenario"] = r.scenario;
  if (r.num_labels.empty()) {
    out["chance"] = nullptr;
  } else {
    std::vector<double> per;
    for (int n : r.num_labels) per.push_back(1.0 / double(n));
    out["chance"] = {{"per_task", per}, {"mean", mean_chance(r)}};
  }
  const bool examples = every_run_has_examples(r);
  out["statistics"] = {
      {"interval", examples ? "95% percentile bootstrap of the mean over runs (seed x task order) and test examples"
                            : "95% percentile bootstrap of the mean over runs (seed x task order)"},
      {"resamples", examples ? kExampleBootstrapResamples : kBootstrapResamples},
      {"seed", kBootstrapSeed},
      {"over", examples ? "runs and test examples" : "runs"},
      {"over_test_examples", examples},
      {"paired_baseline", kBaseline},
      {"note",
       std::string(examples ? "ci95: each resample draws the runs with replacement and one set of test examples per "
                              "task (with replacement, shared by every run, since every run saw the same test split), "
                              "then averages the metric over the drawn runs; with one run only the examples vary. "
                            : "ci95: per-example correctness was not recorded, so the intervals resample runs only "
                              "(null with fewer than 2 runs). ") +
           "ci95_runs resamples the runs only (" + std::to_string(kBootstrapResamples) +
           " resamples; with 3 runs it cannot be wider than their range). vs_finetune pairs runs by seed and task "
           "order (same test examples); acc wins = higher ACC, forgetting wins = less forgetting"}};
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

  // Where the time went: a GPU run should spend it in train (host small), and Fisher should stay a
  // small multiple of a training pass.
  out << "\ntime (seconds, all runs of the method; % of its wall time)\n" << pad("method", mcol, false);
  for (const char* h : {"train", "Fisher", "eval", "host", "total"}) out << pad(h, vcol, true);
  out << "\n";
  for (const MethodResult& mr : r.methods) {
    const TimeSplit t = method_time(mr);
    double total = 0;
    for (const MethodRun& run : mr.runs) total += run.seconds;
    out << pad(mr.method, mcol, false);
    for (double part : {t.train, t.fisher, t.eval, t.host})
      out << pad(fmt("%.1f", part) + (total > 0 ? " (" + fmt("%.0f", 100 * part / total) + "%)" : ""), vcol, true);
    out << pad(fmt("%.1f", total), vcol, true) << "\n";
  }

  out << "\nscenario: " << r.scenario << "\n";
  const double chance = mean_chance(r);
  if (std::isfinite(chance)) {
    out << "ACC above chance (mean chance " << fmt("%.1f", 100 * chance) << " %):";
    for (const MethodResult& mr : r.methods) {
      const Spread s = metric_spread(mr, 0);
      if (s.count > 0) out << "  " << mr.method << " " << fmt("%+.1f", 100 * (s.mean - chance));
    }
    out << "\n";
  }
  // Per task order (several orders): the mean of each metric over that order's runs.
  for (const MethodResult& mr : r.methods) {
    if (num_orders(mr) < 2) continue;
    out << mr.method << " per task order:";
    for (const ojson& o : per_order_json(r, mr)) {
      out << "  [" << o["order_index"].get<int>() << "] ACC " << fmt("%.1f", 100 * o["acc"].get<double>());
      if (!o["forgetting"].is_null()) out << ", forgetting " << fmt("%+.1f", 100 * o["forgetting"].get<double>());
    }
    out << "\n";
  }
  const bool examples = every_run_has_examples(r);
  const size_t seeds = r.methods.empty() ? 0 : r.methods[0].runs.size();
  if (seeds < 2 && !examples) {
    out << "(95% intervals and paired comparisons need at least 2 runs, or per-example records)\n";
    return;
  }
  out << "95% intervals (percentile bootstrap over "
      << (examples ? "runs (seed x task order) and test examples, " + std::to_string(kExampleBootstrapResamples)
                   : "runs (seed x task order), " + std::to_string(kBootstrapResamples))
      << " resamples)\n"
      << pad("method", mcol, false);
  for (const char* h : heads) out << pad(h, vcol, true);
  out << "\n";
  for (const MethodResult& mr : r.methods) {
    out << pad(mr.method, mcol, false);
    const std::array<Interval, 4> iv = method_intervals(mr);
    for (int k = 0; k < 4; ++k) {
      const Interval& i = iv[size_t(k)];
      out << pad(i.has ? "[" + fmt("%.1f", 100 * i.lo) + ", " + fmt("%.1f", 100 * i.hi) + "]" : "n/a", vcol, true);
    }
    out << "\n";
  }
  const MethodResult* base = find_method(r, kBaseline);
  if (!base) return;
  out << "paired with " << kBaseline << " (same seed and task order): ACC difference [95% interval], wins; forgetting difference "
         "[95% interval], wins (less forgetting)\n";
  for (const MethodResult& mr : r.methods) {
    if (mr.method == kBaseline) continue;
    out << pad(mr.method, mcol, false);
    for (int k : {0, 2}) {
      const PairedComparison p = compare_by_seed(mr, *base, k, k == 0);
      if (p.pairs == 0) {
        out << "   n/a";
        continue;
      }
      out << "   " << fmt("%+.1f", 100 * p.mean_diff) << " "
          << (p.interval.has ? "[" + fmt("%+.1f", 100 * p.interval.lo) + ", " + fmt("%+.1f", 100 * p.interval.hi) + "]"
                             : std::string("[n/a]"))
          << ", " << p.wins << "/" << p.pairs << " wins";
    }
    out << "\n";
  }
}

}  // namespace aria
