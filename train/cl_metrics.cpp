#include "train/cl_metrics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

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

}  // namespace aria
