// Op-case rows for ARIA's gated MLP (core/ops_gated.cpp): gate_mix with a gate per row, at awkward
// small shapes, gradients to all three inputs or to some of them only (the backward kernel then
// skips outputs and, without pi's gradient, does not read slow/fast); the fused gated_mlp op with
// both outputs or out only, and with some inputs constant. Gradients are checked in float64 and CUDA
// vs CPU (float32 and bfloat16) like every other row.
#include "aria/core/ops.h"
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

// ops::gated_mlp's inputs for x `xs` [..., C]: x, then the fast and the slow MLP (C -> H -> C: w1,
// b1, w2, b2) and the gate (C -> G -> 1: w1, b1, w2, b2), all differentiated.
std::vector<InputSpec> gated_mlp_inputs(const Shape& xs, int64_t H, int64_t G) {
  const int64_t C = xs.back();
  std::vector<InputSpec> in = {{xs}};
  for (int pathway = 0; pathway < 2; ++pathway)
    for (Shape s : {Shape{C, H}, Shape{H}, Shape{H, C}, Shape{C}}) in.push_back({s});
  for (Shape s : {Shape{C, G}, Shape{G}, Shape{G, 1}, Shape{1}}) in.push_back({s});
  return in;
}

ops::GatedMlpWeights gated_weights(const Ins& x) {
  return {{x[1], x[2], x[3], x[4]}, {x[5], x[6], x[7], x[8]}, x[9], x[10], x[11], x[12]};
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
  // The whole gated MLP as one op: both outputs (out and pi concatenated), out only, and some inputs
  // not differentiated.
  c.push_back({"gated_mlp [2,3,5] H7 G4 out and pi", gated_mlp_inputs({2, 3, 5}, 7, 4), [](const Ins& x) {
                 auto [out, pi] = ops::gated_mlp(x[0], gated_weights(x));
                 return ops::concat({out, pi}, -1);
               }});
  c.push_back({"gated_mlp [1,9] H16 G3 out only", gated_mlp_inputs({1, 9}, 16, 3),
               [](const Ins& x) { return ops::gated_mlp(x[0], gated_weights(x)).first; }});
  auto frozen = gated_mlp_inputs({3, 4}, 6, 5);
  for (size_t k : {size_t(0), size_t(5), size_t(6), size_t(7), size_t(8), size_t(12)}) frozen[k].grad = false;
  c.push_back({"gated_mlp [3,4] H6 G5 x, slow pathway, gate_b2 constant", frozen, [](const Ins& x) {
                 auto [out, pi] = ops::gated_mlp(x[0], gated_weights(x));
                 return ops::concat({out, pi}, -1);
               }});
  // The gate's gradients pass through more bf16 stores than a plain op's (the pathways' outputs,
  // dpi = sum_c dout (fast - slow), which cancels when the pathways are close, dh, then the GEMM):
  // at these tiny shapes they land near the default tolerance (gate_w1 once at 3.07e-2 on an H100).
  // tests/test_gated_fused.cpp checks at a larger shape that the fused op is no less accurate than
  // the unfused ops.
  for (OpCase& k : c)
    if (k.name.rfind("gated_mlp", 0) == 0) k.bf16_tol = 6e-2;
  // gate_mix's definition, slow + pi (fast - slow), as the reference of its rows.
  auto plain_mix = [](const Tensor& slow, const Tensor& fast, const Tensor& pi) {
    return ops::add(slow, ops::mul(pi, ops::sub(fast, slow)));
  };
  // Every subset of differentiated inputs (none included) at awkward shapes, one of them too large for
  // finite differences: the backward rows then skip outputs, and without pi's gradient do not read
  // slow/fast.
  for (const Shape& s : {Shape{2, 3, 5}, Shape{1, 7}, Shape{129, 771}, Shape{3, 1}, Shape{4, 2, 3, 16}, Shape{6}}) {
    Shape ps = s;
    ps.back() = 1;
    for (int mask = 0; mask < 8; ++mask) {
      std::vector<InputSpec> in = {constant(s), constant(s), constant(ps)};
      std::string which;
      for (int k = 0; k < 3; ++k) {
        in[size_t(k)].grad = (mask >> k) & 1;
        if (in[size_t(k)].grad) which += std::string(" ") + (k == 0 ? "slow" : k == 1 ? "fast" : "pi");
      }
      c.push_back({"gate_mix " + shape_str(s) + " differentiating" + (which.empty() ? " nothing" : which), in, mix});
      c.back().finite_differences = shape_numel(s) < 1000;
    }
  }
  // The model's width in bfloat16, held to 1e-2 (a single op: one bf16 rounding per stored value).
  c.push_back({"gate_mix [4,33,768] pi [4,33,1]", {{{4, 33, 768}}, {{4, 33, 768}}, {{4, 33, 1}}}, mix});
  c.back().finite_differences = false;
  c.back().bf16_tol = 1e-2;
  for (OpCase& k : c) {
    if (k.name.rfind("gate_mix ", 0) != 0) continue;
    if (k.name.find("sigmoid") != std::string::npos)
      k.reference = [plain_mix](const Ins& x) {
        return plain_mix(x[0], x[1], ops::sigmoid(ops::sum_dim(x[1], -1, true)));
      };
    else
      k.reference = [plain_mix](const Ins& x) { return plain_mix(x[0], x[1], x[2]); };
  }
  return c;
}

ARIA_OP_CASES(gated_cases);

}  // namespace
}  // namespace aria::testing
