#include "aria/train/report/cl_metrics.h"

#include <algorithm>
#include <cmath>

#include "aria/core/error.h"

namespace aria {

namespace {

void check_value(double v, const char* what, size_t i, long j) {
  ARIA_CHECK(std::isfinite(v) && v >= 0 && v <= 1, "metrics: ", what, "[", i, "]", j >= 0 ? "[" : "",
             j >= 0 ? std::to_string(j) : std::string(), j >= 0 ? "]" : "", " = ", v,
             " is not an accuracy in [0, 1]");
}

}  // namespace

ClMetrics compute_cl_metrics(const AccMatrix& a, const std::vector<double>& b) {
  const size_t T = a.size();
  ARIA_CHECK(T >= 1, "metrics: the accuracy matrix is empty");
  for (size_t i = 0; i < T; ++i) {
    ARIA_CHECK(a[i].size() == T, "metrics: the accuracy matrix must be ", T, " x ", T, ", row ", i, " has ",
               a[i].size(), " entries");
    for (size_t j = 0; j < T; ++j) check_value(a[i][j], "a", i, long(j));
  }
  ARIA_CHECK(b.empty() || b.size() == T, "metrics: ", b.size(), " before-training accuracies for ", T, " tasks");
  for (size_t j = 0; j < b.size(); ++j) check_value(b[j], "b", j, -1);

  ClMetrics m;
  m.tasks = int(T);
  const std::vector<double>& last = a[T - 1];
  double s = 0;
  for (double v : last) s += v;
  m.acc = s / double(T);
  m.has_acc = true;
  if (T == 1) return m;

  double bwt = 0, forgetting = 0;
  for (size_t j = 0; j + 1 < T; ++j) {
    bwt += last[j] - a[j][j];
    double best = a[j][j];  // rows i >= j only: after task j was learned
    for (size_t i = j + 1; i + 1 < T; ++i) best = std::max(best, a[i][j]);
    forgetting += best - last[j];
  }
  m.bwt = bwt / double(T - 1);
  m.forgetting = forgetting / double(T - 1);
  m.has_bwt = m.has_forgetting = true;
  if (!b.empty()) {
    double fwt = 0;
    for (size_t j = 1; j < T; ++j) fwt += a[j - 1][j] - b[j];
    m.fwt = fwt / double(T - 1);
    m.has_fwt = true;
  }
  return m;
}

ClMetrics compute_joint_metrics(const std::vector<double>& final_acc) {
  ARIA_CHECK(!final_acc.empty(), "metrics: no final accuracies");
  ClMetrics m;
  m.tasks = int(final_acc.size());
  double s = 0;
  for (size_t j = 0; j < final_acc.size(); ++j) {
    check_value(final_acc[j], "final", j, -1);
    s += final_acc[j];
  }
  m.acc = s / double(final_acc.size());
  m.has_acc = true;
  return m;
}

Spread spread_of(const std::vector<double>& values) {
  Spread r;
  double s = 0;
  for (double v : values)
    if (std::isfinite(v)) s += v, ++r.count;
  if (r.count == 0) return r;
  r.mean = s / r.count;
  double q = 0;
  for (double v : values)
    if (std::isfinite(v)) q += (v - r.mean) * (v - r.mean);
  r.std = r.count > 1 ? std::sqrt(q / (r.count - 1)) : 0.0;
  return r;
}

Interval bootstrap_mean_interval(const std::vector<double>& values, int resamples, uint64_t seed, double level) {
  ARIA_CHECK(resamples >= 1, "bootstrap: resamples must be >= 1, got ", resamples);
  ARIA_CHECK(level > 0 && level < 1, "bootstrap: level must be in (0, 1), got ", level);
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  Interval r;
  if (v.size() < 2) return r;
  const size_t n = v.size();
  uint64_t state = seed;
  auto next = [&state]() {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  std::vector<double> means(static_cast<size_t>(resamples));
  for (double& m : means) {
    double s = 0;
    for (size_t k = 0; k < n; ++k) s += v[size_t((next() >> 11) * 0x1p-53 * double(n))];
    m = s / double(n);
  }
  std::sort(means.begin(), means.end());
  auto quantile = [&](double p) {
    const double pos = p * double(means.size() - 1);
    const size_t i = size_t(std::floor(pos));
    const double f = pos - double(i);
    return i + 1 < means.size() ? means[i] * (1 - f) + means[i + 1] * f : means[i];
  };
  r.lo = quantile((1 - level) / 2);
  r.hi = quantile(1 - (1 - level) / 2);
  r.has = true;
  return r;
}

PairedComparison paired_compare(const std::vector<double>& method, const std::vector<double>& baseline,
                                bool higher_is_better, int resamples, uint64_t seed) {
  ARIA_CHECK(method.size() == baseline.size(), "paired comparison: ", method.size(), " values against ",
             baseline.size());
  PairedComparison r;
  std::vector<double> diff;
  for (size_t k = 0; k < method.size(); ++k) {
    if (!std::isfinite(method[k]) || !std::isfinite(baseline[k])) continue;
    const double d = method[k] - baseline[k];
    diff.push_back(d);
    ++r.pairs;
    if (d == 0)
      ++r.ties;
    else if ((d > 0) == higher_is_better)
      ++r.wins;
    else
      ++r.losses;
  }
  if (diff.empty()) return r;
  r.mean_diff = spread_of(diff).mean;
  r.interval = bootstrap_mean_interval(diff, resamples, seed);
  return r;
}

}  // namespace aria
