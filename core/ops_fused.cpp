// Fused ops for the training hot path: GPT-2's MLP with the bias and GELU folded into the GEMMs
// (cuBLASLt epilogues on CUDA), residual add + layernorm in one pass, and the classifier (lm head
// GEMM + cross-entropy forward and backward in one sweep over the logits). Each equals the
// composition of the plain ops (tests/support/cases_fused.cpp checks gradients and equality); the
// model uses them unless a per-sample-gradient observer must see the plain linear/layernorm calls.
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_check.h"
#include "kernels/kernels.h"

namespace aria::ops {

using namespace detail;

namespace {

Tensor flat_rows(const Tensor& t, int64_t N, int64_t C) { return t.detach().reshape({N, C}); }

void gemm_ep(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb, GemmEpilogue ep,
             const Tensor& bias = Tensor(), const Tensor& aux = Tensor()) {
  ARIA_DISPATCH(c.device(), gemm_epilogue, a, b, c, ta, tb, int(ep), bias, aux);
}

// c = alpha * op(a) @ op(b) for 2-D operands, through the batched matmul row.
Tensor mm2(const Tensor& a, const Tensor& b, bool ta, bool tb, int64_t M, int64_t N, double alpha = 1.0) {
  Tensor c = Tensor::empty({M, N}, a.dtype(), a.device());
  ARIA_DISPATCH(c.device(), matmul, a.reshape({1, a.size(0), a.size(1)}), b.reshape({1, b.size(0), b.size(1)}),
                c.reshape({1, M, N}), ta, tb, alpha, 0.0);
  return c;
}

}  // namespace

bool& recompute_activations() {
  static bool on = false;
  return on;
}

Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  const char* what = "gelu_mlp";
  check_float(x, what, "x");
  for (const Tensor* t : {&w1, &b1, &w2, &b2}) {
    check_float(*t, what, "weight");
    check_pair(x, *t, what);
  }
  ARIA_CHECK(x.dim() >= 1 && w1.dim() == 2 && w2.dim() == 2 && x.size(-1) == w1.size(0) && w2.size(0) == w1.size(1) &&
                 b1.shape() == Shape{w1.size(1)} && b2.shape() == Shape{w2.size(1)},
             what, ": shapes do not chain: x ", x.str(), ", w1 ", w1.str(), ", b1 ", b1.str(), ", w2 ", w2.str(),
             ", b2 ", b2.str());
  const int64_t C = w1.size(0), H = w1.size(1), C2 = w2.size(1), N = x.numel() / C;
  const Tensor xc = x.contiguous(), w1c = w1.contiguous(), b1c = b1.contiguous(), w2c = w2.contiguous(),
               b2c = b2.contiguous();
  const Device dev = x.device();
  const DType dt = x.dtype();
  Tensor pre = Tensor::empty({N, H}, dt, dev), h = Tensor::empty({N, H}, dt, dev);
  Shape out_shape = x.shape();
  out_shape.back() = C2;
  Tensor out = Tensor::empty(out_shape, dt, dev);
  const Tensor x2 = flat_rows(xc, N, C);
  gemm_ep(x2, w1c.detach(), h, false, false, GemmEpilogue::Gelu, b1c.detach(), pre);
  gemm_ep(h, w2c.detach(), flat_rows(out, N, C2), false, false, GemmEpilogue::Bias, b2c.detach());
  if (!needs_grad({&xc, &w1c, &b1c, &w2c, &b2c})) return out;
  const bool gx = xc.requires_grad(), gw1 = w1c.requires_grad(), gb1 = b1c.requires_grad(),
             gw2 = w2c.requires_grad(), gb2 = b2c.requires_grad();
  // With recomputation only the pre-activation is kept; gelu(pre) is rebuilt in backward (one
  // elementwise pass) instead of holding an [N, 4C] activation per layer until then.
  const bool recompute = recompute_activations();
  record_op(what, {xc, w1c, b1c, w2c, b2c}, {out},
            [=, h_saved = recompute ? Tensor() : h, w1s = w1c.detach(), w2s = w2c.detach(),
             xs = x.shape()](const std::vector<Tensor>& g) {
              const Tensor g2 = flat_rows(g[0].contiguous(), N, C2);
              Tensor h = h_saved;
              if (!h.defined()) {
                h = Tensor::empty({N, H}, dt, dev);
                ARIA_DISPATCH(dev, unary, int(UnaryOp::Gelu), pre, h, 1.0, 0.0);
              }
              Tensor dx, dw1, db1, dw2, db2;
              if (gb2) db2 = Tensor::empty({C2}, dt, dev);
              if (gw2) {  // dW2 = h^T g, with db2 = column sums of g from the same GEMM
                dw2 = Tensor::empty({H, C2}, dt, dev);
                gemm_ep(h, g2, dw2, true, false, gb2 ? GemmEpilogue::BGrad : GemmEpilogue::None, db2);
              } else if (gb2) {
                ARIA_DISPATCH(dev, sum_to, g2, db2.reshape({1, C2}));
              }
              if (gx || gw1 || gb1) {
                // d(pre) = (g W2^T) * gelu'(pre) as a plain GEMM and one elementwise pass: on the H100
                // cuBLASLt's DGELU_BGRAD epilogue ran 4x slower than the plain GEMM (0.47 vs 0.115 ms at
                // [16384, 768] x [768, 3072], docs/perf.md), slower than the two steps together (0.22 ms).
                // db1 then rides on dW1's GEMM (BGrad epilogue).
                Tensor dpre = mm2(g2, w2s, false, true, N, H);
                ARIA_DISPATCH(dev, unary_backward, int(UnaryOp::Gelu), pre, Tensor(), dpre, dpre, 0.0);
                if (gb1) db1 = Tensor::empty({H}, dt, dev);
                if (gw1) {
                  dw1 = Tensor::empty({C, H}, dt, dev);
                  gemm_ep(x2, dpre, dw1, true, false, gb1 ? GemmEpilogue::BGrad : GemmEpilogue::None, db1);
                } else if (gb1) {
                  ARIA_DISPATCH(dev, sum_to, dpre, db1.reshape({1, H}));
                }
                if (gx) dx = mm2(dpre, w1s, false, true, N, C).reshape(xs);
              }
              return std::vector<Tensor>{dx, dw1, db1, dw2, db2};
            });
  return out;
}

