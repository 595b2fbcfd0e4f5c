// Non-differentiable in-place ops (see core/ops_inplace.h): checks, then one kernel row each.
#include "aria/core/ops_inplace.h"

#include "aria/kernels/backend.h"

namespace aria {

std::vector<AdamWItemView> views_of(const std::vector<AdamWItem>& items) {
  return std::vector<AdamWItemView>(items.begin(), items.end());
}

}  // namespace aria

namespace aria::ops {

namespace {

void check_defined(const Tensor& t, const char* what, const char* name) {
  ARIA_CHECK(t.defined(), what, ": ", name, " is undefined");
}

void check_shape(const Tensor& a, const Tensor& b, const char* what) {
  ARIA_CHECK(a.shape() == b.shape(), what, ": shapes differ: ", a.str(), " vs ", b.str());
}

}  // namespace

void add_scaled_(const Tensor& y, const Tensor& x, double alpha) {
  const char* what = "add_scaled_";
  check_defined(y, what, "y");
  check_defined(x, what, "x");
  check_shape(y, x, what);
  check_same_device(y, x, what);
  ARIA_DISPATCH(y.device(), axpy, y, x, alpha);
}

void scale_by_(const Tensor& x, const Tensor& s) {
  const char* what = "scale_by_";
  check_defined(x, what, "x");
  check_defined(s, what, "s");
  ARIA_CHECK(s.numel() == 1, what, ": the scale must hold one value, got ", s.str());
  ARIA_CHECK(x.is_contiguous(), what, ": x must be contiguous, got a view ", x.str());
  check_same_device(x, s, what);
  ARIA_DISPATCH(x.device(), scale_by, x, s, x);
}

void add_squares_(const Tensor& acc, const Tensor& g, double alpha) {
  const char* what = "add_squares_";
  check_defined(acc, what, "acc");
  check_defined(g, what, "g");
  check_same_device(acc, g, what);
  const bool samples = g.dim() == acc.dim() + 1 && Shape(g.shape().begin() + 1, g.shape().end()) == acc.shape();
  ARIA_CHECK(g.shape() == acc.shape() || samples, what, ": g ", g.str(), " must be acc's shape or [S, ...] of it, acc ",
             acc.str());
  ARIA_DISPATCH(acc.device(), square_accumulate, acc, g, alpha);
}

void add_sum_squares_(const std::vector<Tensor>& xs, const Tensor& out) {
  const char* what = "add_sum_squares_";
  check_defined(out, what, "out");
  ARIA_CHECK(out.numel() == 1, what, ": out must hold one value, got ", out.str());
  for (size_t i = 0; i < xs.size(); ++i) {
    ARIA_CHECK(xs[i].defined(), what, ": tensor ", i, " is undefined");
    ARIA_CHECK(xs[i].device() == out.device(), what, ": tensor ", i, " ", xs[i].str(), " is not on out's device (",
               out.device().str(), ")");
  }
  ARIA_DISPATCH(out.device(), sum_squares, views_of(xs), out);
}

void adamw_update_(const std::vector<AdamWItem>& items) {
  if (items.empty()) return;
  const char* what = "adamw_update_";
  for (size_t i = 0; i < items.size(); ++i) {
    ARIA_CHECK(items[i].param.defined() && items[i].grad.defined(), what, ": item ", i,
               " has an undefined parameter or gradient");
    ARIA_CHECK(items[i].param.device() == items[0].param.device(), what, ": item ", i, " is on ",
               items[i].param.device().str(), ", item 0 on ", items[0].param.device().str(),
               "; one call updates one device");
  }
  ARIA_DISPATCH(items[0].param.device(), adamw_update, views_of(items));
}

void add_spc_penalty_grad_(const std::vector<Tensor>& grads, const std::vector<Tensor>& As,
                           const std::vector<Tensor>& ps, const std::vector<Tensor>& Bs, double lambda) {
  const char* what = "add_spc_penalty_grad_";
  ARIA_CHECK(As.size() == grads.size() && ps.size() == grads.size() && Bs.size() == grads.size(), what,
             ": lists of different lengths (", grads.size(), " grads, ", As.size(), " A, ", ps.size(), " p, ", Bs.size(),
             " B)");
  if (grads.empty()) return;
  for (size_t k = 0; k < grads.size(); ++k) {
    for (const Tensor* t : {&grads[k], &As[k], &ps[k], &Bs[k]}) {
      ARIA_CHECK(t->defined(), what, ": entry ", k, " has an undefined tensor");
      ARIA_CHECK(t->shape() == grads[k].shape(), what, ": entry ", k, ": ", t->str(), " is not the gradient's shape ",
                 grads[k].str());
      ARIA_CHECK(t->device() == grads[0].device(), what, ": entry ", k, ": ", t->str(), " is not on ",
                 grads[0].device().str());
    }
  }
  ARIA_DISPATCH(grads[0].device(), spc_penalty_grad, views_of(grads), views_of(As), views_of(ps), views_of(Bs), lambda);
}

void mul_into(const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* what = "mul_into";
  check_defined(a, what, "a");
  check_defined(b, what, "b");
  check_defined(out, what, "out");
  check_shape(a, out, what);
  check_shape(b, out, what);
  check_same_device(a, out, what);
  check_same_device(b, out, what);
  ARIA_CHECK(out.is_contiguous(), what, ": out must be contiguous, got a view ", out.str());
  ARIA_DISPATCH(out.device(), binary, int(BinaryOp::Mul), a, b, out);
}

void matmul_into(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b) {
  const char* what = "matmul_into";
  check_defined(a, what, "a");
  check_defined(b, what, "b");
  check_defined(c, what, "c");
  ARIA_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, what, ": a, b and c must be 3-D, got ", a.str(), ", ",
             b.str(), ", ", c.str());
  const int64_t M = a.size(trans_a ? 2 : 1), K = a.size(trans_a ? 1 : 2);
  const int64_t Kb = b.size(trans_b ? 2 : 1), N = b.size(trans_b ? 1 : 2);
  ARIA_CHECK(K == Kb && c.shape() == Shape({a.size(0), M, N}) && (b.size(0) == a.size(0) || b.size(0) == 1), what,
             ": shapes do not multiply: a ", a.str(), trans_a ? " (transposed)" : "", ", b ", b.str(),
             trans_b ? " (transposed)" : "", ", c ", c.str());
  check_same_device(a, c, what);
  check_same_device(b, c, what);
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous() && c.is_contiguous(), what, ": a, b and c must be contiguous");
  ARIA_DISPATCH(c.device(), matmul, a, b, c, trans_a, trans_b, 1.0, 0.0);
}

