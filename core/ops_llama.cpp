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

}  // namespace aria::ops