std::pair<Tensor, Tensor> add_layernorm(const Tensor& x, const Tensor& r, const Tensor& w, const Tensor& b,
                                        double eps) {
  const char* what = "add_layernorm";
  check_float(x, what, "x");
  check_float(r, what, "r");
  check_float(w, what, "w");
  check_float(b, what, "b");
  check_pair(x, r, what);
  check_pair(x, w, what);
  check_pair(x, b, what);
  ARIA_CHECK(x.shape() == r.shape(), what, ": x ", x.str(), " and r ", r.str(), " must have the same shape");
  ARIA_CHECK(x.dim() >= 1 && x.size(-1) > 0 && w.shape() == Shape{x.size(-1)} && b.shape() == w.shape(), what,
             ": w, b must be [C] for x [..., C]: x ", x.str(), ", w ", w.str(), ", b ", b.str());
  const int64_t C = x.size(-1), N = x.numel() / C;
  const Tensor xc = x.contiguous(), rc = r.contiguous(), wc = w.contiguous(), bc = b.contiguous();
  const Device dev = x.device();
  Tensor sum = Tensor::empty(x.shape(), x.dtype(), dev), y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({N}, stat_dtype(x.dtype()), dev), rstd = Tensor::empty({N}, stat_dtype(x.dtype()), dev);
  ARIA_DISPATCH(dev, add_layernorm_forward, flat_rows(xc, N, C), flat_rows(rc, N, C), wc.detach(), bc.detach(),
                flat_rows(sum, N, C), flat_rows(y, N, C), mean, rstd, eps);
  if (needs_grad({&xc, &rc, &wc, &bc})) {
    record_op(what, {xc, rc, wc, bc}, {sum, y},
              [=, ss = sum.detach(), ws = wc.detach()](const std::vector<Tensor>& g) {
                // d(sum) = g_sum + LN'(g_y); x and r both receive it (accumulate_grad copies a shared one).
                if (!g[1].defined()) return std::vector<Tensor>{g[0], g[0], Tensor(), Tensor()};
                Tensor dsum = Tensor::empty(ss.shape(), ss.dtype(), dev);
                Tensor dw = Tensor::zeros({C}, ws.dtype(), dev), db = Tensor::zeros({C}, ws.dtype(), dev);
                const Tensor gs = g[0].defined() ? flat_rows(g[0].contiguous(), N, C) : Tensor();
                ARIA_DISPATCH(dev, layernorm_backward_residual, flat_rows(ss, N, C), ws, mean, rstd,
                              flat_rows(g[1].contiguous(), N, C), gs, flat_rows(dsum, N, C), dw, db);
                return std::vector<Tensor>{dsum, dsum, dw, db};
              });
  }
  return {sum, y};
}

