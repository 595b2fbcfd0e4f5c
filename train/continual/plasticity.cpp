#include "aria/train/continual/plasticity.h"

#include <cmath>
#include <limits>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_inplace.h"

namespace aria {

namespace {

constexpr double kLegacyEps = 1e-4;  // the seed's denominator offset

Tensor mask_like(const Tensor& mask, const Tensor& pi) {
  ARIA_CHECK(mask.defined(), "plasticity: the batch has no mask");
  ARIA_CHECK(mask.numel() == pi.numel(), "plasticity: mask ", mask.str(), " does not match gate values ", pi.str());
  Tensor m = mask.detach();
  if (m.dtype() != pi.dtype()) m = m.to(pi.dtype());
  if (m.shape() != pi.shape()) m = m.reshape(pi.shape());
  return m;
}

const Tensor& layer_pi(const GateValues& g, size_t layer) {
  ARIA_CHECK(g.pi[layer].defined(), "plasticity: layer ", layer, " has no gate values (GPT-2's own MLP, not a gated one)");
  return g.pi[layer];
}

}  // namespace

bool plasticity_active(const PlasticitySettings& s, int64_t optimizer_steps_done) {
  return s.lambda > 0 && optimizer_steps_done >= s.warmup_steps;
}

Tensor plasticity_layer_loss(const Tensor& pi_in, const Tensor& mask, double real_tokens, const PlasticitySettings& s) {
  ARIA_CHECK(real_tokens > 0, "plasticity: the token normaliser must be > 0, got ", real_tokens);
  // bfloat16 gates: the loss (and its gradient up to pi) in float32; to() is differentiable, so the
  // gradient reaches pi rounded once to bfloat16.
  const Tensor pi = pi_in.dtype() == DType::BF16 ? pi_in.to(DType::F32) : pi_in;
  const Tensor m = mask_like(mask, pi);
  // mean over real tokens of pi (1 - pi)
  Tensor mean_var = ops::scale(ops::sum(ops::mul(ops::mul(pi, ops::affine(pi, -1.0, 1.0)), m)), 1.0 / real_tokens);
  if (!s.legacy) return ops::scale(mean_var, s.lambda);
  return ops::scale(ops::div(Tensor::full({}, 1.0, pi.dtype(), pi.device()), ops::affine(mean_var, 1.0, kLegacyEps)),
                    s.lambda);
}

Tensor plasticity_loss(const GateValues& gates, const Tensor& mask, double real_tokens, const PlasticitySettings& s) {
  Tensor total;
  for (size_t l = 0; l < gates.pi.size(); ++l) {
    Tensor t = plasticity_layer_loss(layer_pi(gates, l), mask, real_tokens, s);
    total = total.defined() ? ops::add(total, t) : t;
  }
  ARIA_CHECK(total.defined(), "plasticity: no gate values (an empty model, or a forward not asked for them)");
  return total;
}

void GateStats::reset(int n_layers) {
  sum_.assign(size_t(n_layers), Tensor());
  tokens_ = 0;
}

void GateStats::accumulate(const GateValues& gates, const Tensor& mask, int64_t real_tokens) {
  NoGradGuard no_grad;
  ARIA_CHECK(sum_.size() == gates.pi.size(), "GateStats: reset for ", sum_.size(), " layers, the gate values have ",
             gates.pi.size());
  ARIA_CHECK(real_tokens >= 0, "GateStats: real_tokens must be >= 0, got ", real_tokens);
  for (size_t l = 0; l < gates.pi.size(); ++l) {
    Tensor pi = layer_pi(gates, l).detach();
    if (pi.dtype() == DType::BF16) pi = pi.to(DType::F32);  // summed in float32, not rounded to bfloat16
    const Tensor s = ops::sum(ops::mul(pi, mask_like(mask, pi))).to(DType::F64);
    sum_[l] = sum_[l].defined() ? ops::add(sum_[l], s) : s;
  }
  tokens_ += double(real_tokens);
}

const Tensor& GateStats::sum(int layer) const {
  ARIA_CHECK(layer >= 0 && layer < layers(), "GateStats: layer ", layer, " outside [0, ", layers(), ")");
  return sum_[size_t(layer)];
}

double GateStats::mean(int layer) const {
  const Tensor& s = sum(layer);
  return tokens_ > 0 && s.defined() ? s.item() / tokens_ : std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> GateStats::means() const {
  std::vector<double> out(sum_.size(), std::numeric_limits<double>::quiet_NaN());
  if (tokens_ <= 0 || sum_.empty() || !sum_[0].defined()) return out;
  std::vector<Tensor> flat;
  for (const Tensor& s : sum_) flat.push_back(s.reshape({1}));
  const std::vector<double> v = ops::concat(flat, 0).to_doubles();
  for (size_t l = 0; l < v.size(); ++l) out[l] = v[l] / tokens_;
  return out;
}

void scale_grad(const Tensor& p, double f) {
  const Tensor g = p.grad();
  if (!g.defined() || f == 1.0) return;
  ops::add_scaled_(g, g, f - 1.0);
}

void dampen_slow_grads(const Gpt2Model& m, const GateStats& stats) {
  ARIA_CHECK(stats.layers() == int(m.blocks.size()), "dampen_slow_grads: statistics for ", stats.layers(),
             " layers, model has ", m.blocks.size());
  if (stats.tokens() <= 0) return;
  NoGradGuard no_grad;
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    ARIA_CHECK(m.blocks[l].gated, "dampen_slow_grads: layer ", l, " has no gated MLP");
    const MlpWeights& s = m.blocks[l].gated->slow;
    const Tensor f = ops::affine(stats.sum(int(l)), -1.0 / stats.tokens(), 1.0).reshape({1});  // 1 - mean pi_l
    for (const Tensor* t : {&s.fc_w, &s.fc_b, &s.proj_w, &s.proj_b}) {
      const Tensor g = t->grad();
      if (!g.defined()) continue;
      ARIA_CHECK(g.is_contiguous(), "dampen_slow_grads: the gradient of layer ", l, "'s slow pathway is a view");
      ops::scale_by_(g, f);
    }
  }
}

}  // namespace aria
