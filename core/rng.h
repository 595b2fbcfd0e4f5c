// Counter-based random numbers: the state is (seed, counter), two integers that a checkpoint
// stores, so a resumed run draws exactly the numbers the uninterrupted one would have drawn.
#pragma once
#include <cstdint>

#include "aria/core/tensor.h"

namespace aria {

struct RngState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { state_.seed = seed; }
  uint64_t next_u64();
  double uniform();                    // [0, 1)
  double normal();                     // standard normal (Box-Muller, one value per call)
  uint64_t below(uint64_t n);          // uniform integer in [0, n)
  // Fills t (any float dtype, any device) with normal(mean, std) or uniform[lo, hi) values drawn
  // on the host in element order, so CPU and GPU tensors built from one seed are identical.
  void fill_normal(const Tensor& t, double mean, double std);
  void fill_uniform(const Tensor& t, double lo, double hi);
  RngState state() const { return state_; }
  void set_state(const RngState& s) { state_ = s; }

 private:
  RngState state_;
};

}  // namespace aria
