#include "aria/core/rng.h"

#include <cmath>
#include <vector>

namespace aria {

// splitmix64 of (seed, counter): statistically solid, trivially seekable and serialisable.
uint64_t Rng::next_u64() {
  uint64_t z = state_.seed * 0x9E3779B97F4A7C15ull + (++state_.counter) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

double Rng::normal() {
  double u1 = uniform();
  double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

uint64_t Rng::below(uint64_t n) {
  ARIA_CHECK(n > 0, "Rng::below(0)");
  return next_u64() % n;  // bias is < n / 2^64, irrelevant at our sizes
}

void Rng::fill_normal(const Tensor& t, double mean, double std) {
  std::vector<double> v(size_t(t.numel()));
  for (double& x : v) x = mean + std * normal();
  t.copy_from(Tensor::from_vector(v, t.shape(), DType::F64));  // the handle is const, the data is not
}

void Rng::fill_uniform(const Tensor& t, double lo, double hi) {
  std::vector<double> v(size_t(t.numel()));
  for (double& x : v) x = lo + (hi - lo) * uniform();
  t.copy_from(Tensor::from_vector(v, t.shape(), DType::F64));
}

}  // namespace aria
