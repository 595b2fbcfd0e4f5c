// Neural-network ops: embedding, layernorm, softmax, causal attention, cross-entropy. Each checks its
// inputs, runs the device's kernel on flattened [N, C] views and records one tape node whose backward
// calls the matching backward kernel (kernels/cpu/<op>.cpp, kernels/cuda/<op>.cu).
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

// Detached [N, C] view of a contiguous tensor whose last dimension is C.
Tensor rows_view(const Tensor& t) {
  const int64_t C = t.shape().back();
  return t.detach().reshape({C ? t.numel() / C : 0, C});
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* what = "embedding";
  check_float(weight, what, "weight");
  check_ints(ids, what, "ids");
  ARIA_CHECK(weight.dim() == 2, what, ": weight must be [V, D], got ", weight.str());
  check_same_device(weight, ids, what);
  const int64_t V = weight.size(0), D = weight.size(1), N = ids.numel();
  check_ids_in_range(ids, V, what);
  const Tensor w = weight.contiguous();
  const Tensor flat_ids = ids.contiguous().detach().reshape({N});
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, w.dtype(), w.device());
  ARIA_DISPATCH(w.device(), embedding_forward, w.detach(), flat_ids, out.reshape({N, D}));
  if (needs_grad({&w})) {
    record_op(what, {w}, {out}, [flat_ids, V, D, N](const std::vector<Tensor>& g) {
      Tensor dw = Tensor::zeros({V, D}, g[0].dtype(), g[0].device());
      ARIA_DISPATCH(dw.device(), embedding_backward, flat_ids, g[0].contiguous().reshape({N, D}), dw);
      return std::vector<Tensor>{dw};
    });
  }
  return out;
}

Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const char* what = "layernorm";
  check_float(x, what, "x");
  check_float(w, what, "w");
  check_float(b, what, "b");
  ARIA_CHECK(x.dim() >= 1 && x.size(-1) > 0, what, ": x needs a non-empty last dimension, got ", x.str());
  const int64_t C = x.size(-1), N = x.numel() / C;
  ARIA_CHECK(w.shape() == Shape{C} && b.shape() == Shape{C}, what, ": w and b must be [", C, "] for x ", x.str(),
             ", got ", w.str(), " and ", b.str());
  ARIA_CHECK(w.dtype() == x.dtype() && b.dtype() == x.dtype(), what, ": dtypes differ: x ", x.str(), ", w ",
             w.str(), ", b ", b.str());
  check_same_device(x, w, what);
  check_same_device(x, b, what);
  const Tensor xc = x.contiguous(), wc = w.contiguous(), bc = b.contiguous();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({N}, stat_dtype(x.dtype()), dev), rstd = Tensor::empty({N}, stat_dtype(x.dtype()), dev);
  ARIA_DISPATCH(dev, layernorm_forward, rows_view(xc), wc.detach(), bc.detach(), rows_view(y), mean, rstd, eps);
  if (needs_grad({&xc, &wc, &bc})) {
    record_op(what, {xc, wc, bc}, {y},
              [xs = xc.detach(), ws = wc.detach(), mean, rstd, C](const std::vector<Tensor>& g) {
                Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
                Tensor dw = Tensor::zeros({C}, ws.dtype(), ws.device()), db = Tensor::zeros({C}, ws.dtype(), ws.device());
                ARIA_DISPATCH(xs.device(), layernorm_backward, rows_view(xs), ws, mean, rstd, rows_view(g[0].contiguous()),
                              rows_view(dx), dw, db);
                return std::vector<Tensor>{dx, dw, db};
              });
  }
  return y;
}

