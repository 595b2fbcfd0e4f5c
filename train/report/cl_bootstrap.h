// Intervals over test examples AND runs (issue 15's statistics), from the per-example correctness
// every run records (MethodRun::correct, train/report/report.h).
//
// Two sources of uncertainty are resampled together, the way a reader would repeat the experiment:
//  - the runs (one per (seed, task order)): drawn with replacement, as bootstrap_mean_interval does;
//  - the test examples: every run was evaluated on the SAME test split, so one resample draws one set
//    of example indices per task (with replacement, the split's size) and applies it to every run and
//    every row of the matrix. Drawing per run would treat the shared test set as independent samples
//    and understate its share of the uncertainty.
// From the drawn examples each drawn run gets its accuracy matrix a[i][j], b[j] (the fraction correct
// over the drawn indices), then ACC, BWT, forgetting, FWT (train/report/cl_metrics.h); the statistic is
// their mean over the drawn runs. Percentile interval over the resamples (linear interpolation), from
// a splitmix64 stream seeded with kBootstrapSeed, so a report is reproducible.
// With one run only the examples vary: an interval exists from a single seed.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "aria/train/report/cl_metrics.h"

namespace aria {

struct MethodRun;  // train/report/report.h

constexpr int kExampleBootstrapResamples = 2000;

// Metric order: acc, bwt, forgetting, fwt. False when a run has no per-example record (or the
// records disagree on a task's size): the caller falls back to bootstrap_mean_interval over runs.
bool has_example_records(const std::vector<const MethodRun*>& runs);

// The intervals of the four metrics; a metric undefined for these runs (joint: bwt...) has has=false.
std::array<Interval, 4> bootstrap_runs_and_examples(const std::vector<const MethodRun*>& runs,
                                                    int resamples = kExampleBootstrapResamples,
                                                    uint64_t seed = kBootstrapSeed, double level = 0.95);

// Paired: method[k] and baseline[k] ran with the same seed and task order (so on the same test
// examples in the same positions); the interval of the mean difference of metric `metric`
// (0..3) when runs and test examples are resampled together (the same draw for both sides).
Interval paired_bootstrap_runs_and_examples(const std::vector<const MethodRun*>& method,
                                            const std::vector<const MethodRun*>& baseline, int metric,
                                            int resamples = kExampleBootstrapResamples,
                                            uint64_t seed = kBootstrapSeed, double level = 0.95);

}  // namespace aria
