// Llama-family ops (core/ops_llama.h): each checks its inputs, runs the device's kernel on flattened
// [N, C] views (kernels/cpu/<family>.cpp, kernels/cuda/<family>.cu) and records one tape node whose
// backward calls the matching backward kernel.
#include "aria/core/ops_llama.h"

#include <cmath>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/ops_check.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

Tensor flat_rows(const Tensor& t, int64_t N, int64_t C) { return t.detach().reshape({N, C}); }

// x [..., C] (C > 0) with w [C], one float dtype and device; returns C.
int64_t check_norm_inputs(const Tensor& x, const Tensor& w, const char* what) {
  check_float(x, what, "x");
  check_float(w, what, "w");
  check_pair(x, w, what);
  ARIA_CHECK(x.dim() >= 1 && x.size(-1) > 0, what, ": x needs a non-empty last dimension, got ", x.str());
  ARIA_CHECK(w.shape() == Shape{x.size(-1)}, what, ": w must be [", x.size(-1), "] for x ", x.str(), ", got ",
             w.str());
  return x.size(-1);
}

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps) {
  const char* what = "rmsnorm";
  const int64_t C = check_norm_inputs(x, w, what), N = x.numel() / C;
  const Tensor xc = x.contiguous(), wc = w.contiguous();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor rstd = Tensor::empty({N}, stat_dtype(x.dtype()), dev);
  ARIA_DISPATCH(dev, rmsnorm_forward, flat_rows(xc, N, C), wc.detach(), flat_rows(y, N, C), rstd, eps);
  if (needs_grad({&xc, &wc})) {
    record_op(what, {xc, wc}, {y}, [=, xs = xc.detach(), ws = wc.detach()](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), dev);
      Tensor dw = Tensor::zeros({C}, ws.dtype(), dev);
      ARIA_DISPATCH(dev, rmsnorm_backward, flat_rows(xs, N, C), ws, rstd, flat_rows(g[0].contiguous(), N, C),
                    Tensor(), flat_rows(dx, N, C), dw);
      return std::vector<Tensor>{dx, dw};
    });
  }
  return y;
}

