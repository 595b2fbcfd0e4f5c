// Token sampling (model/sampling.h).
#include "aria/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace aria {

int32_t sample_token(std::vector<float> logits, double temperature, int64_t top_k, Rng& rng) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  if (temperature <= 0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  size_t k = top_k > 0 ? std::min(size_t(top_k), logits.size()) : logits.size();
  std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                    [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  double mx = logits[size_t(order[0])], total = 0;
  std::vector<double> p(k);
  for (size_t i = 0; i < k; ++i) total += p[i] = std::exp((logits[size_t(order[i])] - mx) / temperature);
  double r = rng.uniform() * total;
  for (size_t i = 0; i < k; ++i)
    if ((r -= p[i]) <= 0) return order[i];
  return order[k - 1];
}

}  // namespace aria
