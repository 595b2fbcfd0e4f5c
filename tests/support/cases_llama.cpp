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

// rope on x with tables for `positions` on x's device, inv_freq of a llama3-scaled head (float64
// tables for float64 x, float32 otherwise).
Tensor rope_case(const Tensor& x, const std::vector<int32_t>& positions, int n_rot, int head_dim) {
  const Device dev = x.device();
  ops::RopeScaling sc;
  sc.type = "llama3";
  sc.factor = 8;
  sc.original_max_position_embeddings = 64;  // small, so that every regime occurs for short heads
  std::vector<double> f;
  for (float v : ops::rope_inv_freq(head_dim, 10000.0, sc)) f.push_back(v);
  const DType tdt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  auto [cos, sin] = ops::rope_tables(Tensor::from_ints(positions, {int64_t(positions.size())}, dev),
                                     Tensor::from_vector(f, {int64_t(f.size())}, tdt, dev));
  return ops::rope(x, cos, sin, n_rot, head_dim);
}

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
  c.push_back({"rope qkv [2,3,5*4] q3 k1 v1 hd4", {{{2, 3, 20}}},
               [](const Ins& x) { return rope_case(x[0], {0, 1, 2}, 4, 4); }});
  c.push_back({"rope [1,4,2*8] far positions hd8", {{{1, 4, 16}}},
               [](const Ins& x) { return rope_case(x[0], {5, 0, 4096, 131071}, 2, 8); }});
  c.push_back({"rope per-row positions [6,12] hd6 one head rotated", {{{6, 12}}},
               [](const Ins& x) { return rope_case(x[0], {9, 3, 7, 1, 0, 2}, 1, 6); }});
  c.push_back({"gqa_attention B2 T5 H4 KV2 hd3", {{{2, 5, 24}}},
               [](const Ins& x) { return ops::gqa_attention(x[0], 4, 2); }});
  c.push_back({"gqa_attention B1 T6 H4 KV1 hd4 window 2", {{{1, 6, 24}}},
               [](const Ins& x) { return ops::gqa_attention(x[0], 4, 1, 2); }});
  c.push_back({"gqa_attention B2 T7 H2 KV2 hd4 window 3 (MHA path with a window)", {{{2, 7, 24}}},
               [](const Ins& x) { return ops::gqa_attention(x[0], 2, 2, 3); }});
  c.push_back({"gqa_attention B1 T4 H2 KV2 hd6 (plain MHA)", {{{1, 4, 36}}},
               [](const Ins& x) { return ops::gqa_attention(x[0], 2, 2); }});
  return c;
}

ARIA_OP_CASES(llama_cases);

}  // namespace
}  // namespace aria::testing
