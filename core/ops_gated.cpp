// Fused ops of ARIA's gated MLP: the gate's mix of the slow and fast pathways. Written with the
// plain ops, out = slow + pi * (fast - slow) takes three elementwise passes forward and, backward,
// about eight passes over [N, C] plus a row reduction for pi's gradient; the gate_mix rows do one
// pass each way (tests/test_gated_fused.cpp checks the equality, tests/support/cases_gated.cpp the
// gradients).
#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_check.h"
#include "kernels/kernels.h"

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

}  // namespace aria::ops
