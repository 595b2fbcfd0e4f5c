// Fused ops for the training hot path: GPT-2's MLP with the bias and GELU folded into the GEMMs
// (cuBLASLt epilogues on CUDA), residual add + layernorm in one pass, and the classifier (lm head
// GEMM + cross-entropy forward and backward in one sweep over the logits). Each equals the
// composition of the plain ops (tests/support/cases_fused.cpp checks gradients and equality); given
// a per-sample CaptureSink they run as that composition instead (core/ops_capture.h).
#include <utility>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/context.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/core/ops_fused.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

Tensor flat_rows(const Tensor& t, int64_t N, int64_t C) { return t.detach().reshape({N, C}); }

}  // namespace

namespace detail {

void gemm_ep(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb, GemmEpilogue ep, const Tensor& bias,
             const Tensor& aux) {
  ARIA_DISPATCH(c.device(), gemm_epilogue, a, b, c, ta, tb, int(ep), bias, aux);
}

void mm_into(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb, bool accumulate, double alpha) {
  ARIA_DISPATCH(c.device(), matmul, a.reshape({1, a.size(0), a.size(1)}), b.reshape({1, b.size(0), b.size(1)}),
                c.reshape({1, c.size(0), c.size(1)}), ta, tb, alpha, accumulate ? 1.0 : 0.0);
}

std::pair<Tensor, Tensor> linear_param_grads(const Tensor& x2, const Tensor& g2, bool want_w, bool want_b) {
  Tensor dw, db;
  if (!want_w && !want_b) return {dw, db};  // g2 may be undefined then (the gate's, with no gradient wanted)
  const int64_t out = g2.size(1);
  if (want_w) {  // x2 may be undefined otherwise (gelu_mlp's h when only db2 is wanted)
    dw = Tensor::empty({x2.size(1), out}, g2.dtype(), g2.device());
    mm_into(x2, g2, dw, true, false, false);
  }
  if (want_b) {
    db = Tensor::empty({out}, g2.dtype(), g2.device());
    ARIA_DISPATCH(g2.device(), sum_to, g2, db.reshape({1, out}));
  }
  return {dw, db};
}

void check_gelu_mlp(const Tensor& x, const GeluMlpWeights& w, const char* what) {
  check_float(x, what, "x");
  for (const Tensor* t : {&w.w1, &w.b1, &w.w2, &w.b2}) {
    check_float(*t, what, "weight");
    check_pair(x, *t, what);
  }
  ARIA_CHECK(x.dim() >= 1 && w.w1.dim() == 2 && w.w2.dim() == 2 && x.size(-1) == w.w1.size(0) &&
                 w.w2.size(0) == w.w1.size(1) && w.b1.shape() == Shape{w.w1.size(1)} &&
                 w.b2.shape() == Shape{w.w2.size(1)},
             what, ": shapes do not chain: x ", x.str(), ", w1 ", w.w1.str(), ", b1 ", w.b1.str(), ", w2 ", w.w2.str(),
             ", b2 ", w.b2.str());
}

GeluMlpRows gelu_mlp_rows_forward(const Tensor& x2, const GeluMlpWeights& w, const Tensor& out2) {
  GeluMlpRows s;
  s.N = x2.size(0);
  s.C = w.w1.size(0);
  s.H = w.w1.size(1);
  s.C2 = w.w2.size(1);
  s.x2 = x2.detach();
  s.w1 = w.w1.detach();
  s.w2 = w.w2.detach();
  const Device dev = x2.device();
  s.pre = Tensor::empty({s.N, s.H}, x2.dtype(), dev);
  Tensor h = Tensor::empty({s.N, s.H}, x2.dtype(), dev);
  gemm_ep(s.x2, s.w1, h, false, false, GemmEpilogue::Gelu, w.b1.detach(), s.pre);
  gemm_ep(h, s.w2, out2, false, false, GemmEpilogue::Bias, w.b2.detach());
  // With recomputation only the pre-activation is kept; gelu(pre) is rebuilt in backward (one
  // elementwise pass) instead of holding an [N, 4C] activation per layer until then.
  if (!context().recompute_activations) s.h = h;
  s.gw1 = w.w1.requires_grad();
  s.gb1 = w.b1.requires_grad();
  s.gw2 = w.w2.requires_grad();
  s.gb2 = w.b2.requires_grad();
  return s;
}

GeluMlpWeights gelu_mlp_rows_backward(const GeluMlpRows& s, const Tensor& g2, const Tensor& dx, bool accumulate) {
  const int64_t N = s.N, H = s.H;
  const Device dev = s.pre.device();
  const DType dt = s.pre.dtype();
  Tensor h = s.h;
  if (!h.defined() && s.gw2) {
    h = Tensor::empty({N, H}, dt, dev);
    ARIA_DISPATCH(dev, unary, int(UnaryOp::Gelu), s.pre, h, 1.0, 0.0);
  }
  GeluMlpWeights d;
  std::tie(d.w2, d.b2) = linear_param_grads(h, g2, s.gw2, s.gb2);
  if (!dx.defined() && !s.gw1 && !s.gb1) return d;
  // d(pre) = (g W2^T) * gelu'(pre) as a plain GEMM and one elementwise pass that also sums db1 (so
  // dpre is not read again for it): cuBLASLt's DGELU_BGRAD epilogue is slower, and its DGELU epilogue
  // alone moved the gated bf16 loss curve past its test's allowance (docs/perf.md).
  Tensor dpre = Tensor::empty({N, H}, dt, dev);
  mm_into(g2, s.w2, dpre, false, true, false);
  if (s.gb1) {
    d.b1 = Tensor::empty({H}, dt, dev);
    ARIA_DISPATCH(dev, gelu_backward_bias_grad, s.pre, dpre, dpre, d.b1);
  } else {
    ARIA_DISPATCH(dev, unary_backward, int(UnaryOp::Gelu), s.pre, Tensor(), dpre, dpre, 0.0);
  }
  // db1 came out of the dGELU pass above: only dW1 here.
  d.w1 = linear_param_grads(s.x2, dpre, s.gw1, false).first;
  if (dx.defined()) mm_into(dpre, s.w1, dx, false, true, accumulate);
  return d;
}

}  // namespace detail

Tensor gelu_mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  const char* what = "gelu_mlp";
  check_gelu_mlp(x, {w1, b1, w2, b2}, what);
  const int64_t C = w1.size(0), C2 = w2.size(1), N = x.numel() / C;
  const Tensor xc = x.contiguous();
  const GeluMlpWeights w{w1.contiguous(), b1.contiguous(), w2.contiguous(), b2.contiguous()};
  Shape out_shape = x.shape();
  out_shape.back() = C2;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  GeluMlpRows rows = gelu_mlp_rows_forward(flat_rows(xc, N, C), w, flat_rows(out, N, C2));
  if (!needs_grad({&xc, &w.w1, &w.b1, &w.w2, &w.b2})) return out;
  const bool gx = xc.requires_grad();
  record_op(what, {xc, w.w1, w.b1, w.w2, w.b2}, {out},
            [=, rows = std::move(rows), xs = x.shape()](const std::vector<Tensor>& g) {
              const Tensor dx = gx ? Tensor::empty({N, C}, rows.x2.dtype(), rows.x2.device()) : Tensor();
              const GeluMlpWeights d = gelu_mlp_rows_backward(rows, flat_rows(g[0].contiguous(), N, C2), dx, false);
              return std::vector<Tensor>{gx ? dx.reshape(xs) : Tensor(), d.w1, d.b1, d.w2, d.b2};
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

}  // namespace aria::ops
