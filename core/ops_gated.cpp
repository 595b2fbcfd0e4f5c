// Fused ops of ARIA's gated MLP: the gate's mix of the slow and fast pathways, and the whole gated
// MLP as one op. Written with the plain ops, out = slow + pi * (fast - slow) takes three elementwise
// passes forward and, backward, about eight passes over [N, C] plus a row reduction for pi's
// gradient; the gate_mix rows do one pass each way. gated_mlp adds the gate's C -> 1 head as two
// rows of its own (no GEMM with one output column, no separate relu / sigmoid passes) and lets the
// GEMMs sum the three branches' input gradients (tests/test_gated_fused.cpp checks the equality with
// the plain composition, tests/support/cases_gated.cpp the gradients).
#include <array>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/core/ops_fused.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

Tensor rows_view(const Tensor& t, int64_t N, int64_t C) { return t.detach().reshape({N, C}); }

}  // namespace

Tensor gate_mix(const Tensor& slow, const Tensor& fast, const Tensor& pi) {
  const char* what = "gate_mix";
  check_float(slow, what, "slow");
  check_float(fast, what, "fast");
  check_float(pi, what, "pi");
  check_pair(slow, fast, what);
  check_pair(slow, pi, what);
  ARIA_CHECK(slow.dim() >= 1, what, ": slow must be [..., C], got ", slow.str());
  ARIA_CHECK(fast.shape() == slow.shape(), what, ": slow ", slow.str(), " and fast ", fast.str(),
             " must have the same shape");
  Shape pi_shape = slow.shape();
  pi_shape.back() = 1;
  ARIA_CHECK(pi.shape() == pi_shape, what, ": pi must be ", shape_str(pi_shape), " (one gate value per row of slow ",
             slow.str(), "), got ", pi.str());
  const int64_t C = slow.size(-1), N = pi.numel();
  const Tensor sc = slow.contiguous(), fc = fast.contiguous(), pc = pi.contiguous();
  const Device dev = slow.device();
  const DType dt = slow.dtype();
  Tensor out = Tensor::empty(slow.shape(), dt, dev);
  ARIA_DISPATCH(dev, gate_mix_forward, rows_view(sc, N, C), rows_view(fc, N, C), pc.detach().reshape({N}),
                rows_view(out, N, C));
  if (!needs_grad({&sc, &fc, &pc})) return out;
  const bool gs = sc.requires_grad(), gf = fc.requires_grad(), gp = pc.requires_grad();
  // slow and fast are kept only for pi's gradient.
  record_op(what, {sc, fc, pc}, {out},
            [=, ss = gp ? sc.detach() : Tensor(), fs = gp ? fc.detach() : Tensor(), ps = pc.detach(),
             shape = slow.shape()](const std::vector<Tensor>& g) {
              const Tensor dout = rows_view(g[0].contiguous(), N, C);
              Tensor ds, df, dp;
              if (gs) ds = Tensor::empty(shape, dt, dev);
              if (gf) df = Tensor::empty(shape, dt, dev);
              if (gp) dp = Tensor::empty(pi_shape, dt, dev);
              // Without dpi the kernel reads neither slow nor fast: dout stands in for them (same geometry).
              const Tensor s2 = gp ? rows_view(ss, N, C) : dout, f2 = gp ? rows_view(fs, N, C) : dout;
              ARIA_DISPATCH(dev, gate_mix_backward, s2, f2, ps.reshape({N}), dout,
                            gs ? rows_view(ds, N, C) : Tensor(), gf ? rows_view(df, N, C) : Tensor(),
                            gp ? dp.reshape({N}) : Tensor());
              return std::vector<Tensor>{ds, df, dp};
            });
  return out;
}

