// Elementwise ops: add/sub/mul/div with NumPy broadcasting (the kernel reads broadcast inputs
// through stride-0 views, so nothing is materialised), and the unary family (affine, gelu, sigmoid,
// relu, exp, log, tanh, square). Backward of broadcasting is ops::sum_to_shape.
#include <algorithm>
#include <memory>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

// The NumPy broadcast of two shapes (aligned at the right; extents equal or 1).
Shape broadcast_shapes(const Tensor& a, const Tensor& b, const char* what) {
  const Shape &sa = a.shape(), &sb = b.shape();
  const size_t n = std::max(sa.size(), sb.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - sa.size() ? 1 : sa[i - (n - sa.size())];
    const int64_t db = i < n - sb.size() ? 1 : sb[i - (n - sb.size())];
    ARIA_CHECK(da == db || da == 1 || db == 1, what, ": shapes ", shape_str(sa), " and ", shape_str(sb),
               " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// A detached view of t with shape `shape` (t broadcastable to it): stride 0 on broadcast dims.
Tensor expand_view(const Tensor& t, const Shape& shape) {
  auto im = std::make_shared<TensorImpl>();
  im->storage = t.impl().storage;
  im->offset = t.offset();
  im->dtype = t.dtype();
  im->shape = shape;
  im->strides.assign(shape.size(), 0);
  const size_t lead = shape.size() - size_t(t.dim());
  for (size_t i = 0; i < size_t(t.dim()); ++i)
    im->strides[lead + i] = t.shape()[i] == 1 && shape[lead + i] != 1 ? 0 : t.strides()[i];
  return Tensor(std::move(im));
}

Tensor binary_op(BinaryOp op, const char* what, const Tensor& a_in, const Tensor& b_in) {
  check_float(a_in, what, "a");
  check_float(b_in, what, "b");
  check_same_device(a_in, b_in, what);
  // Mixed precision: a bfloat16 operand meeting a float32 one (a bf16 plasticity term added to the
  // fp32 loss) is promoted through a differentiable cast, so its gradient comes back in bfloat16.
  const DType t = promote(a_in.dtype(), b_in.dtype());
  ARIA_CHECK(a_in.dtype() == b_in.dtype() || t == DType::F32, what, ": dtypes differ: ", a_in.str(), " vs ",
             b_in.str(), " (only bfloat16 meets float32 by promotion)");
  const Tensor a = a_in.dtype() == t ? a_in : a_in.to(t);
  const Tensor b = b_in.dtype() == t ? b_in : b_in.to(t);
  const Shape shape = broadcast_shapes(a, b, what);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  ARIA_DISPATCH(out.device(), binary, int(op), expand_view(a, shape), expand_view(b, shape), out);
  if (!needs_grad({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  const Shape sa = a.shape(), sb = b.shape();
  // Saved tensors are detached handles: the closure must not hold autograd state.
  const Tensor as = (op == BinaryOp::Mul && gb) || (op == BinaryOp::Div && ga) ? a.detach() : Tensor();
  const Tensor bs = op == BinaryOp::Mul || op == BinaryOp::Div ? b.detach() : Tensor();
  const Tensor os = op == BinaryOp::Div && gb ? out.detach() : Tensor();
  record_op(what, {a, b}, {out}, [=](const std::vector<Tensor>& g) {
    Tensor da, db;
    switch (op) {
      case BinaryOp::Add:
        if (ga) da = sum_to_shape(g[0], sa);
        if (gb) db = sum_to_shape(g[0], sb);
        break;
      case BinaryOp::Sub:
        if (ga) da = sum_to_shape(g[0], sa);
        if (gb) db = scale(sum_to_shape(g[0], sb), -1.0);
        break;
      case BinaryOp::Mul:
        if (ga) da = sum_to_shape(mul(g[0], bs), sa);
        if (gb) db = sum_to_shape(mul(g[0], as), sb);
        break;
      case BinaryOp::Div:  // d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b
        if (ga) da = sum_to_shape(div(g[0], bs), sa);
        if (gb) db = scale(sum_to_shape(div(mul(g[0], os), bs), sb), -1.0);
        break;
    }
    return std::vector<Tensor>{da, db};
  });
  return out;
}

Tensor unary_op(UnaryOp op, const char* what, const Tensor& x) {
  check_float(x, what, "x");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ARIA_DISPATCH(y.device(), unary, int(op), xc, y, 1.0, 0.0);
  if (needs_grad({&xc})) {
    record_op(what, {xc}, {y}, [op, xs = xc.detach(), ys = y.detach()](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
      ARIA_DISPATCH(dx.device(), unary_backward, int(op), xs, ys, g[0].contiguous(), dx, 0.0);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Add, "add", a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Sub, "sub", a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Mul, "mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Div, "div", a, b); }

Tensor scale(const Tensor& x, double s) { return affine(x, s, 0.0); }

Tensor affine(const Tensor& x, double alpha, double beta) {
  check_float(x, "affine", "x");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ARIA_DISPATCH(y.device(), unary, int(UnaryOp::Affine), xc, y, alpha, beta);
  if (needs_grad({&xc})) {
    record_op("affine", {xc}, {y}, [alpha](const std::vector<Tensor>& g) {
      const Tensor gc = g[0].contiguous();
      Tensor dx = Tensor::empty(gc.shape(), gc.dtype(), gc.device());
      ARIA_DISPATCH(dx.device(), unary, int(UnaryOp::Affine), gc, dx, alpha, 0.0);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  check_float(x, "broadcast_to", "x");
  bool ok = size_t(x.dim()) <= shape.size();
  for (int i = 0; ok && i < x.dim(); ++i) {
    const int64_t d = x.shape()[size_t(i)], t = shape[shape.size() - size_t(x.dim()) + size_t(i)];
    ok = d == t || d == 1;
  }
  ARIA_CHECK(ok, "broadcast_to: cannot broadcast ", x.str(), " to ", shape_str(shape));
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  // x + 0 through the (parallel) binary kernel: a faster broadcast copy than copy_cast's strided walk.
  const Tensor zero = Tensor::zeros({}, x.dtype(), x.device());
  ARIA_DISPATCH(out.device(), binary, int(BinaryOp::Add), expand_view(x, shape), expand_view(zero, shape), out);
  if (needs_grad({&x})) {
    record_op("broadcast_to", {x}, {out}, [xshape = x.shape()](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to_shape(g[0], xshape)};
    });
  }
  return out;
}

Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::Gelu, "gelu", x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::Sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::Relu, "relu", x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::Exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::Log, "log", x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::Tanh, "tanh", x); }
Tensor square(const Tensor& x) { return unary_op(UnaryOp::Square, "square", x); }

}  // namespace aria::ops
