// ARIA's gate regularisation and gradient dampening (../shared/aria-spec.md), reading the per-token
// gate values pi [B, T, 1] of each gated layer that a forward hands back when asked
// (ForwardOptions::gates, model/gpt2.h).
//
// Plasticity (bimodality) loss, per gated layer, over REAL tokens only (mask from ClsBatch):
//   default: L_p = lambda * sum_tokens(pi (1 - pi) mask) / N        -> pushes pi toward 0 or 1
//   legacy:  L_p = lambda / (sum_tokens(pi (1 - pi) mask) / N + 1e-4) -> the seed's loss, pushes pi to 0.5
// summed over layers. N is the normaliser the caller passes: the real tokens of the whole optimizer
// step, so that the sum of the micro-batches' losses is the step's token mean whatever the
// accumulation (the default loss is linear in the token sums; the legacy one is not, and is computed
// per micro-batch). The loss switches on once `warmup_steps` OPTIMIZER steps are done.
//
// Gradient dampening: GateStats accumulates sum(pi * mask) per layer (on the device) and the real-token
// count over the micro-batches of one step (no autograd); after the full backward (and the SPC gradient),
// dampen_slow_grads multiplies the slow pathway's gradients of layer l by (1 - mean pi_l).
#pragma once
#include <cstdint>
#include <vector>

#include "aria/model/gated_mlp.h"

namespace aria {

struct PlasticitySettings {
  double lambda = 0.01;
  bool legacy = false;
  int64_t warmup_steps = 500;
};

// True when lambda > 0 and at least warmup_steps optimizer steps are done.
bool plasticity_active(const PlasticitySettings& s, int64_t optimizer_steps_done);

// One layer's term for gate values pi [B, T, 1] and mask [B, T, 1] (any float dtype; converted to
// pi's), normalised by `real_tokens` (> 0). Differentiable in pi. bfloat16 pi is converted to
// float32 first: the loss is float32 and computed in float32 (gate sums, GateStats, likewise).
Tensor plasticity_layer_loss(const Tensor& pi, const Tensor& mask, double real_tokens, const PlasticitySettings& s);

// Sum of plasticity_layer_loss over the layers of one forward's gate values. Throws when there are
// no layers or a layer has no gate values (GPT-2's own MLP).
Tensor plasticity_loss(const GateValues& gates, const Tensor& mask, double real_tokens, const PlasticitySettings& s);

// Gate sums over the real tokens of one optimizer step, kept on the model's device: accumulating and
// dampening read nothing back, so a training step never waits for the GPU. mean()/means() read.
class GateStats {
 public:
  void reset(int n_layers);
  // Adds sum(pi_l * mask) of every layer of one forward's gate values (under NoGradGuard, float64 on
  // the device) and the batch's real-token count (known on the host: ClsBatch::real_tokens).
  void accumulate(const GateValues& gates, const Tensor& mask, int64_t real_tokens);
  int layers() const { return int(sum_.size()); }
  double tokens() const { return tokens_; }
  const Tensor& sum(int layer) const;  // float64 [] on the device; undefined before any accumulate
  double mean(int layer) const;        // reads; NaN before any token
  std::vector<double> means() const;   // one read for every layer

 private:
  std::vector<Tensor> sum_;
  double tokens_ = 0;
};

// g *= f for a tensor's gradient (if any), in place with the axpy kernel (g += (f - 1) g).
void scale_grad(const Tensor& p, double f);

// Slow-pathway gradients of layer l *= (1 - stats.mean(l)), the factor computed and applied on the
// device (scale_by). No-op for a step without tokens.
void dampen_slow_grads(const Gpt2Model& m, const GateStats& stats);

}  // namespace aria