namespace {

// The gate's checks: gate_w1 [C, G], gate_b1 [G], gate_w2 [G, 1], gate_b2 [1] for x [..., C].
void check_gate_weights(const Tensor& x, const GatedMlpWeights& w, const char* what) {
  for (const Tensor* t : {&w.gate_w1, &w.gate_b1, &w.gate_w2, &w.gate_b2}) {
    check_float(*t, what, "gate weight");
    check_pair(x, *t, what);
  }
  const Tensor &w1 = w.gate_w1, &w2 = w.gate_w2;
  ARIA_CHECK(w1.dim() == 2 && w1.size(0) == x.size(-1) && w.gate_b1.shape() == Shape{w1.size(1)} &&
                 w2.shape() == (Shape{w1.size(1), 1}) && w.gate_b2.shape() == Shape{1},
             what, ": the gate's shapes do not chain: x ", x.str(), ", gate_w1 ", w1.str(), ", gate_b1 ",
             w.gate_b1.str(), ", gate_w2 ", w2.str(), " (must be [G, 1]), gate_b2 ", w.gate_b2.str(), " (must be [1])");
}

GeluMlpWeights contiguous_weights(const GeluMlpWeights& w) {
  return {w.w1.contiguous(), w.b1.contiguous(), w.w2.contiguous(), w.b2.contiguous()};
}

bool any_requires_grad(const GeluMlpWeights& w) {
  return w.w1.requires_grad() || w.b1.requires_grad() || w.w2.requires_grad() || w.b2.requires_grad();
}

}  // namespace

