// Op-case rows for the fused ops (core/ops_fused.cpp): GPT-2's MLP with GEMM epilogues, residual add +
// layernorm (both outputs used, or only the normalised one), and the fused classifier. Awkward,
// small shapes; gradients checked in float64 and CUDA vs CPU like every other row, and each fused op
// against the plain composition it replaces (the rows' references) in float64.
#include "aria/core/ops.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using Ins = std::vector<Tensor>;

std::vector<OpCase> fused_cases() {
  std::vector<OpCase> c;
  c.push_back({"gelu_mlp [2,3,5] -> 7 -> 4", {{{2, 3, 5}}, {{5, 7}}, {{7}}, {{7, 4}}, {{4}}},
               [](const Ins& x) { return ops::gelu_mlp(x[0], x[1], x[2], x[3], x[4]); }});
  c.push_back({"gelu_mlp [1,9] -> 16 -> 9", {{{1, 9}}, {{9, 16}}, {{16}}, {{16, 9}}, {{9}}},
               [](const Ins& x) { return ops::gelu_mlp(x[0], x[1], x[2], x[3], x[4]); }});
  c.push_back({"add_layernorm [2,3,7] sum and y", {{{2, 3, 7}}, {{2, 3, 7}}, {{7}}, {{7}}},
               [](const Ins& x) {
                 auto [s, y] = ops::add_layernorm(x[0], x[1], x[2], x[3], 1e-5);
                 return ops::concat({s, y}, -1);
               }});
  c.push_back({"add_layernorm [4,5] y only", {{{4, 5}}, {{4, 5}}, {{5}}, {{5}}},
               [](const Ins& x) { return ops::add_layernorm(x[0], x[1], x[2], x[3], 1e-5).second; }});
  c.push_back({"lm_head_cross_entropy [2,3,5] V11 some ignored", {{{2, 3, 5}}, {{11, 5}}, ids_input({2, 3}, 11, true)},
               [](const Ins& x) { return ops::lm_head_cross_entropy(x[0], x[1], x[2]); }});
  c.push_back({"lm_head_cross_entropy [1,4] V3", {{{1, 4}}, {{3, 4}}, ids_input({1}, 3)},
               [](const Ins& x) { return ops::lm_head_cross_entropy(x[0], x[1], x[2]); }});
  c.push_back({"gelu_mlp [3,4,6] -> 10 -> 5", {{{3, 4, 6}}, {{6, 10}}, {{10}}, {{10, 5}}, {{5}}},
               [](const Ins& x) { return ops::gelu_mlp(x[0], x[1], x[2], x[3], x[4]); }});
  c.push_back({"add_layernorm [5,9] 0.3 sum and y", {{{5, 9}}, {{5, 9}}, {{9}}, {{9}}}, [](const Ins& x) {
                 auto [s, y] = ops::add_layernorm(x[0], x[1], x[2], x[3], 1e-5);
                 return ops::concat({ops::scale(s, 0.3), y}, -1);
               }});
  // References: the plain compositions the fused ops replace (outputs and gradients equal in float64).
  for (OpCase& k : c) {
    const std::string& n = k.name;
    if (n.rfind("gelu_mlp ", 0) == 0) {
      k.reference = [](const Ins& x) { return ops::linear(ops::gelu(ops::linear(x[0], x[1], x[2])), x[3], x[4]); };
    } else if (n.rfind("add_layernorm ", 0) == 0) {
      const double s_scale = n.find(" 0.3 ") != std::string::npos ? 0.3 : 1.0;
      const bool y_only = n.find("y only") != std::string::npos;
      k.reference = [s_scale, y_only](const Ins& x) {
        Tensor s = ops::add(x[0], x[1]), y = ops::layernorm(s, x[2], x[3], 1e-5);
        return y_only ? y : ops::concat({s_scale == 1.0 ? s : ops::scale(s, s_scale), y}, -1);
      };
    } else if (n.rfind("lm_head_cross_entropy ", 0) == 0) {
      k.reference = [](const Ins& x) { return ops::cross_entropy(ops::matmul(x[0], x[1], false, true), x[2]); };
    }
  }
  return c;
}

ARIA_OP_CASES(fused_cases);

}  // namespace
}  // namespace aria::testing
