#include "aria/model/gated_mlp.h"

#include "aria/core/ops.h"
#include "aria/core/rng.h"

namespace aria {

bool& gated_mlp_fused() {
  static bool on = true;
  return on;
}

static ops::GeluMlpWeights gelu_weights(const MlpWeights& w) { return {w.fc_w, w.fc_b, w.proj_w, w.proj_b}; }

std::pair<Tensor, Tensor> gated_mlp_forward(const GatedMlp& g, const Tensor& x) {
  // The fused op unless a per-sample-gradient observer must see the plain linear calls (as the rest
  // of the model decides, model/gpt2.cpp); both branches compute the same function.
  if (gated_mlp_fused() && ops::op_observer() == nullptr) {
    return ops::gated_mlp(x, {gelu_weights(g.fast), gelu_weights(g.slow), g.gate_w1, g.gate_b1, g.gate_w2,
                              g.gate_b2});
  }
  Tensor pi = ops::sigmoid(ops::linear(ops::relu(ops::linear(x, g.gate_w1, g.gate_b1)), g.gate_w2, g.gate_b2));
  Tensor fast = mlp_forward(g.fast, x);
  Tensor slow = mlp_forward(g.slow, x);
  // pi * fast + (1 - pi) * slow = slow + pi * (fast - slow), one fused pass each way (and pi's row
  // sum in the backward's pass) instead of three elementwise ops and a reduction.
  Tensor out = ops::gate_mix(slow, fast, pi);
  return {out, pi};
}

static MlpWeights copy_weights(const MlpWeights& w) {
  return {w.fc_w.clone(), w.fc_b.clone(), w.proj_w.clone(), w.proj_b.clone()};
}

void inject_gated_mlp(Gpt2Model& m, uint64_t seed, double gate_init_std) {
  Rng rng(seed);
  const int64_t C = m.config.n_embd;
  const int64_t hidden = 4 * C / 4;  // d_ff / 4 with GPT-2's d_ff = 4C
  for (Gpt2Block& b : m.blocks) {
    ARIA_CHECK(!b.gated, "inject_gated_mlp: the model already has gated MLPs");
    auto g = std::make_shared<GatedMlp>();
    g->fast = copy_weights(b.mlp);
    g->slow = copy_weights(b.mlp);
    const Device d = m.device();
    g->gate_w1 = Tensor::empty({C, hidden}, m.dtype(), d);
    g->gate_w2 = Tensor::empty({hidden, 1}, m.dtype(), d);
    rng.fill_normal(g->gate_w1, 0, gate_init_std);
    rng.fill_normal(g->gate_w2, 0, gate_init_std);
    g->gate_b1 = Tensor::zeros({hidden}, m.dtype(), d);
    g->gate_b2 = Tensor::zeros({1}, m.dtype(), d);
    b.gated = g;
    b.mlp = MlpWeights{};
  }
}

}  // namespace aria
