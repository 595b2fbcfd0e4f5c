// Ops of the Llama family of decoders (Llama, Mistral, Qwen2): RMSNorm (also fused with the residual
// add), SwiGLU, rotary position embeddings. Same contract as core/ops.h: inputs checked with a clear
// aria::Error, the device's kernel (kernels/kernel_list.h), one tape node per call.
// Implementations: core/ops_llama.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/tensor.h"

namespace aria::ops {

// Hugging Face's LlamaRMSNorm over the last dimension: (x / sqrt(mean(x^2) + eps)) * w, w [C];
// statistics in float32 (float64 for float64 x).
Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps);
// {s, rmsnorm(s, w, eps)} with s = x + r (x, r same shape): the residual add feeding an RMSNorm, in
// one pass forward and one backward (as add_layernorm for GPT-2).
std::pair<Tensor, Tensor> add_rmsnorm(const Tensor& x, const Tensor& r, const Tensor& w, double eps);

// SwiGLU: silu(gate) * up (gate, up same shape), forward and backward one pass each.
Tensor swiglu(const Tensor& gate, const Tensor& up);
// The same on one [..., 2H] tensor (gate | up: the output of one GEMM with the gate and up
// projections side by side) -> [..., H]; the gradient is written into one [..., 2H] tensor.
Tensor swiglu_packed(const Tensor& gate_up);

// ---- rotary position embeddings ----
// config.json's rope_scaling. type "default" (none) or "llama3"; any other type is refused by
// rope_inv_freq naming it.
struct RopeScaling {
  std::string type = "default";
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};
// The D/2 inverse frequencies, as Hugging Face's float32 computation gives them (the formula is
// written down in core/ops_llama.cpp). head_dim even and positive, theta > 0.
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling = {});
// {cos, sin} [P, D/2] for positions (int32 [P], >= 0) and inv_freq ([D/2] float32 or float64), both
// on the device the tables are wanted on; the tables have inv_freq's dtype. Not differentiable.
std::pair<Tensor, Tensor> rope_tables(const Tensor& positions, const Tensor& inv_freq);
// x [..., W] (rows of W; the leading dims flatten to R rows, R a multiple of P, row r at position
// row r % P: for x [B, T, W] and tables of T positions, row (b, t) at position t): the first n_rot
// heads of head_dim columns rotated in the rotate_half layout, the other columns passed through
// (for a packed qkv row: n_rot = n_head + n_kv_head). cos, sin from rope_tables: float32 for
// float32/bfloat16 x, float64 for float64 x. Differentiable in x.
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int n_rot, int head_dim);

// ---- attention ----
// Causal grouped-query attention: qkv [B, T, (n_head + 2 n_kv_head) hd] packs per row the query
// heads, then the key heads, then the value heads; query head h uses k/v head h / (n_head /
// n_kv_head), read in place. window > 0: query i sees keys i - window < j <= i (Mistral's
// sliding_window); 0: all j <= i. -> [B, T, n_head hd]. With n_kv_head == n_head and window 0 it is
// causal_attention.
Tensor gqa_attention(const Tensor& qkv, int n_head, int n_kv_head, int window = 0);

}  // namespace aria::ops
