// ARIA's PlasticityGatedMLP (../shared/aria-spec.md): a fast and a slow copy of the pretrained
// MLP mixed per token by a learned gate pi(x) = sigmoid(W2 relu(W1 x + b1) + b2):
//   y = pi * fast(x) + (1 - pi) * slow(x)
// Both pathways start as copies of the pretrained MLP, so injection leaves the model's output
// unchanged for any pi.
#pragma once
#include <string>
#include <utility>

#include "aria/model/gpt2.h"

namespace aria {

struct GatedMlp {
  MlpWeights fast, slow;
  Tensor gate_w1, gate_b1;  // [C, d_ff/4], [d_ff/4]
  Tensor gate_w2, gate_b2;  // [d_ff/4, 1], [1]
};

// Calls f(name, tensor&) for every parameter, names under `prefix` ("h.N.mlp."):
// fast.c_fc.weight ... slow.c_proj.bias, gate.fc1.weight, gate.fc1.bias, gate.fc2.weight, gate.fc2.bias.
template <typename G, typename F>
void visit_gated_mlp_parameters(G& g, const std::string& prefix, F&& f) {
  f(prefix + "fast.c_fc.weight", g.fast.fc_w);
  f(prefix + "fast.c_fc.bias", g.fast.fc_b);
  f(prefix + "fast.c_proj.weight", g.fast.proj_w);
  f(prefix + "fast.c_proj.bias", g.fast.proj_b);
  f(prefix + "slow.c_fc.weight", g.slow.fc_w);
  f(prefix + "slow.c_fc.bias", g.slow.fc_b);
  f(prefix + "slow.c_proj.weight", g.slow.proj_w);
  f(prefix + "slow.c_proj.bias", g.slow.proj_b);
  f(prefix + "gate.fc1.weight", g.gate_w1);
  f(prefix + "gate.fc1.bias", g.gate_b1);
  f(prefix + "gate.fc2.weight", g.gate_w2);
  f(prefix + "gate.fc2.bias", g.gate_b2);
}

// x [B, T, C] -> {y [B, T, C], pi [B, T, 1]}: the output and the gate values (differentiable; a
// forward hands them to its caller through ForwardOptions::gates, model/gpt2.h). One fused op
// (ops::gated_mlp) unless Context::gated_mlp_fused is off or `capture` is set; then the plain ops
// (ops::gated_mlp_composed: linear, relu, sigmoid, the MLPs, gate_mix), each given `capture`.
std::pair<Tensor, Tensor> gated_mlp_forward(const GatedMlp& g, const Tensor& x, ops::CaptureSink* capture = nullptr);

// Replaces every block's MLP by a GatedMlp whose pathways are copies of it; gate weights drawn
// from N(0, gate_init_std) with zero biases (pi starts near 0.5). No-op error if already injected.
void inject_gated_mlp(Gpt2Model& m, uint64_t seed, double gate_init_std = 0.02);

}  // namespace aria
