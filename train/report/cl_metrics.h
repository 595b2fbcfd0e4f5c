// Continual-learning metrics from the accuracy matrix, exactly as ../shared/aria-spec.md "Metrics":
//   a[i][j]: accuracy on task j after training task i (T x T);  b[j]: task j before any training.
//   ACC        = mean_j a[T-1][j]
//   BWT        = mean_{j<T-1} (a[T-1][j] - a[j][j])
//   forgetting = mean_{j<T-1} (max_{j<=i<T-1} a[i][j] - a[T-1][j])
//   FWT        = mean_{j>0} (a[j-1][j] - b[j])
// With T == 1 the means over j < T-1 and j > 0 are empty: BWT, forgetting and FWT are not defined
// (has_* false, value NaN; report.json writes them as null). FWT is also undefined without b.
// The forgetting max runs only over the rows after task j was learned, j <= i < T-1 (as Chaudhry et
// al. 2018, Avalanche and Mammoth define it): a[i][j] with i < j is the accuracy of an untrained task
// (through its probe head) and is never "forgotten". Before the spec changed, the max ran over every
// row i < T-1, so a method whose parameters cannot change could report forgetting > 0 with BWT = 0.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

namespace aria {

struct ClMetrics {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  int tasks = 0;  // T
  double acc = kNaN, bwt = kNaN, forgetting = kNaN, fwt = kNaN;
  bool has_acc = false, has_bwt = false, has_forgetting = false, has_fwt = false;
};

using AccMatrix = std::vector<std::vector<double>>;  // a[i][j], row i = after training task i

// Throws aria::Error unless a is T x T (T >= 1) and b is empty or of length T, with every value
// finite and in [0, 1].
ClMetrics compute_cl_metrics(const AccMatrix& a, const std::vector<double>& b);

// Joint (multitask) training has no sequence: only the final accuracies exist. ACC is their mean;
// BWT, forgetting and FWT are not defined.
ClMetrics compute_joint_metrics(const std::vector<double>& final_acc);

// Mean and sample standard deviation (n - 1; 0 for a single value) of the defined values; NaN when
// none is defined. `count` tells how many values were defined.
struct Spread {
  double mean = ClMetrics::kNaN, std = ClMetrics::kNaN;
  int count = 0;
};
Spread spread_of(const std::vector<double>& values);

// Percentile bootstrap: the `level` interval of the mean of the defined (finite) values, from
// `resamples` resamples with replacement drawn by a splitmix64 stream seeded with `seed` (so the
// same values give the same interval on every platform). Quantiles interpolate linearly between
// the sorted resample means. Not defined (has false) with fewer than 2 defined values. With few
// values (3 seeds) the interval is crude: it cannot be wider than the values' range.
constexpr int kBootstrapResamples = 10000;
constexpr uint64_t kBootstrapSeed = 20181;
struct Interval {
  double lo = ClMetrics::kNaN, hi = ClMetrics::kNaN;
  bool has = false;
};
Interval bootstrap_mean_interval(const std::vector<double>& values, int resamples = kBootstrapResamples,
                                 uint64_t seed = kBootstrapSeed, double level = 0.95);

// A method against a baseline, paired (method[k] and baseline[k] come from the same seed): the mean
// of the differences method - baseline, its bootstrap interval (bootstrap_mean_interval), and in how
// many pairs the method wins (difference > 0 when higher_is_better, < 0 otherwise), ties or loses.
// Pairs where either value is undefined are skipped.
struct PairedComparison {
  int pairs = 0, wins = 0, ties = 0, losses = 0;
  double mean_diff = ClMetrics::kNaN;
  Interval interval;
};
PairedComparison paired_compare(const std::vector<double>& method, const std::vector<double>& baseline,
                                bool higher_is_better, int resamples = kBootstrapResamples,
                                uint64_t seed = kBootstrapSeed);

}  // namespace aria