std::pair<Tensor, Tensor> add_rmsnorm(const Tensor& x, const Tensor& r, const Tensor& w, double eps) {
  const char* what = "add_rmsnorm";
  const int64_t C = check_norm_inputs(x, w, what), N = x.numel() / C;
  check_float(r, what, "r");
  check_pair(x, r, what);
  ARIA_CHECK(x.shape() == r.shape(), what, ": x ", x.str(), " and r ", r.str(), " must have the same shape");
  const Tensor xc = x.contiguous(), rc = r.contiguous(), wc = w.contiguous();
  const Device dev = x.device();
  Tensor sum = Tensor::empty(x.shape(), x.dtype(), dev), y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor rstd = Tensor::empty({N}, stat_dtype(x.dtype()), dev);
  ARIA_DISPATCH(dev, add_rmsnorm_forward, flat_rows(xc, N, C), flat_rows(rc, N, C), wc.detach(), flat_rows(sum, N, C),
                flat_rows(y, N, C), rstd, eps);
  if (needs_grad({&xc, &rc, &wc})) {
    record_op(what, {xc, rc, wc}, {sum, y}, [=, ss = sum.detach(), ws = wc.detach()](const std::vector<Tensor>& g) {
      // d(sum) = g_sum + RMSNorm'(g_y); x and r both receive it.
      if (!g[1].defined()) return std::vector<Tensor>{g[0], g[0], Tensor()};
      Tensor dsum = Tensor::empty(ss.shape(), ss.dtype(), dev);
      Tensor dw = Tensor::zeros({C}, ws.dtype(), dev);
      const Tensor gs = g[0].defined() ? flat_rows(g[0].contiguous(), N, C) : Tensor();
      ARIA_DISPATCH(dev, rmsnorm_backward, flat_rows(ss, N, C), ws, rstd, flat_rows(g[1].contiguous(), N, C), gs,
                    flat_rows(dsum, N, C), dw);
      return std::vector<Tensor>{dsum, dsum, dw};
    });
  }
  return {sum, y};
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  const char* what = "swiglu";
  check_float(gate, what, "gate");
  check_float(up, what, "up");
  check_pair(gate, up, what);
  ARIA_CHECK(gate.shape() == up.shape(), what, ": gate ", gate.str(), " and up ", up.str(),
             " must have the same shape");
  ARIA_CHECK(gate.dim() >= 1, what, ": gate must have at least one dimension, got ", gate.str());
  const int64_t H = gate.size(-1), N = H ? gate.numel() / H : 0;
  const Tensor gc = gate.contiguous(), uc = up.contiguous();
  const Device dev = gate.device();
  Tensor out = Tensor::empty(gate.shape(), gate.dtype(), dev);
  ARIA_DISPATCH(dev, swiglu_forward, flat_rows(gc, N, H), flat_rows(uc, N, H), flat_rows(out, N, H));
  if (needs_grad({&gc, &uc})) {
    const bool want_g = gc.requires_grad(), want_u = uc.requires_grad();
    record_op(what, {gc, uc}, {out}, [=, gs = gc.detach(), us = uc.detach()](const std::vector<Tensor>& g) {
      Tensor dg = want_g ? Tensor::empty(gs.shape(), gs.dtype(), dev) : Tensor();
      Tensor du = want_u ? Tensor::empty(us.shape(), us.dtype(), dev) : Tensor();
      ARIA_DISPATCH(dev, swiglu_backward, flat_rows(gs, N, H), flat_rows(us, N, H), flat_rows(g[0].contiguous(), N, H),
                    want_g ? flat_rows(dg, N, H) : Tensor(), want_u ? flat_rows(du, N, H) : Tensor());
      return std::vector<Tensor>{dg, du};
    });
  }
  return out;
}

Tensor swiglu_packed(const Tensor& gate_up) {
  const char* what = "swiglu_packed";
  check_float(gate_up, what, "gate_up");
  ARIA_CHECK(gate_up.dim() >= 1 && gate_up.size(-1) % 2 == 0, what,
             ": gate_up must be [..., 2H] (an even last dimension), got ", gate_up.str());
  const int64_t H2 = gate_up.size(-1), H = H2 / 2, N = H2 ? gate_up.numel() / H2 : 0;
  const Tensor xc = gate_up.contiguous();
  const Device dev = gate_up.device();
  Shape out_shape = gate_up.shape();
  out_shape.back() = H;
  Tensor out = Tensor::empty(out_shape, gate_up.dtype(), dev);
  const Tensor rows = flat_rows(xc, N, H2);
  ARIA_DISPATCH(dev, swiglu_forward, rows.slice(1, 0, H), rows.slice(1, H, H2), flat_rows(out, N, H));
  if (needs_grad({&xc})) {
    record_op(what, {xc}, {out}, [=, shape = xc.shape(), dt = xc.dtype()](const std::vector<Tensor>& g) {
      Tensor d = Tensor::empty(shape, dt, dev);
      const Tensor drows = flat_rows(d, N, H2);
      ARIA_DISPATCH(dev, swiglu_backward, rows.slice(1, 0, H), rows.slice(1, H, H2), flat_rows(g[0].contiguous(), N, H),
                    drows.slice(1, 0, H), drows.slice(1, H, H2));
      return std::vector<Tensor>{d};
    });
  }
  return out;
}

