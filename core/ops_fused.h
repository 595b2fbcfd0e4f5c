// Internal to the op layer: the pieces of the fused GPT-2 MLP (core/ops_fused.cpp) that ARIA's gated
// MLP (core/ops_gated.cpp) runs twice inside its own op, so that the MLP's forward and backward
// exist once; and the GEMM helpers and linear-layer gradients the op files share.
#pragma once
#include <tuple>
#include <utility>

#include "aria/core/ops.h"
#include "aria/kernels/backend.h"

namespace aria::ops::detail {

// c = op(a) @ op(b) with a GEMM epilogue (kernels/kernel_list.h gemm_epilogue); 2-D operands.
void gemm_ep(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb, GemmEpilogue ep,
             const Tensor& bias = Tensor(), const Tensor& aux = Tensor());

// c = alpha op(a) @ op(b), or c += alpha op(a) @ op(b) when `accumulate` (the GEMM's beta = 1, no
// extra pass); 2-D operands, c an existing contiguous [M, N] tensor.
void mm_into(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb, bool accumulate,
             double alpha = 1.0);

// A linear layer's parameter gradients from its input rows x2 [N, in] and output gradient g2
// [N, out]: {dW = x2^T g2 [in, out] when want_w, db = column sums of g2 [out] when want_b}, each
// undefined when not wanted (x2, g2 may be undefined when nothing needs them). The bias gradient is our column sum, not cuBLASLt's BGRAD epilogue: on
// the H100 that epilogue's reduction is a kernel of its own, and slower (docs/perf.md).
std::pair<Tensor, Tensor> linear_param_grads(const Tensor& x2, const Tensor& g2, bool want_w, bool want_b);

// gelu_mlp's input checks (x [..., C] chaining into w1 [C, H], b1 [H], w2 [H, C2], b2 [C2]), with
// `what` in the errors.
void check_gelu_mlp(const Tensor& x, const GeluMlpWeights& w, const char* what);

// One gelu_mlp evaluated on rows, with what its backward needs.
struct GeluMlpRows {
  int64_t N = 0, C = 0, H = 0, C2 = 0;
  Tensor x2;      // [N, C] input rows (no history)
  Tensor w1, w2;  // the GEMMs' weights (no history)
  Tensor pre, h;  // [N, H] pre-activation and gelu(pre); h undefined under Context::recompute_activations
  bool gw1 = false, gb1 = false, gw2 = false, gb2 = false;  // which weight gradients are wanted
};

// out2 [N, C2] = gelu_mlp of the rows x2 [N, C] (x2 and the weights contiguous; w's tensors keep
// their history: their requires_grad picks the gradients backward computes).
GeluMlpRows gelu_mlp_rows_forward(const Tensor& x2, const GeluMlpWeights& w, const Tensor& out2);

// The backward from g2 = d(out2) [N, C2]: returns {dw1, db1, dw2, db2} (undefined where not wanted).
// When dx [N, C] is defined it receives d(x2): written, or added to it when `accumulate` (inside the
// GEMM: beta = 1).
GeluMlpWeights gelu_mlp_rows_backward(const GeluMlpRows& s, const Tensor& g2, const Tensor& dx, bool accumulate);

}  // namespace aria::ops::detail
