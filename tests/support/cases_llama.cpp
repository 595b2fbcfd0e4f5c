// Op-case rows for the Llama-family ops (core/ops_llama.cpp): RMSNorm (plain and fused with the
// residual add), SwiGLU, rotary embeddings. Awkward, small shapes; gradients checked in float64, CUDA
// vs CPU in float32 and bfloat16 like every other row (tests/test_gradcheck.cpp, test_cuda_vs_cpu.cpp).
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using Ins = std::vector<Tensor>;

std::vector<OpCase> llama_cases() {
  std::vector<OpCase> c;
  c.push_back({"rmsnorm [3,7]", {{{3, 7}}, {{7}}}, [](const Ins& x) { return ops::rmsnorm(x[0], x[1], 1e-5); }});
  c.push_back({"rmsnorm [2,3,16]", {{{2, 3, 16}}, {{16}}},
               [](const Ins& x) { return ops::rmsnorm(x[0], x[1], 1e-6); }});
  c.push_back({"rmsnorm transposed [5,4]^T", {{{5, 4}}, {{5}}},
               [](const Ins& x) { return ops::rmsnorm(x[0].transpose(0, 1), x[1], 1e-5); }});
  c.push_back({"add_rmsnorm [2,3,7] sum and y", {{{2, 3, 7}}, {{2, 3, 7}}, {{7}}},
               [](const Ins& x) {
                 auto [s, y] = ops::add_rmsnorm(x[0], x[1], x[2], 1e-5);
                 return ops::concat({s, y}, -1);
               }});
  c.push_back({"add_rmsnorm [4,24] y only", {{{4, 24}}, {{4, 24}}, {{24}}},
               [](const Ins& x) { return ops::add_rmsnorm(x[0], x[1], x[2], 1e-5).second; }});
  c.push_back({"swiglu [2,3,7]", {{{2, 3, 7}}, {{2, 3, 7}}},
               [](const Ins& x) { return ops::swiglu(x[0], x[1]); }});
  c.push_back({"swiglu [5,16] gate only", {{{5, 16}}, {{5, 16}, InputSpec::Normal, 0, false, false}},
               [](const Ins& x) { return ops::swiglu(x[0], x[1]); }});
  c.push_back({"swiglu_packed [3,2,10]", {{{3, 2, 10}}}, [](const Ins& x) { return ops::swiglu_packed(x[0]); }});
  c.push_back({"swiglu_packed [4,32]", {{{4, 32}}}, [](const Ins& x) { return ops::swiglu_packed(x[0]); }});
  return c;
}

ARIA_OP_CASES(llama_cases);

}  // namespace
}  // namespace aria::testing
