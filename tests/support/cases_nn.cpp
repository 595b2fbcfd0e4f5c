// Op-case rows for the neural-network ops (core/ops_nn.cpp): small, awkward shapes.
#include "aria/core/ops.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using In = InputSpec;
using Ins = std::vector<Tensor>;

std::vector<OpCase> nn_cases() {
  std::vector<OpCase> c;
  c.push_back({"embedding V7 D5 ids[2,3]", {{{7, 5}}, ids_input({2, 3}, 7)},
               [](const Ins& x) { return ops::embedding(x[0], x[1]); }});
  c.push_back({"layernorm [3,7]", {{{3, 7}}, {{7}}, {{7}}},
               [](const Ins& x) { return ops::layernorm(x[0], x[1], x[2], 1e-5); }});
  c.push_back({"layernorm [2,3,5]", {{{2, 3, 5}}, {{5}}, {{5}}},
               [](const Ins& x) { return ops::layernorm(x[0], x[1], x[2], 1e-5); }});
  c.push_back({"layernorm transposed [5,4]^T", {{{5, 4}}, {{5}}, {{5}}},
               [](const Ins& x) { return ops::layernorm(x[0].transpose(0, 1), x[1], x[2], 1e-5); }});
  c.push_back({"softmax [4,9]", {{{4, 9}}}, [](const Ins& x) { return ops::softmax(x[0]); }});
  c.push_back({"softmax [2,3,4]", {{{2, 3, 4}}}, [](const Ins& x) { return ops::softmax(x[0]); }});
  c.push_back({"attention B2 T5 C12 H3", {{{2, 5, 36}}},
               [](const Ins& x) { return ops::causal_attention(x[0], 3); }});
  c.push_back({"attention B2 T1 C12 H3", {{{2, 1, 36}}},
               [](const Ins& x) { return ops::causal_attention(x[0], 3); }});
  c.push_back({"attention B1 T7 C8 H2", {{{1, 7, 24}}},
               [](const Ins& x) { return ops::causal_attention(x[0], 2); }});
  c.push_back({"cross_entropy [6,11] some ignored", {{{6, 11}}, ids_input({6}, 11, true)},
               [](const Ins& x) { return ops::cross_entropy(x[0], x[1]); }});
  c.push_back({"cross_entropy [2,3,7]", {{{2, 3, 7}}, ids_input({2, 3}, 7)},
               [](const Ins& x) { return ops::cross_entropy(x[0], x[1]); }});
  c.push_back({"cross_entropy_rows [2,3,7] some ignored", {{{2, 3, 7}}, ids_input({2, 3}, 7, true)},
               [](const Ins& x) { return ops::cross_entropy_rows(x[0], x[1]); }});
  return c;
}

ARIA_OP_CASES(nn_cases);

}  // namespace
}  // namespace aria::testing
