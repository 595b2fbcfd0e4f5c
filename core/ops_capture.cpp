// Ops that hand a CaptureSink what it captures (see core/ops_capture.h).
#include "aria/core/ops_capture.h"

namespace aria::ops {

namespace {

// The op's contiguous operand as the op itself used it: the same tensor when it already is one, else
// a detached contiguous copy (values only: the sink reads them, the tape has the op's own copy).
Tensor as_used(const Tensor& t) { return !t.defined() || t.is_contiguous() ? t : t.detach().contiguous(); }

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, CaptureSink* capture) {
  Tensor y = linear(x, w, b);
  if (!capture || !y.requires_grad()) return y;  // nothing recorded: nothing to capture
  return capture->on_linear(as_used(x), as_used(w), as_used(b), y);
}

Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, CaptureSink* capture) {
  Tensor y = layernorm(x, w, b, eps);
  if (!capture || !y.requires_grad()) return y;
  return capture->on_layernorm(as_used(x), as_used(w), as_used(b), eps, y);
}

Tensor embedding(const Tensor& weight, const Tensor& ids, CaptureSink* capture) {
  Tensor y = embedding(weight, ids);
  if (!capture || !y.requires_grad()) return y;
  return capture->on_embedding(as_used(weight), ids, y);
}

Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                CaptureSink* capture) {
  if (!capture) return gelu_mlp(x, w1, b1, w2, b2);
  return linear(gelu(linear(x, w1, b1, capture)), w2, b2, capture);
}

std::pair<Tensor, Tensor> add_layernorm(const Tensor& x, const Tensor& r, const Tensor& w, const Tensor& b, double eps,
                                        CaptureSink* capture) {
  if (!capture) return add_layernorm(x, r, w, b, eps);
  Tensor s = add(x, r);
  Tensor y = layernorm(s, w, b, eps, capture);
  return {s, y};
}

std::pair<Tensor, Tensor> gated_mlp(const Tensor& x, const GatedMlpWeights& w, CaptureSink* capture) {
  if (!capture) return gated_mlp(x, w);
  return gated_mlp_composed(x, w, capture);
}

std::pair<Tensor, Tensor> gated_mlp_composed(const Tensor& x, const GatedMlpWeights& w, CaptureSink* capture) {
  Tensor pi = sigmoid(linear(relu(linear(x, w.gate_w1, w.gate_b1, capture)), w.gate_w2, w.gate_b2, capture));
  Tensor fast = gelu_mlp(x, w.fast.w1, w.fast.b1, w.fast.w2, w.fast.b2, capture);
  Tensor slow = gelu_mlp(x, w.slow.w1, w.slow.b1, w.slow.w2, w.slow.b2, capture);
  // pi * fast + (1 - pi) * slow = slow + pi * (fast - slow), one fused pass each way (and pi's row
  // sum in the backward's pass) instead of three elementwise ops and a reduction.
  Tensor out = gate_mix(slow, fast, pi);
  return {out, pi};
}

Tensor lm_head_cross_entropy(const Tensor& hidden, const Tensor& w, const Tensor& targets, int ignore_index,
                             CaptureSink* capture) {
  if (!capture) return lm_head_cross_entropy(hidden, w, targets, ignore_index);
  return cross_entropy(matmul(hidden, w, false, true), targets, ignore_index);
}

}  // namespace aria::ops
