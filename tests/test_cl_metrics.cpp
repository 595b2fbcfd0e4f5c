// Continual-learning metrics (../shared/aria-spec.md "Metrics") on hand-made matrices; every
// expected value is worked out in the comment beside it.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "aria/core/error.h"
#include "aria/train/report/cl_metrics.h"

using namespace aria;

namespace {

std::string error_of(const AccMatrix& a, const std::vector<double>& b) {
  try {
    compute_cl_metrics(a, b);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("three tasks: ACC, BWT, forgetting with a max over earlier rows, FWT from b") {
  // Task 0 improves after task 1 (0.90 -> 0.95), so its best earlier accuracy is in row 1, not on
  // the diagonal.
  const AccMatrix a = {{0.90, 0.10, 0.30},   // after task 0
                       {0.95, 0.80, 0.40},   // after task 1
                       {0.60, 0.50, 0.90}};  // after task 2
  const std::vector<double> b = {0.50, 0.10, 0.30};
  ClMetrics m = compute_cl_metrics(a, b);
  CHECK(m.tasks == 3);
  CHECK(m.has_acc);
  CHECK(m.has_bwt);
  CHECK(m.has_forgetting);
  CHECK(m.has_fwt);
  // ACC = (0.60 + 0.50 + 0.90) / 3 = 2.0 / 3
  CHECK(m.acc == doctest::Approx(2.0 / 3).epsilon(1e-12));
  // BWT = ((a20 - a00) + (a21 - a11)) / 2 = ((0.60 - 0.90) + (0.50 - 0.80)) / 2 = -0.30
  CHECK(m.bwt == doctest::Approx(-0.30).epsilon(1e-12));
  // forgetting: j=0: max(a00, a10) = 0.95, 0.95 - 0.60 = 0.35; j=1: max(a01, a11) = 0.80, 0.80 - 0.50 = 0.30
  //   mean = 0.325 (BWT would give 0.30 for j=0: the max matters)
  CHECK(m.forgetting == doctest::Approx(0.325).epsilon(1e-12));
  // FWT = ((a01 - b1) + (a12 - b2)) / 2 = ((0.10 - 0.10) + (0.40 - 0.30)) / 2 = 0.05
  CHECK(m.fwt == doctest::Approx(0.05).epsilon(1e-12));
}

TEST_CASE("forgetting's max skips rows before the task was trained (i < j), where the old formula differs") {
  // a01 = 0.85 (task 1 before its own training, through its probe head) exceeds a11 = 0.80.
  const AccMatrix a = {{0.90, 0.85, 0.30}, {0.90, 0.80, 0.40}, {0.90, 0.70, 0.90}};
  ClMetrics m = compute_cl_metrics(a, {});
  // Updated spec (rows i >= j): j=0: max(a00, a10) - a20 = 0.90 - 0.90 = 0;
  //   j=1: max(a11) - a21 = 0.80 - 0.70 = 0.10; mean = 0.05 (= -BWT here).
  // The old formula (max over every i < T-1) took max(0.85, 0.80) = 0.85 for j=1 and gave 0.075.
  CHECK(m.forgetting == doctest::Approx(0.05).epsilon(1e-12));
  CHECK(m.forgetting != doctest::Approx(0.075).epsilon(1e-6));
  // BWT = ((0.90 - 0.90) + (0.70 - 0.80)) / 2 = -0.05
  CHECK(m.bwt == doctest::Approx(-0.05).epsilon(1e-12));
  // No b: FWT is not defined.
  CHECK_FALSE(m.has_fwt);
  CHECK(std::isnan(m.fwt));
}

TEST_CASE("two tasks: every mean runs over a single term") {
  const AccMatrix a = {{0.75, 0.40}, {0.55, 0.95}};
  ClMetrics m = compute_cl_metrics(a, {0.5, 0.25});
  CHECK(m.acc == doctest::Approx(0.75).epsilon(1e-12));         // (0.55 + 0.95) / 2
  CHECK(m.bwt == doctest::Approx(-0.20).epsilon(1e-12));        // 0.55 - 0.75
  CHECK(m.forgetting == doctest::Approx(0.20).epsilon(1e-12));  // max(0.75) - 0.55
  CHECK(m.fwt == doctest::Approx(0.15).epsilon(1e-12));         // a01 - b1 = 0.40 - 0.25
}

TEST_CASE("no forgetting at all gives BWT 0 and forgetting 0, positive backward transfer is negative forgetting") {
  ClMetrics same = compute_cl_metrics({{0.8, 0.5}, {0.8, 0.9}}, {0.5, 0.5});
  CHECK(same.bwt == doctest::Approx(0.0));
  CHECK(same.forgetting == doctest::Approx(0.0));
  CHECK(same.fwt == doctest::Approx(0.0));  // a01 - b1 = 0.5 - 0.5
  ClMetrics better = compute_cl_metrics({{0.6, 0.5}, {0.7, 0.9}}, {0.5, 0.5});
  CHECK(better.bwt == doctest::Approx(0.1));          // 0.7 - 0.6
  CHECK(better.forgetting == doctest::Approx(-0.1));  // max(0.6) - 0.7
}

TEST_CASE("one task: only ACC is defined") {
  ClMetrics m = compute_cl_metrics({{0.7}}, {0.5});
  CHECK(m.acc == doctest::Approx(0.7));
  CHECK_FALSE(m.has_bwt);
  CHECK_FALSE(m.has_forgetting);
  CHECK_FALSE(m.has_fwt);
  CHECK(std::isnan(m.bwt));
  CHECK(std::isnan(m.forgetting));
  CHECK(std::isnan(m.fwt));
}

TEST_CASE("joint training: ACC from the final accuracies, nothing else") {
  ClMetrics m = compute_joint_metrics({0.9, 0.6, 0.75});
  CHECK(m.acc == doctest::Approx(0.75));  // (0.9 + 0.6 + 0.75) / 3
  CHECK(m.tasks == 3);
  CHECK_FALSE(m.has_bwt);
  CHECK_FALSE(m.has_forgetting);
  CHECK_FALSE(m.has_fwt);
  CHECK_THROWS_AS(compute_joint_metrics({}), Error);
  CHECK_THROWS_AS(compute_joint_metrics({0.5, 1.5}), Error);
}

TEST_CASE("malformed matrices are rejected with the offending entry named") {
  CHECK(error_of({}, {}).find("empty") != std::string::npos);
  CHECK(error_of({{0.5, 0.5}}, {}).find("1 x 1") != std::string::npos);
  CHECK(error_of({{0.5, 0.5}, {0.5}}, {}).find("row 1") != std::string::npos);
  CHECK(error_of({{0.5, 1.2}, {0.5, 0.5}}, {}).find("a[0][1] = 1.2") != std::string::npos);
  CHECK(error_of({{0.5, -0.1}, {0.5, 0.5}}, {}).find("a[0][1]") != std::string::npos);
  CHECK(error_of({{0.5, 0.5}, {0.5, NAN}}, {}).find("a[1][1]") != std::string::npos);
  CHECK(error_of({{0.5, 0.5}, {0.5, 0.5}}, {0.5}).find("1 before-training accuracies for 2 tasks") !=
        std::string::npos);
  CHECK(error_of({{0.5, 0.5}, {0.5, 0.5}}, {0.5, 2.0}).find("b[1] = 2") != std::string::npos);
}

TEST_CASE("spread_of: mean and sample standard deviation of the defined values") {
  Spread s = spread_of({0.1, 0.2, 0.3});
  CHECK(s.count == 3);
  CHECK(s.mean == doctest::Approx(0.2));
  CHECK(s.std == doctest::Approx(0.1));  // sqrt((0.01 + 0 + 0.01) / 2)
  Spread one = spread_of({0.4});
  CHECK(one.mean == doctest::Approx(0.4));
  CHECK(one.std == 0.0);
  Spread none = spread_of({NAN, NAN});
  CHECK(none.count == 0);
  CHECK(std::isnan(none.mean));
  CHECK(std::isnan(none.std));
}

TEST_CASE("bootstrap interval of the mean: seeded, inside the range, undefined below 2 values") {
  const std::vector<double> v = {0.60, 0.70, 0.80, 0.65, 0.75};
  const Interval a = bootstrap_mean_interval(v);
  const Interval b = bootstrap_mean_interval(v);
  REQUIRE(a.has);
  CHECK(a.lo == b.lo);  // same seed, same interval
  CHECK(a.hi == b.hi);
  CHECK(a.lo >= 0.60);  // a mean of resampled values never leaves their range
  CHECK(a.hi <= 0.80);
  CHECK(a.lo < 0.70);   // and covers the mean 0.70
  CHECK(a.hi > 0.70);
  const Interval other = bootstrap_mean_interval(v, kBootstrapResamples, kBootstrapSeed + 1);
  CHECK(other.has);
  // Constant values: a zero-width interval at the value.
  const Interval c = bootstrap_mean_interval({0.5, 0.5, 0.5});
  CHECK(c.lo == 0.5);
  CHECK(c.hi == 0.5);
  CHECK_FALSE(bootstrap_mean_interval({0.5}).has);
  CHECK_FALSE(bootstrap_mean_interval({0.5, NAN}).has);  // NaN is dropped: one value left
  // Two values: resample means are 0.2 (1/4), 0.3 (1/2), 0.4 (1/4); the 2.5 % and 97.5 % quantiles
  // are 0.2 and 0.4.
  const Interval two = bootstrap_mean_interval({0.2, 0.4});
  CHECK(two.lo == doctest::Approx(0.2));
  CHECK(two.hi == doctest::Approx(0.4));
  CHECK_THROWS_AS(bootstrap_mean_interval(v, 0), Error);
}

TEST_CASE("paired comparison against a baseline: mean difference, interval, wins, ties and losses") {
  // Differences: +0.10, -0.05, 0, +0.20 -> mean 0.0625; 2 wins, 1 tie, 1 loss when higher is better.
  const PairedComparison p = paired_compare({0.80, 0.60, 0.70, 0.90}, {0.70, 0.65, 0.70, 0.70}, true);
  CHECK(p.pairs == 4);
  CHECK(p.wins == 2);
  CHECK(p.ties == 1);
  CHECK(p.losses == 1);
  CHECK(p.mean_diff == doctest::Approx(0.0625));
  REQUIRE(p.interval.has);
  CHECK(p.interval.lo >= -0.05);
  CHECK(p.interval.hi <= 0.20);
  // Lower is better (forgetting): the same differences give 1 win, 2 losses.
  const PairedComparison f = paired_compare({0.80, 0.60, 0.70, 0.90}, {0.70, 0.65, 0.70, 0.70}, false);
  CHECK(f.wins == 1);
  CHECK(f.losses == 2);
  // Undefined pairs are skipped; a single pair has no interval.
  const PairedComparison one = paired_compare({0.5, NAN}, {0.4, 0.3}, true);
  CHECK(one.pairs == 1);
  CHECK(one.mean_diff == doctest::Approx(0.1));
  CHECK_FALSE(one.interval.has);
  CHECK_THROWS_AS(paired_compare({0.5}, {0.4, 0.3}, true), Error);
}
