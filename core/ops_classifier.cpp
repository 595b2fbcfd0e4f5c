// The fused classifier: lm head GEMM + cross-entropy forward and backward without keeping the
// logits of the whole batch (see lm_head_cross_entropy in core/ops.h).
#include <algorithm>
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

// Rows of logits computed at a time: at most Context::lm_head_chunk_bytes of logits alive at once
// (GPT-2's vocabulary of 50304 at 16384 tokens would hold 1.6 GB in bfloat16 until the backward), in
// equal chunks rounded up to 64 rows so that the GEMMs keep full tiles.
int64_t logits_chunk_rows(int64_t N, int64_t V, DType t) {
  const int64_t budget = std::max<int64_t>(1, context().lm_head_chunk_bytes / int64_t(dtype_size(t)));
  const int64_t chunks = std::max<int64_t>(1, (N * V + budget - 1) / budget);
  const int64_t rows = (N + chunks - 1) / chunks;
  return std::max<int64_t>(1, std::min(N, rows >= 64 ? (rows + 63) / 64 * 64 : rows));
}

}  // namespace

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
  const DType dt = hidden.dtype();
  const Tensor h2 = hc.detach().reshape({N, C}), t = targets.contiguous().detach().reshape({N}), wd = wc.detach();
  const bool grad = needs_grad({&hc, &wc});
  const bool gh = grad && hc.requires_grad(), gw = grad && wc.requires_grad();
  // With gradients, each chunk's logits are overwritten by softmax - onehot (d(loss_n)/d(logits))
  // and multiplied into dh and dW right away with the mean's 1/count as the GEMMs' alpha, so no
  // logits outlive the forward; the backward only scales by the upstream gradient, read on the
  // device (usually exactly 1: no second rounding of bfloat16 gradients).
  Tensor losses = Tensor::empty({N}, stat_dtype(dt), dev);
  Tensor lse = grad ? Tensor() : Tensor::empty({N}, stat_dtype(dt), dev);
  Tensor dh_u = gh ? Tensor::empty({N, C}, dt, dev) : Tensor();
  Tensor dw_u = gw ? (N == 0 ? Tensor::zeros({V, C}, dt, dev) : Tensor::empty({V, C}, dt, dev)) : Tensor();
  const int64_t R = logits_chunk_rows(N, V, dt);
  const Tensor buf = Tensor::empty({std::min(R, N), V}, dt, dev);
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t r1 = std::min(N, r0 + R);
    const Tensor hs = h2.slice(0, r0, r1), ts = t.slice(0, r0, r1), ls = losses.slice(0, r0, r1);
    const Tensor logits = buf.slice(0, 0, r1 - r0);
    mm_into(hs, wd, logits, false, true, false);
    if (!grad) {
      ARIA_DISPATCH(dev, cross_entropy_forward, logits, ts, ls, lse.slice(0, r0, r1), ignore_index);
      continue;
    }
    ARIA_DISPATCH(dev, cross_entropy_fused, logits, ts, ls, ignore_index);
    const double inv_count = count ? 1.0 / double(count) : 0.0;
    if (gh) mm_into(logits, wd, dh_u.slice(0, r0, r1), false, false, false, inv_count);
    if (gw) mm_into(logits, hs, dw_u, true, false, r0 > 0, inv_count);
  }
  Tensor out;
  {
    NoGradGuard no_grad;
    out = count ? scale(sum(losses), 1.0 / double(count)) : Tensor::zeros({}, losses.dtype(), dev);
  }
  if (!grad) return out;
  record_op(what, {hc, wc}, {out}, [=, hs = hidden.shape()](const std::vector<Tensor>& g) {
    const Tensor s = g[0].reshape({1});
    Tensor dh, dw;
    if (gh) {
      dh = Tensor::empty({N, C}, dt, dev);
      ARIA_DISPATCH(dev, scale_by, dh_u, s, dh);
      dh = dh.reshape(hs);
    }
    if (gw) {
      dw = Tensor::empty({V, C}, dt, dev);
      ARIA_DISPATCH(dev, scale_by, dw_u, s, dw);
    }
    return std::vector<Tensor>{dh, dw};
  });
  return out;
}

void count_correct_into(const Tensor& logits, const Tensor& labels, const Tensor& out) {
  const char* what = "count_correct_into";
  check_float(logits, what, "logits");
  check_ints(labels, what, "labels");
  ARIA_CHECK(out.defined(), what, ": out is undefined");
  check_same_device(logits, labels, what);
  check_same_device(logits, out, what);
  ARIA_CHECK(logits.dim() >= 1 && logits.size(-1) >= 1, what, ": logits must be [..., C] with C >= 1 classes, got ",
             logits.str());
  const Shape lead(logits.shape().begin(), logits.shape().end() - 1);
  ARIA_CHECK(labels.shape() == lead, what, ": labels ", labels.str(), " must have logits' leading shape ",
             shape_str(lead), " (logits ", logits.str(), ")");
  ARIA_CHECK(out.dtype() == DType::F64 && out.numel() == 1 && out.is_contiguous(), what,
             ": out must be one float64 value ([1]), got ", out.str());
  const int64_t C = logits.size(-1), N = labels.numel();
  const Tensor l2 = logits.detach().contiguous().reshape({N, C}), t = labels.detach().contiguous().reshape({N});
  ARIA_DISPATCH(logits.device(), count_correct, l2, t, out.detach().reshape({1}));
}

}  // namespace aria::ops
