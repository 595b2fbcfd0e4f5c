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

}  // namespace aria::ops