// ---- rotary position embeddings ----
//
// Hugging Face's inverse frequencies (transformers, modeling_rope_utils.py), for i = 0 .. D/2 - 1:
//   default:  inv_freq[i] = 1 / theta^(2i / D)
//   llama3 (factor s, low_freq_factor l, high_freq_factor h, original_max_position_embeddings L):
//     the wavelength of frequency i is wavelen = 2 pi / inv_freq[i]; with low_freq_wavelen = L / l
//     and high_freq_wavelen = L / h (so high_freq_wavelen <= low_freq_wavelen),
//       wavelen <  high_freq_wavelen                    -> inv_freq[i]           (kept: fast rotations)
//       wavelen >  low_freq_wavelen                     -> inv_freq[i] / s       (slow ones stretched by s)
//       otherwise, with smooth = (L / wavelen - l) / (h - l) in [0, 1]
//                                                       -> (1 - smooth) * inv_freq[i] / s + smooth * inv_freq[i]
//     i.e. a linear blend in L / wavelen (the number of turns within the original context) between
//     the stretched and the kept frequency. attention_factor is 1 for both types.
// Transformers evaluates this in float32, one rounded operation at a time; the steps below mirror it
// (a / tensor is tensor.reciprocal() * a in PyTorch), each stored through a volatile float so the
// compiler fuses nothing. The one step that may differ is theta^(2i/D): evaluated here in double and
// rounded once, where torch's float32 pow is within one ulp of that.
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling) {
  const char* what = "rope_inv_freq";
  ARIA_CHECK(head_dim > 0 && head_dim % 2 == 0, what, ": head_dim must be even and positive, got ", head_dim);
  ARIA_CHECK(theta > 0 && std::isfinite(theta), what, ": rope_theta must be positive and finite, got ", theta);
  const bool llama3 = scaling.type == "llama3";
  ARIA_CHECK(llama3 || scaling.type == "default", what, ": rope_scaling type \"", scaling.type,
             "\" is not supported (supported: default, llama3)");
  std::vector<float> inv(size_t(head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) {
    volatile float e = float(2 * i) / float(head_dim);
    volatile float p = float(std::pow(double(float(theta)), double(e)));
    inv[i] = 1.0f / p;
  }
  if (!llama3) return inv;
  const double s = scaling.factor, l = scaling.low_freq_factor, h = scaling.high_freq_factor;
  const double L = scaling.original_max_position_embeddings;
  ARIA_CHECK(s > 0 && std::isfinite(s), what, ": llama3 rope_scaling factor must be positive, got ", s);
  ARIA_CHECK(l > 0 && h > l && std::isfinite(h), what,
             ": llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor, got ", l, " and ", h);
  ARIA_CHECK(L > 0 && std::isfinite(L), what, ": llama3 original_max_position_embeddings must be positive, got ", L);
  const float low_wavelen = float(L / l), high_wavelen = float(L / h);  // Python floats compared in float32
  const float two_pi = float(2 * M_PI), fs = float(s), fl = float(l), fhl = float(h - l), fL = float(L);
  for (float& f : inv) {
    volatile float recip = 1.0f / f;
    volatile float wavelen = recip * two_pi;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f = f / fs;
      continue;
    }
    volatile float turns = (1.0f / wavelen) * fL;
    volatile float smooth = (turns - fl) / fhl;
    volatile float a = ((1.0f - smooth) * f) / fs;
    volatile float b = smooth * f;
    f = a + b;
  }
  return inv;
}

