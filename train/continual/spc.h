// Slow-Pathway Consolidation (../shared/aria-spec.md, "Slow-Pathway Consolidation (SPC)"):
//   L_SPC = lambda/2 * sum_t sum_i F_t,i (theta_i - theta*_t,i)^2
// kept as two buffers per consolidated parameter and one scalar, so that the cost of the penalty
// and of its gradient does not grow with the number of tasks:
//   A = sum_t F_t,   B = sum_t F_t theta*_t,   C = sum_t sum_i F_t,i theta*_t,i^2
//   L_SPC = lambda/2 * (sum_i (A theta^2 - 2 B theta) + C),   dL/dtheta = lambda (A theta - B)
// With online decay gamma (spc_gamma, 1 = none) each consolidation first scales A, B and C by gamma.
// The same state serves the EWC baseline (a different scope, train/continual/fisher.h).
//
// Buffers live on the parameters' device in their dtype, float32 for bfloat16 parameters
// (spc_buffer_dtype; moved and converted there on first use after load_state). For bfloat16
// parameters the Fisher must be float32, the anchors are the bfloat16 values (exact in float32), the
// penalty gradient lambda (A p - B) is computed in float32 and rounded once into the bfloat16 grad,
// and penalty() sums the float32 products in float64 on the device. penalty() sums in double on
// the CPU; elsewhere it uses the device's reductions. Note
// that the expanded form cancels near the anchors: in float32 its absolute error is about 1e-7 of
// lambda/2 (sum A theta^2 + C). The value is for reporting; training uses add_penalty_grad().
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "aria/model/continual_model.h"
#include "aria/train/continual/fisher.h"

namespace aria {

// The dtype of the buffers (and of the Fisher consolidate() takes) for a parameter of dtype `param`:
// float32 for bfloat16, else the parameter's own.
DType spc_buffer_dtype(DType param);

class SpcState {
 public:
  // A = gamma A + F_t, B = gamma B + F_t theta*_t, C = gamma C + sum F_t theta*_t^2, with theta*_t =
  // the model's current parameters. Parameters consolidated before but absent from F are decayed.
  void consolidate(const FisherResult& f, const ContinualModel& m, double gamma);
  // lambda/2 * sum_i (A theta^2 - 2 B theta + C); 0 before any consolidation.
  double penalty(const ContinualModel& m, double lambda) const;
  // p.grad += lambda (A p - B) for every consolidated parameter that requires grad (grad allocated
  // if absent). Not recorded on the tape.
  void add_penalty_grad(const ContinualModel& m, double lambda) const;
  int tasks_consolidated() const { return tasks_; }
  // "spc.A.<param>", "spc.B.<param>" (the live buffers: treat them as read-only) and "spc.C", a
  // float64 [1] tensor on the CPU. Sorted by parameter name.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Replaces the state. Keys not starting with "spc." are ignored (a whole checkpoint map may be
  // passed); unknown "spc." keys, an A without its B (or the reverse), shape or dtype mismatches and
  // a missing "spc.C" when tasks > 0 are errors.
  void load_state(const std::map<std::string, Tensor>& tensors, int tasks);

 private:
  struct Buffers {
    Tensor A, B;
  };
  Buffers& on_device(const std::string& name, const Tensor& p) const;
  mutable std::map<std::string, Buffers> buf_;  // by parameter name (a fixed summation order)
  double C_ = 0;
  int tasks_ = 0;
};

}  // namespace aria
