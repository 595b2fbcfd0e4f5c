#include "aria/train/report/cl_bootstrap.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "aria/core/error.h"
#include "aria/train/report/report.h"

namespace aria {

namespace {

struct SplitMix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return size_t((next() >> 11) * 0x1p-53 * double(n)); }
};

// The task (index into the report's task list) at training position j of a run.
int task_at(const MethodRun& r, size_t j) { return r.order.empty() ? int(j) : r.order[j]; }

// Size of each task's test split, from the runs' records (-1 where they disagree or are missing).
std::map<int, size_t> task_sizes(const std::vector<const MethodRun*>& runs, bool& ok) {
  std::map<int, size_t> n;
  ok = !runs.empty();
  for (const MethodRun* r : runs) {
    const size_t rows = r->joint ? 2 : r->before.size() + 1;
    if (r->correct.size() != rows) {
      ok = false;
      continue;
    }
    for (const auto& row : r->correct) {
      if (row.size() != r->before.size()) ok = false;
      for (size_t j = 0; j < row.size() && ok; ++j) {
        const int t = task_at(*r, j);
        if (row[j].empty() || (n.count(t) && n[t] != row[j].size())) ok = false;
        n[t] = row[j].size();
      }
    }
  }
  return n;
}

double fraction(const std::string& c, const std::vector<uint32_t>& idx) {
  size_t s = 0;
  for (uint32_t i : idx) s += c[i] == '1';
  return double(s) / double(idx.size());
}

// The four metrics of run r on the drawn examples (NaN where undefined).
std::array<double, 4> metrics_on(const MethodRun& r, const std::map<int, std::vector<uint32_t>>& draw) {
  const size_t T = r.before.size();
  auto row = [&](size_t k) {
    std::vector<double> v(T);
    for (size_t j = 0; j < T; ++j) v[j] = fraction(r.correct[k][j], draw.at(task_at(r, j)));
    return v;
  };
  ClMetrics m;
  if (r.joint) {
    m = compute_joint_metrics(row(1));
  } else {
    AccMatrix a;
    for (size_t i = 0; i < T; ++i) a.push_back(row(i + 1));
    m = compute_cl_metrics(a, row(0));
  }
  const double nan = ClMetrics::kNaN;
  return {m.has_acc ? m.acc : nan, m.has_bwt ? m.bwt : nan, m.has_forgetting ? m.forgetting : nan,
          m.has_fwt ? m.fwt : nan};
}

Interval percentile(std::vector<double> v, double level) {
  Interval r;
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.size() < 2) return r;
  std::sort(v.begin(), v.end());
  auto q = [&](double p) {
    const double pos = p * double(v.size() - 1);
    const size_t i = size_t(std::floor(pos));
    const double f = pos - double(i);
    return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
  };
  r.lo = q((1 - level) / 2);
  r.hi = q(1 - (1 - level) / 2);
  r.has = true;
  return r;
}

// One resample: the drawn example indices per task and the drawn run positions.
struct Draw {
  std::map<int, std::vector<uint32_t>> examples;
  std::vector<size_t> runs;
};

Draw draw(SplitMix& rng, const std::map<int, size_t>& sizes, size_t n_runs) {
  Draw d;
  // Runs first, then the tasks in index order: a fixed sequence of draws for given sizes.
  for (size_t k = 0; k < n_runs; ++k) d.runs.push_back(rng.below(n_runs));
  for (const auto& [t, n] : sizes) {
    std::vector<uint32_t>& idx = d.examples[t];
    idx.resize(n);
    for (uint32_t& i : idx) i = uint32_t(rng.below(n));
  }
  return d;
}

void check_args(int resamples, double level) {
  ARIA_CHECK(resamples >= 1, "bootstrap: resamples must be >= 1, got ", resamples);
  ARIA_CHECK(level > 0 && level < 1, "bootstrap: level must be in (0, 1), got ", level);
}

}  // namespace

bool has_example_records(const std::vector<const MethodRun*>& runs) {
  bool ok = false;
  task_sizes(runs, ok);
  return ok;
}

std::array<Interval, 4> bootstrap_runs_and_examples(const std::vector<const MethodRun*>& runs, int resamples,
                                                    uint64_t seed, double level) {
  check_args(resamples, level);
  bool ok = false;
  const std::map<int, size_t> sizes = task_sizes(runs, ok);
  ARIA_CHECK(ok, "bootstrap over test examples: a run has no (or an inconsistent) per-example record");
  SplitMix rng{seed};
  std::array<std::vector<double>, 4> stats;
  for (int s = 0; s < resamples; ++s) {
    const Draw d = draw(rng, sizes, runs.size());
    std::array<double, 4> sum{0, 0, 0, 0};
    for (size_t k : d.runs) {
      const std::array<double, 4> m = metrics_on(*runs[k], d.examples);
      for (int q = 0; q < 4; ++q) sum[q] += m[q];  // NaN stays NaN: the metric is undefined for the runs
    }
    for (int q = 0; q < 4; ++q) stats[q].push_back(sum[q] / double(d.runs.size()));
  }
  std::array<Interval, 4> out;
  for (int q = 0; q < 4; ++q) out[q] = percentile(stats[q], level);
  return out;
}

Interval paired_bootstrap_runs_and_examples(const std::vector<const MethodRun*>& method,
                                            const std::vector<const MethodRun*>& baseline, int metric, int resamples,
                                            uint64_t seed, double level) {
  check_args(resamples, level);
  ARIA_CHECK(metric >= 0 && metric < 4, "bootstrap: metric index ", metric, " outside [0, 4)");
  ARIA_CHECK(method.size() == baseline.size() && !method.empty(), "paired bootstrap: ", method.size(),
             " runs against ", baseline.size());
  std::vector<const MethodRun*> both = method;
  both.insert(both.end(), baseline.begin(), baseline.end());
  bool ok = false;
  const std::map<int, size_t> sizes = task_sizes(both, ok);
  ARIA_CHECK(ok, "paired bootstrap over test examples: a run has no (or an inconsistent) per-example record");
  for (size_t k = 0; k < method.size(); ++k)
    ARIA_CHECK(method[k]->seed == baseline[k]->seed && method[k]->order == baseline[k]->order,
               "paired bootstrap: pair ", k, " differs in seed or task order");
  SplitMix rng{seed};
  std::vector<double> diffs;
  for (int s = 0; s < resamples; ++s) {
    const Draw d = draw(rng, sizes, method.size());
    double sum = 0;
    for (size_t k : d.runs)
      sum += metrics_on(*method[k], d.examples)[size_t(metric)] - metrics_on(*baseline[k], d.examples)[size_t(metric)];
    diffs.push_back(sum / double(d.runs.size()));
  }
  return percentile(diffs, level);
}

}  // namespace aria