void sum_to_into(const Tensor& x, const Tensor& out) {
  const char* what = "sum_to_into";
  check_defined(x, what, "x");
  check_defined(out, what, "out");
  bool ok = x.dim() == out.dim();
  for (int d = 0; ok && d < x.dim(); ++d) ok = out.size(d) == x.size(d) || out.size(d) == 1;
  ARIA_CHECK(ok, what, ": out ", out.str(), " must have x's rank and x's extents or 1, x ", x.str());
  check_same_device(x, out, what);
  ARIA_DISPATCH(out.device(), sum_to, x, out);
}

void index_add_rows_(const Tensor& dst, const Tensor& ids, const Tensor& src) {
  const char* what = "index_add_rows_";
  check_defined(dst, what, "dst");
  check_defined(ids, what, "ids");
  check_defined(src, what, "src");
  ARIA_CHECK(ids.dtype() == DType::I32 && ids.dim() == 1, what, ": ids must be int32 [N], got ", ids.str());
  ARIA_CHECK(dst.dim() == 2 && src.dim() == 2 && src.size(0) == ids.size(0) && src.size(1) == dst.size(1), what,
             ": dst must be [V, D] and src [N, D] for ids [N]: dst ", dst.str(), ", src ", src.str(), ", ids ",
             ids.str());
  check_same_device(dst, ids, what);
  check_same_device(dst, src, what);
  ARIA_DISPATCH(dst.device(), embedding_backward, ids, src, dst);
}

}  // namespace aria::ops
