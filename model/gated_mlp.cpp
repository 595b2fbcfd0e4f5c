#include "aria/model/gated_mlp.h"

#include "aria/core/context.h"
#include "aria/core/ops.h"
#include "aria/core/ops_capture.h"
#include "aria/core/rng.h"

namespace aria {

static ops::GeluMlpWeights gelu_weights(const MlpWeights& w) { return {w.fc_w, w.fc_b, w.proj_w, w.proj_b}; }

std::pair<Tensor, Tensor> gated_mlp_forward(const GatedMlp& g, const Tensor& x, ops::CaptureSink* capture) {
  // Both compute the same function; ops::gated_mlp is itself the composition when given a sink.
  const ops::GatedMlpWeights w{gelu_weights(g.fast), gelu_weights(g.slow), g.gate_w1, g.gate_b1, g.gate_w2, g.gate_b2};
  return context().gated_mlp_fused ? ops::gated_mlp(x, w, capture) : ops::gated_mlp_composed(x, w, capture);
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
