// Op-case rows for ARIA's gated-MLP mix (core/ops_gated.cpp): gate_mix with a gate per row, at
// awkward small shapes, gradients to all three inputs or to some of them only (the backward kernel
// then skips outputs and, without pi's gradient, does not read slow/fast). Gradients are checked in
// float64 and CUDA vs CPU (float32 and bfloat16) like every other row.
#include "core/ops.h"
#include "tests/support/op_cases.h"

namespace aria::testing {
namespace {

using Ins = std::vector<Tensor>;

// A float input that is not differentiated.
InputSpec constant(Shape s) {
  InputSpec in;
  in.shape = std::move(s);
  in.grad = false;
  return in;
}

std::vector<OpCase> gated_cases() {
  auto mix = [](const Ins& x) { return ops::gate_mix(x[0], x[1], x[2]); };
  std::vector<OpCase> c;
  c.push_back({"gate_mix [2,3,5] pi [2,3,1]", {{{2, 3, 5}}, {{2, 3, 5}}, {{2, 3, 1}}}, mix});
  c.push_back({"gate_mix [1,7] pi [1,1]", {{{1, 7}}, {{1, 7}}, {{1, 1}}}, mix});
  c.push_back({"gate_mix [3,40] pi [3,1] (several packs per lane)", {{{3, 40}}, {{3, 40}}, {{3, 1}}}, mix});
  c.push_back({"gate_mix [4,8] pi constant", {{{4, 8}}, {{4, 8}}, constant({4, 1})}, mix});
  c.push_back({"gate_mix [2,9] only pi differentiated", {constant({2, 9}), constant({2, 9}), {{2, 1}}}, mix});
  // The gate computed from the mixed inputs, as in the model (pi = sigmoid of a row sum of fast).
  c.push_back({"gate_mix [5,6] pi = sigmoid(sum(fast))", {{{5, 6}}, {{5, 6}}},
               [](const Ins& x) { return ops::gate_mix(x[0], x[1], ops::sigmoid(ops::sum_dim(x[1], -1, true))); }});
  return c;
}

ARIA_OP_CASES(gated_cases);

}  // namespace
}  // namespace aria::testing
