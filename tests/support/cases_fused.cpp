// Op-case rows for the fused ops (core/ops_fused.cpp): GPT-2's MLP with GEMM epilogues, residual add +
// layernorm (both outputs used, or only the normalised one), and the fused classifier. Awkward,
// small shapes; gradients checked in float64 and CUDA vs CPU like every other row.
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
  return c;
}

ARIA_OP_CASES(fused_cases);

}  // namespace
}  // namespace aria::testing