std::pair<Tensor, Tensor> rope_tables(const Tensor& positions, const Tensor& inv_freq) {
  const char* what = "rope_tables";
  check_ints(positions, what, "positions");
  ARIA_CHECK(inv_freq.defined() && (inv_freq.dtype() == DType::F32 || inv_freq.dtype() == DType::F64), what,
             ": inv_freq must be float32 or float64, got ", inv_freq.defined() ? inv_freq.str() : "undefined");
  check_same_device(positions, inv_freq, what);
  ARIA_CHECK(inv_freq.dim() == 1 && inv_freq.size(0) > 0, what, ": inv_freq must be [D/2], got ", inv_freq.str());
  const Tensor pos = positions.contiguous().detach().reshape({positions.numel()});
  if (pos.device().is_cuda()) check_ids_in_range(pos, INT32_MAX, what);  // the CPU kernel checks itself
  const int64_t P = pos.numel(), half = inv_freq.size(0);
  Tensor cos = Tensor::empty({P, half}, inv_freq.dtype(), inv_freq.device());
  Tensor sin = Tensor::empty({P, half}, inv_freq.dtype(), inv_freq.device());
  ARIA_DISPATCH(pos.device(), rope_table, pos, inv_freq.contiguous().detach(), cos, sin);
  return {cos, sin};
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int n_rot, int head_dim) {
  const char* what = "rope";
  check_float(x, what, "x");
  ARIA_CHECK(x.dim() >= 1 && x.size(-1) > 0, what, ": x needs a non-empty last dimension, got ", x.str());
  const DType tdt = stat_dtype(x.dtype());
  ARIA_CHECK(cos.defined() && sin.defined() && cos.dtype() == tdt && sin.dtype() == tdt, what, ": cos and sin must be ",
             dtype_name(tdt), " for x ", x.str(), " (as rope_tables makes them)");
  check_same_device(x, cos, what);
  check_same_device(x, sin, what);
  ARIA_CHECK(cos.shape() == sin.shape() && cos.dim() == 2, what, ": cos ", cos.str(), " and sin ", sin.str(),
             " must be one [P, D/2] shape");
  const int64_t W = x.size(-1), R = x.numel() / W;
  const Tensor xc = x.contiguous(), cc = cos.contiguous().detach(), sc = sin.contiguous().detach();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  ARIA_DISPATCH(dev, rope_apply, flat_rows(xc, R, W), cc, sc, flat_rows(y, R, W), n_rot, head_dim, false);
  if (needs_grad({&xc})) {
    record_op(what, {xc}, {y}, [=, shape = xc.shape(), dt = xc.dtype()](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(shape, dt, dev);
      ARIA_DISPATCH(dev, rope_apply, flat_rows(g[0].contiguous(), R, W), cc, sc, flat_rows(dx, R, W), n_rot, head_dim,
                    true);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

Tensor gqa_attention(const Tensor& qkv, int n_head, int n_kv_head, int window) {
  const char* what = "gqa_attention";
  check_float(qkv, what, "qkv");
  ARIA_CHECK(qkv.dim() == 3, what, ": qkv must be [B, T, (n_head + 2 n_kv_head) head_dim], got ", qkv.str());
  ARIA_CHECK(n_head > 0 && n_kv_head > 0 && n_head % n_kv_head == 0, what, ": n_kv_head = ", n_kv_head,
             " must divide n_head = ", n_head);
  ARIA_CHECK(window >= 0, what, ": window must be >= 0 (0: none), got ", window);
  const int64_t heads = n_head + 2 * int64_t(n_kv_head);
  ARIA_CHECK(qkv.size(2) > 0 && qkv.size(2) % heads == 0, what, ": the last dimension ", qkv.size(2), " of ",
             qkv.str(), " is not n_head + 2 n_kv_head = ", heads, " heads");
  const int64_t B = qkv.size(0), T = qkv.size(1), hd = qkv.size(2) / heads;
  const Tensor qc = qkv.contiguous();
  const Device dev = qkv.device();
  Tensor out = Tensor::empty({B, T, int64_t(n_head) * hd}, qkv.dtype(), dev);
  Tensor lse = Tensor::empty({B, int64_t(n_head), T}, stat_dtype(qkv.dtype()), dev);
  ARIA_DISPATCH(dev, attention_gqa_forward, qc.detach(), out, lse, n_head, n_kv_head, window);
  if (needs_grad({&qc})) {
    record_op(what, {qc}, {out},
              [=, qs = qc.detach(), os = out.detach()](const std::vector<Tensor>& g) {
                Tensor dqkv = Tensor::empty(qs.shape(), qs.dtype(), dev);
                ARIA_DISPATCH(dev, attention_gqa_backward, qs, os, lse, g[0].contiguous(), dqkv, n_head, n_kv_head,
                              window);
                return std::vector<Tensor>{dqkv};
              });
  }
  return out;
}

}  // namespace aria::ops
