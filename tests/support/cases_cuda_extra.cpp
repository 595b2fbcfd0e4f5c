// Op-case rows at sizes that exercise the CUDA kernels' tiling and block paths (several 64-row
// attention tiles, softmax rows past the warp-per-row limit, long cross-entropy rows, embedding
// wider than one block, both sum_to layouts), kept small enough for the float64 finite differences
// of tests/test_gradcheck.cpp. Larger shapes (V = 50257, GPT-2 widths) are in tests/test_cuda_kernels.cpp.
#include "aria/core/ops.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using In = InputSpec;
using Ins = std::vector<Tensor>;

std::vector<OpCase> cuda_extra_cases() {
  std::vector<OpCase> c;
  c.push_back({"attention B1 T65 C4 H2 (two query/key tiles)", {{{1, 65, 12}}},
               [](const Ins& x) { return ops::causal_attention(x[0], 2); }});
  c.push_back({"attention B1 T129 C2 H1 (three tiles)", {{{1, 129, 6}}},
               [](const Ins& x) { return ops::causal_attention(x[0], 1); }});
  c.push_back({"layernorm [37,40]", {{{37, 40}}, {{40}}, {{40}}},
               [](const Ins& x) { return ops::layernorm(x[0], x[1], x[2], 1e-5); }});
  c.push_back({"softmax [2,1030] (block per row)", {{{2, 1030}}}, [](const Ins& x) { return ops::softmax(x[0]); }});
  c.push_back({"cross_entropy [3,1100] some ignored", {{{3, 1100}}, ids_input({3}, 1100, true)},
               [](const Ins& x) { return ops::cross_entropy(x[0], x[1]); }});
  c.push_back({"embedding V11 D260 ids[2,33] (repeated ids)", {{{11, 260}}, ids_input({2, 33}, 11)},
               [](const Ins& x) { return ops::embedding(x[0], x[1]); }});
  c.push_back({"add [37,45] + [45] + [37,1] (both sum_to layouts)", {{{37, 45}}, {{45}}, {{37, 1}}},
               [](const Ins& x) { return ops::add(ops::add(x[0], x[1]), x[2]); }});
  c.push_back({"matmul [2,17,33]^T x [17,65] (shared b, transposed a)", {{{2, 17, 33}}, {{17, 65}}},
               [](const Ins& x) { return ops::matmul(x[0], x[1], true, false); }});
  return c;
}

ARIA_OP_CASES(cuda_extra_cases);

}  // namespace
}  // namespace aria::testing
