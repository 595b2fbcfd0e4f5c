// Reductions: sum / mean over everything or one dim, and sum_to_shape (the backward of
// broadcasting). All of them run the sum_to kernel on a same-rank view of the output with extent 1
// on every reduced dim; their backward is broadcast_to.
#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

int normalize_dim(const Tensor& x, int dim, const char* what) {
  const int d = dim < 0 ? dim + x.dim() : dim;
  ARIA_CHECK(d >= 0 && d < x.dim(), what, ": dim ", dim, " out of range for ", x.str());
  return d;
}

}  // namespace

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  check_float(x, "sum_to_shape");
  const size_t rank = size_t(x.dim());
  bool ok = shape.size() <= rank;
  Shape kept(rank, 1);  // `shape` left-padded with ones to x's rank
  for (size_t i = 0; ok && i < shape.size(); ++i) {
    const size_t d = rank - shape.size() + i;
    ok = shape[i] == x.shape()[d] || shape[i] == 1;
    kept[d] = shape[i];
  }
  ARIA_CHECK(ok, "sum_to_shape: cannot reduce ", x.str(), " to ", shape_str(shape),
             " (the target must broadcast to the input)");
  if (shape == x.shape()) return x;
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  ARIA_DISPATCH(out.device(), sum_to, xc.detach(), out.detach().reshape(kept));
  if (needs_grad({&xc})) {
    record_op("sum_to_shape", {xc}, {out}, [xshape = x.shape()](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{broadcast_to(g[0], xshape)};
    });
  }
  return out;
}

// A bfloat16 total is returned in float32: a scalar that feeds a loss must not be rounded to
// 8 bits of mantissa (the kernel accumulates in fp32 either way).
Tensor sum(const Tensor& x) {
  check_float(x, "sum");
  return sum_to_shape(x.dtype() == DType::BF16 ? x.to(DType::F32) : x, Shape{});
}

Tensor mean(const Tensor& x) { return scale(sum(x), 1.0 / double(x.numel())); }

Tensor sum_dim(const Tensor& x, int dim, bool keepdim) {
  check_float(x, "sum_dim");
  const int d = normalize_dim(x, dim, "sum_dim");
  Shape kept = x.shape();
  kept[size_t(d)] = 1;
  Tensor s = sum_to_shape(x, kept);
  if (keepdim) return s;
  Shape dropped = x.shape();
  dropped.erase(dropped.begin() + d);
  return s.reshape(dropped);
}

Tensor mean_dim(const Tensor& x, int dim, bool keepdim) {
  check_float(x, "mean_dim");
  const int d = normalize_dim(x, dim, "mean_dim");
  return scale(sum_dim(x, d, keepdim), 1.0 / double(x.shape()[size_t(d)]));
}

}  // namespace aria::ops
