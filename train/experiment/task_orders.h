// The task orders of a run (issue 15: "at least 3 random permutations per run, seeded"). A method's
// ranking can depend on which task comes last, so each (method, seed) is trained once per order and
// the report gives every metric per order and pooled over (seed, order) runs (train/report/report.h).
//
// Order 0 is the configured order (the tasks as listed); orders 1..n-1 are uniform random
// permutations from a splitmix64 stream seeded by `seed` (the run's base train.seed), each one
// different from all earlier ones while T! allows. Every seed of a run uses the same orders, so
// seeds and orders are crossed and a paired comparison can match runs by (seed, order).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aria {

// n orders of T tasks (indices 0..T-1). Throws for n < 1 or T < 1.
std::vector<std::vector<int>> task_orders(int T, int n, uint64_t seed);

// "sentiment > spam > ..." for logs.
std::string order_text(const std::vector<int>& order, const std::vector<std::string>& names);

}  // namespace aria
