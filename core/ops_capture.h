// Per-sample captures: a forward that must expose, for the parameters its caller watches, each op's
// input and the gradient of its output (train/continual/per_sample_grad.h builds per-sample gradients, hence the
// Fisher, from them) passes a CaptureSink to the ops below; the model takes it in ForwardOptions
// (model/gpt2.h), so it has one forward path whether or not something is captured.
//
// linear, layernorm and embedding call the sink after recording their tape node (only when they
// record one) and return what it returns: the output itself, or an alias of it that the sink recorded
// on the tape so that its backward receives d(loss)/d(output). The fused ops (gelu_mlp,
// add_layernorm, gated_mlp, lm_head_cross_entropy) run as their plain composition when given a sink,
// so that the sink sees each linear / layernorm inside them; with a null sink every op here is
// exactly the op of core/ops.h. Implementations: core/ops_capture.cpp.
#pragma once
#include <utility>

#include "aria/core/ops.h"

namespace aria::ops {

class CaptureSink {
 public:
  virtual ~CaptureSink() = default;
  virtual Tensor on_linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) = 0;
  virtual Tensor on_layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y) = 0;
  virtual Tensor on_embedding(const Tensor& weight, const Tensor& ids, const Tensor& y) = 0;
};

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, CaptureSink* capture);
Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, CaptureSink* capture);
Tensor embedding(const Tensor& weight, const Tensor& ids, CaptureSink* capture);

// Fused when capture is null; with a sink: linear(gelu(linear(x, w1, b1)), w2, b2).
Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                CaptureSink* capture);
// Fused when capture is null; with a sink: s = add(x, r), {s, layernorm(s, w, b, eps)}.
std::pair<Tensor, Tensor> add_layernorm(const Tensor& x, const Tensor& r, const Tensor& w, const Tensor& b, double eps,
                                        CaptureSink* capture);
// Fused when capture is null; with a sink: gated_mlp_composed.
std::pair<Tensor, Tensor> gated_mlp(const Tensor& x, const GatedMlpWeights& w, CaptureSink* capture);
// The gated MLP as the composition ops::gated_mlp fuses, returning {out, pi}:
//   pi = sigmoid(linear(relu(linear(x, gate_w1, gate_b1)), gate_w2, gate_b2)),
//   out = gate_mix(gelu_mlp(x, slow), gelu_mlp(x, fast), pi)   (pi first, then fast, then slow)
// with every op given `capture` (null: the pathways' gelu_mlp stay fused).
std::pair<Tensor, Tensor> gated_mlp_composed(const Tensor& x, const GatedMlpWeights& w, CaptureSink* capture);
// Fused when capture is null; with a sink: cross_entropy(matmul(hidden, w, false, true), targets).
Tensor lm_head_cross_entropy(const Tensor& hidden, const Tensor& w, const Tensor& targets, int ignore_index,
                             CaptureSink* capture);

}  // namespace aria::ops