Tensor lm_head_cross_entropy(const Tensor& hidden, const Tensor& w, const Tensor& targets, int ignore_index) {
  const char* what = "lm_head_cross_entropy";
  check_float(hidden, what, "hidden");
  check_float(w, what, "w");
  check_pair(hidden, w, what);
  check_ints(targets, what, "targets");
  check_same_device(hidden, targets, what);
  ARIA_CHECK(hidden.dim() >= 1 && w.dim() == 2 && hidden.size(-1) == w.size(1), what, ": hidden ", hidden.str(),
             " must be [..., C] and w [V, C], got w ", w.str());
  const Shape lead(hidden.shape().begin(), hidden.shape().end() - 1);
  ARIA_CHECK(targets.shape() == lead, what, ": targets ", targets.str(), " must have shape ", shape_str(lead));
  const int64_t C = w.size(1), V = w.size(0), N = targets.numel();
  const int64_t count = count_valid_targets(targets, V, ignore_index, what);
  const Tensor hc = hidden.contiguous(), wc = w.contiguous();
  const Device dev = hidden.device();
  const Tensor h2 = flat_rows(hc, N, C), t = targets.contiguous().detach().reshape({N});
  const Tensor logits = mm2(h2, wc.detach(), false, true, N, V);
  Tensor losses = Tensor::empty({N}, stat_dtype(hidden.dtype()), dev);
  const bool grad = needs_grad({&hc, &wc});
  if (grad) {  // losses, and logits overwritten by softmax - onehot: the unscaled d(loss)/d(logits)
    ARIA_DISPATCH(dev, cross_entropy_fused, logits, t, losses, ignore_index);
  } else {
    Tensor lse = Tensor::empty({N}, stat_dtype(hidden.dtype()), dev);
    ARIA_DISPATCH(dev, cross_entropy_forward, logits, t, losses, lse, ignore_index);
  }
  Tensor out;
  {
    NoGradGuard no_grad;
    out = count ? scale(sum(losses), 1.0 / double(count)) : Tensor::zeros({}, losses.dtype(), dev);
  }
  if (!grad) return out;
  const bool gh = hc.requires_grad(), gw = wc.requires_grad();
  record_op(what, {hc, wc}, {out}, [=, ws = wc.detach(), hs = hidden.shape()](const std::vector<Tensor>& g) {
    Tensor dh, dw;
    // One scalar read per backward: the upstream d(loss) becomes the GEMMs' alpha, so the logits-sized
    // gradient is never scaled in a pass of its own.
    const double alpha = count ? g[0].item() / double(count) : 0.0;
    if (gh) dh = mm2(logits, ws, false, false, N, C, alpha).reshape(hs);
    if (gw) dw = mm2(logits, h2, true, false, V, C, alpha);
    return std::vector<Tensor>{dh, dw};
  });
  return out;
}

}  // namespace aria::ops