std::pair<Tensor, Tensor> gated_mlp(const Tensor& x, const GatedMlpWeights& weights) {
  const char* what = "gated_mlp";
  check_gelu_mlp(x, weights.fast, "gated_mlp (fast pathway)");
  check_gelu_mlp(x, weights.slow, "gated_mlp (slow pathway)");
  check_gate_weights(x, weights, what);
  ARIA_CHECK(weights.fast.w2.size(1) == weights.slow.w2.size(1), what, ": the pathways' outputs differ: fast w2 ",
             weights.fast.w2.str(), ", slow w2 ", weights.slow.w2.str());
  const int64_t C = x.size(-1), G = weights.gate_w1.size(1), C2 = weights.fast.w2.size(1);
  int64_t N = 1;  // rows: the leading dims (x.numel() / C would divide by 0 for C = 0)
  for (int d = 0; d + 1 < x.dim(); ++d) N *= x.size(d);
  const Tensor xc = x.contiguous();
  const GeluMlpWeights fast = contiguous_weights(weights.fast), slow = contiguous_weights(weights.slow);
  const Tensor gw1 = weights.gate_w1.contiguous(), gb1 = weights.gate_b1.contiguous(),
               gw2 = weights.gate_w2.contiguous(), gb2 = weights.gate_b2.contiguous();
  const Device dev = x.device();
  const DType dt = x.dtype();
  const Tensor x2 = rows_view(xc, N, C);
  Shape pi_shape = x.shape(), out_shape = x.shape();
  pi_shape.back() = 1;
  out_shape.back() = C2;
  const bool grad = needs_grad({&xc, &fast.w1, &fast.b1, &fast.w2, &fast.b2, &slow.w1, &slow.b1, &slow.w2, &slow.b2,
                                &gw1, &gb1, &gw2, &gb2});
  // The gate: its hidden pre-activation from one GEMM (bias epilogue), kept for the backward in place
  // of the rectified layer; the head's row applies relu, the dot with gate_w2 and the sigmoid.
  const Tensor hg = Tensor::empty({N, G}, dt, dev), pi = Tensor::empty(pi_shape, dt, dev);
  gemm_ep(x2, gw1.detach(), hg, false, false, GemmEpilogue::Bias, gb1.detach());
  const Tensor pi_rows = pi.detach().reshape({N}), gw2_flat = gw2.detach().reshape({G});
  // The unrounded logits, for the backward's sigmoid derivative (stat_dtype: float32 for bfloat16).
  const Tensor logit = grad ? Tensor::empty({N}, stat_dtype(dt), dev) : Tensor();
  ARIA_DISPATCH(dev, gate_head_forward, hg, gw2_flat, gb2.detach(), pi_rows, logit);
  const Tensor fast_out = Tensor::empty({N, C2}, dt, dev), slow_out = Tensor::empty({N, C2}, dt, dev);
  GeluMlpRows fast_rows = gelu_mlp_rows_forward(x2, fast, fast_out);
  GeluMlpRows slow_rows = gelu_mlp_rows_forward(x2, slow, slow_out);
  const Tensor out = Tensor::empty(out_shape, dt, dev);
  ARIA_DISPATCH(dev, gate_mix_forward, slow_out, fast_out, pi_rows, rows_view(out, N, C2));
  if (!grad) return {out, pi};
  const bool gx = xc.requires_grad(), g_fast = any_requires_grad(fast), g_slow = any_requires_grad(slow);
  const bool g_gw1 = gw1.requires_grad(), g_gb1 = gb1.requires_grad(), g_gw2 = gw2.requires_grad(),
             g_gb2 = gb2.requires_grad();
  // pi's gradient feeds the gate's weights and, through the gate's first GEMM, x. The pathways'
  // outputs are kept only for it (the mix's dpi).
  const bool g_pi = gx || g_gw1 || g_gb1 || g_gw2 || g_gb2;
  const bool g_gate_hidden = gx || g_gw1 || g_gb1;
  record_op(
      what,
      {xc, fast.w1, fast.b1, fast.w2, fast.b2, slow.w1, slow.b1, slow.w2, slow.b2, gw1, gb1, gw2, gb2},
      {out, pi},
      [=, fast_rows = std::move(fast_rows), slow_rows = std::move(slow_rows), fast_saved = g_pi ? fast_out : Tensor(),
       slow_saved = g_pi ? slow_out : Tensor(), gw1s = gw1.detach(), xs = x.shape()](const std::vector<Tensor>& g) {
        // 1. The mix: the pathways' output gradients and dpi, plus whatever reached pi directly.
        Tensor dfast, dslow, dpi;
        if (g[0].defined()) {
          const Tensor dout = rows_view(g[0].contiguous(), N, C2);
          if (gx || g_fast) dfast = Tensor::empty({N, C2}, dt, dev);
          if (gx || g_slow) dslow = Tensor::empty({N, C2}, dt, dev);
          if (g_pi) dpi = Tensor::empty({N}, dt, dev);
          // Without dpi the kernel reads neither slow nor fast: dout stands in for them (same geometry).
          ARIA_DISPATCH(dev, gate_mix_backward, g_pi ? slow_saved : dout, g_pi ? fast_saved : dout, pi_rows, dout,
                        dslow, dfast, dpi);
          if (g_pi && g[1].defined()) ARIA_DISPATCH(dev, axpy, dpi, g[1].contiguous().detach().reshape({N}), 1.0);
        } else if (g_pi) {
          dpi = g[1].contiguous().detach().reshape({N});
        }
        // 2. The gate's head, then its first linear: dx starts as the gate branch's share (written),
        // and the pathways' GEMMs add theirs into it (beta = 1).
        Tensor dx = gx ? Tensor::empty({N, C}, dt, dev) : Tensor();
        bool dx_written = false;
        std::array<Tensor, 4> dgate;  // gate_w1, gate_b1, gate_w2, gate_b2
        if (dpi.defined()) {
          const Tensor dhg = g_gate_hidden ? Tensor::empty({N, G}, dt, dev) : Tensor();
          if (g_gw2) dgate[2] = Tensor::empty({G, 1}, dt, dev);
          if (g_gb2) dgate[3] = Tensor::empty({1}, dt, dev);
          ARIA_DISPATCH(dev, gate_head_backward, hg, gw2_flat, logit, dpi, dhg,
                        g_gw2 ? dgate[2].reshape({G}) : Tensor(), dgate[3]);
          std::tie(dgate[0], dgate[1]) = linear_param_grads(x2, dhg, g_gw1, g_gb1);
          if (gx) {
            mm_into(dhg, gw1s, dx, false, true, false);
            dx_written = true;
          }
        }
        // 3. The pathways.
        GeluMlpWeights dslow_w, dfast_w;
        if (dslow.defined()) {
          dslow_w = gelu_mlp_rows_backward(slow_rows, dslow, dx, dx_written);
          dx_written = dx_written || gx;
        }
        if (dfast.defined()) {
          dfast_w = gelu_mlp_rows_backward(fast_rows, dfast, dx, dx_written);
          dx_written = dx_written || gx;
        }
        return std::vector<Tensor>{dx_written ? dx.reshape(xs) : Tensor(),
                                   dfast_w.w1, dfast_w.b1, dfast_w.w2, dfast_w.b2,
                                   dslow_w.w1, dslow_w.b1, dslow_w.w2, dslow_w.b2,
                                   dgate[0], dgate[1], dgate[2], dgate[3]};
      });
  return {out, pi};
}

}  // namespace aria::ops