Tensor softmax(const Tensor& x) {
  const char* what = "softmax";
  check_float(x, what, "x");
  ARIA_CHECK(x.dim() >= 1, what, ": x must have at least one dimension, got ", x.str());
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ARIA_DISPATCH(x.device(), softmax_forward, rows_view(xc), rows_view(y));
  if (needs_grad({&xc})) {
    record_op(what, {xc}, {y}, [ys = y.detach()](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      ARIA_DISPATCH(ys.device(), softmax_backward, rows_view(ys), rows_view(g[0].contiguous()), rows_view(dx));
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

Tensor causal_attention(const Tensor& qkv, int n_head) {
  const char* what = "causal_attention";
  check_float(qkv, what, "qkv");
  ARIA_CHECK(qkv.dim() == 3, what, ": qkv must be [B, T, 3C], got ", qkv.str());
  ARIA_CHECK(qkv.size(2) % 3 == 0, what, ": last dimension ", qkv.size(2), " of qkv ", qkv.str(),
             " is not 3C (not divisible by 3)");
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  ARIA_CHECK(n_head > 0 && C % n_head == 0, what, ": C = ", C, " is not divisible by n_head = ", n_head);
  const Tensor qc = qkv.contiguous();
  const Device dev = qkv.device();
  Tensor out = Tensor::empty({B, T, C}, qkv.dtype(), dev);
  Tensor lse = Tensor::empty({B, int64_t(n_head), T}, stat_dtype(qkv.dtype()), dev);
  ARIA_DISPATCH(dev, attention_forward, qc.detach(), out, lse, n_head);
  if (needs_grad({&qc})) {
    record_op(what, {qc}, {out},
              [qs = qc.detach(), os = out.detach(), lse, n_head](const std::vector<Tensor>& g) {
                Tensor dqkv = Tensor::empty(qs.shape(), qs.dtype(), qs.device());
                ARIA_DISPATCH(qs.device(), attention_backward, qs, os, lse, g[0].contiguous(), dqkv, n_head);
                return std::vector<Tensor>{dqkv};
              });
  }
  return out;
}

namespace {

struct CrossEntropyForward {
  Tensor logits;   // contiguous input (the tensor the tape node is recorded on)
  Tensor targets;  // [N] int32
  Tensor losses;   // [N]
  Tensor lse;      // [N]
  int64_t count = 0;  // targets that are not ignore_index
};

CrossEntropyForward cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                                          const char* what) {
  check_float(logits, what, "logits");
  check_ints(targets, what, "targets");
  ARIA_CHECK(logits.dim() >= 1, what, ": logits must be [..., V], got ", logits.str());
  const Shape lead(logits.shape().begin(), logits.shape().end() - 1);
  ARIA_CHECK(targets.shape() == lead, what, ": targets ", targets.str(), " must have shape ", shape_str(lead),
             " for logits ", logits.str());
  check_same_device(logits, targets, what);
  const int64_t V = logits.size(-1), N = targets.numel();
  CrossEntropyForward f;
  f.count = count_valid_targets(targets, V, ignore_index, what);
  const Device dev = logits.device();
  f.logits = logits.contiguous();
  f.targets = targets.contiguous().detach().reshape({N});
  f.losses = Tensor::empty({N}, stat_dtype(logits.dtype()), dev);
  f.lse = Tensor::empty({N}, stat_dtype(logits.dtype()), dev);
  ARIA_DISPATCH(dev, cross_entropy_forward, f.logits.detach().reshape({N, V}), f.targets, f.losses, f.lse,
                ignore_index);
  return f;
}

// dlogits (shaped like logits) from per-row upstream gradients dlosses [N].
Tensor cross_entropy_grad(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dlosses,
                          int ignore_index) {
  const int64_t V = logits.size(-1), N = targets.numel();
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  ARIA_DISPATCH(logits.device(), cross_entropy_backward, logits.reshape({N, V}), targets, lse, dlosses,
                dlogits.reshape({N, V}), ignore_index);
  return dlogits;
}

}  // namespace

Tensor cross_entropy_rows(const Tensor& logits, const Tensor& targets, int ignore_index) {
  CrossEntropyForward f = cross_entropy_forward(logits, targets, ignore_index, "cross_entropy_rows");
  Tensor out = f.losses.reshape(targets.shape());
  if (needs_grad({&f.logits})) {
    record_op("cross_entropy_rows", {f.logits}, {out},
              [ls = f.logits.detach(), t = f.targets, lse = f.lse, ignore_index](const std::vector<Tensor>& g) {
                Tensor dl = g[0].contiguous().reshape({t.numel()});
                return std::vector<Tensor>{cross_entropy_grad(ls, t, lse, dl, ignore_index)};
              });
  }
  return out;
}

// The mean stays on the device (the count of real targets is known from the host-side validation);
// the loss is float32 for bfloat16 logits.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int ignore_index) {
  CrossEntropyForward f = cross_entropy_forward(logits, targets, ignore_index, "cross_entropy");
  const int64_t count = f.count;
  Tensor out;
  {
    NoGradGuard no_grad;
    out = count ? scale(sum(f.losses), 1.0 / double(count)) : Tensor::zeros({}, f.losses.dtype(), logits.device());
  }
  if (needs_grad({&f.logits})) {
    record_op("cross_entropy", {f.logits}, {out},
              [ls = f.logits.detach(), t = f.targets, lse = f.lse, ignore_index, count](const std::vector<Tensor>& g) {
                if (count == 0) return std::vector<Tensor>{Tensor::zeros(ls.shape(), ls.dtype(), ls.device())};
                // d(loss)/d(loss_n) = g / count for every row, broadcast on the device (no host read).
                const Tensor dl = scale(broadcast_to(g[0].reshape({1}), {t.numel()}), 1.0 / double(count));
                return std::vector<Tensor>{cross_entropy_grad(ls, t, lse, dl, ignore_index)};
              });
  }
  return out;
}

namespace detail {

void check_ids_in_range(const Tensor& ids, int64_t V, const char* what) {
  if (const IntValueSummary* s = ids.int_summary(); s && s->negatives == 0 && s->max < V) return;
  // No summary, or it shows a bad value somewhere in the storage: find and name it.
  const std::vector<int32_t> host = ids.to_ints();
  for (size_t n = 0; n < host.size(); ++n)
    ARIA_CHECK(host[n] >= 0 && host[n] < V, what, ": id ", host[n], " at position ", n,
               " is out of range for a vocabulary of V = ", V);
}

int64_t count_valid_targets(const Tensor& targets, int64_t V, int ignore_index, const char* what) {
  const IntValueSummary* s = targets.int_summary();
  if (s && s->max < V && ignore_index < 0) {
    // Valid when every negative value is ignore_index. The count needs no read when nothing is
    // ignored, or when this tensor covers the whole summarised storage.
    if (s->negatives == 0) return targets.numel();
    const bool only_ignored = s->neg_min == ignore_index && s->neg_max == ignore_index;
    if (only_ignored && targets.numel() == s->count) return s->count - s->negatives;
  }
  const std::vector<int32_t> host = targets.to_ints();
  int64_t count = 0;
  for (size_t n = 0; n < host.size(); ++n) {
    if (host[n] == ignore_index) continue;
    ARIA_CHECK(host[n] >= 0 && host[n] < V, what, ": target ", host[n], " at position ", n,
               " is out of range for V = ", V, " classes (ignore_index is ", ignore_index, ")");
    ++count;
  }
  return count;
}

}  // namespace detail

}  // namespace aria::ops
