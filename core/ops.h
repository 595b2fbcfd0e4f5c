// Differentiable operations. Each one checks its inputs (shapes, dtypes, devices) with a clear
// aria::Error, runs the kernel of the inputs' device (kernels/kernel_list.h) and, when an input
// requires grad, records a tape node whose backward calls the backward kernels.
// Implementations: core/ops_<family>.cpp, one family per file.
#pragma once
#include <utility>
#include <vector>

#include "aria/core/tensor.h"

namespace aria::ops {

// ---- elementwise with NumPy broadcasting (core/ops_elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double s);                 // s * x
Tensor affine(const Tensor& x, double alpha, double beta);  // alpha * x + beta
Tensor gelu(const Tensor& x);     // tanh form ("gelu_new")
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor square(const Tensor& x);
// x copied out to `shape` (x broadcastable to it, NumPy rules); backward is sum_to_shape.
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// ---- reductions (core/ops_reduce.cpp) ----
Tensor sum(const Tensor& x);                       // scalar [] of all elements
Tensor mean(const Tensor& x);                      // scalar []
Tensor sum_dim(const Tensor& x, int dim, bool keepdim = false);
Tensor mean_dim(const Tensor& x, int dim, bool keepdim = false);
// Reduces a broadcast result back to `shape` (sum over broadcast dims): the backward of broadcasting.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// ---- shape (core/ops_shape.cpp); reshape / transpose / slice are Tensor methods ----
Tensor concat(const std::vector<Tensor>& xs, int dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);  // views

// ---- matrix products (core/ops_matmul.cpp) ----
// a: [..., M, K] (or [..., K, M] with trans_a), b: [K, N] or [..., K, N] with a's batch dims
// (or transposed with trans_b). Output [..., M, N].
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x: [..., in], w: [in, out] (Hugging Face Conv1D layout), b: [out] or undefined. Output [..., out].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor bias_add(const Tensor& x, const Tensor& b);  // x [..., C] + b [C]

// ---- neural-network ops (core/ops_nn.cpp) ----
// weight [V, D], ids int32 [...] -> [..., D]. Out-of-range ids are an error (checked on the host).
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps);  // over the last dim
Tensor softmax(const Tensor& x);  // over the last dim
// qkv [B, T, 3C] in GPT-2's c_attn layout -> [B, T, C]; causal; heads = n_head.
Tensor causal_attention(const Tensor& qkv, int n_head);
// logits [..., V], targets int32 [...] -> scalar mean of -log p(target) over targets != ignore_index.
// When every target is ignored the loss is 0 (and so is its gradient).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int ignore_index = -100);
// Per-row losses [...] (0 where ignored), for per-sample statistics.
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& targets, int ignore_index = -100);
// Classification accuracy counted on the device (core/ops_classifier.cpp; not differentiable, no
// host read on CUDA): out (one float64 value on logits' device) += the number of rows whose argmax
// (first index of the maximum, std::max_element's; see count_correct in kernels/kernel_list.h)
// equals the label. logits [..., C] (C >= 1; made contiguous when they are not), labels int32 [...]
// (logits' leading shape), same device. Labels outside [0, C) are an error on the CPU; on CUDA the
// caller validates them (they count as wrong, never read out of bounds).
void count_correct_into(const Tensor& logits, const Tensor& labels, const Tensor& out);

// ---- fused ops (core/ops_fused.cpp); each equals the composition named in its comment ----
// gelu_mlp and lm_head_cross_entropy read their switches (activation recomputation, the logits
// chunk size) from aria::context() (core/context.h).
// linear(gelu(linear(x, w1, b1)), w2, b2): GPT-2's MLP with bias and GELU inside the GEMMs.
Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2);
// {s, layernorm(s, w, b, eps)} with s = x + r (x, r same shape): the residual add feeding a layernorm.
std::pair<Tensor, Tensor> add_layernorm(const Tensor& x, const Tensor& r, const Tensor& w, const Tensor& b,
                                        double eps);
// cross_entropy(matmul(hidden, w, false, true), targets): the tied lm head and the mean loss. The
// logits are made in row chunks of at most Context::lm_head_chunk_bytes (512 MiB); with gradients
// each chunk's d(loss)/d(logits) is computed in the same sweep and multiplied into dhidden and dw at
// once (core/ops_classifier.cpp), so no logits are kept for the backward, which only scales by the
// upstream gradient on the device.
// Float32 loss for bfloat16 inputs.
Tensor lm_head_cross_entropy(const Tensor& hidden, const Tensor& w, const Tensor& targets, int ignore_index = -100);

// ---- ARIA's gated MLP (core/ops_gated.cpp) ----
// add(slow, mul(pi, sub(fast, slow))) in one pass forward and one backward (dpi's row sum included):
// the gate's mix of the slow and fast pathways. slow, fast [..., C]; pi [..., 1] with the same
// leading dims; one dtype and device.
Tensor gate_mix(const Tensor& slow, const Tensor& fast, const Tensor& pi);

// The tensors of one GPT-2 MLP as gelu_mlp takes them: w1 [C, H], b1 [H], w2 [H, C2], b2 [C2].
struct GeluMlpWeights {
  Tensor w1, b1, w2, b2;
};
// ARIA's gated MLP: both pathways and the gate, gate_w1 [C, G], gate_b1 [G], gate_w2 [G, 1], gate_b2 [1].
struct GatedMlpWeights {
  GeluMlpWeights fast, slow;
  Tensor gate_w1, gate_b1, gate_w2, gate_b2;
};
// The whole gated MLP as one op, returning {out, pi}:
//   pi  = sigmoid(linear(relu(linear(x, gate_w1, gate_b1)), gate_w2, gate_b2))   [..., 1]
//   out = gate_mix(gelu_mlp(x, slow), gelu_mlp(x, fast), pi)                     [..., C2]
// with one tape node: the gate's C -> 1 head runs in its own kernels (no GEMM with one output column),
// and the backward adds the three branches' input gradients inside the GEMMs (beta = 1) instead of
// in separate passes. pi stays differentiable (a gradient reaching it joins the mix's). Honours
// Context::recompute_activations like gelu_mlp.
std::pair<Tensor, Tensor> gated_mlp(const Tensor& x, const GatedMlpWeights& w);

// Per-sample captures (linear, layernorm, embedding and the fused ops given a CaptureSink, for the
// Fisher): core/ops_capture.h.

}  // namespace aria::ops
