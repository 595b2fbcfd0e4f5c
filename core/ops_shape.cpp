// Shape ops: concat (one copy into the output, backward hands out slices of the gradient) and split
// (slice views of the input, each differentiable through Tensor::slice).
#include "aria/core/autograd.h"
#include "aria/core/ops.h"

namespace aria::ops {

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  ARIA_CHECK(!xs.empty(), "concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) {
    ARIA_CHECK(xs[i].defined(), "concat: tensor ", i, " is undefined");
    ARIA_CHECK(is_floating(xs[i].dtype()), "concat: tensor ", i, " must be a float tensor, got ", xs[i].str());
  }
  const Tensor& x0 = xs[0];
  const int d = dim < 0 ? dim + x0.dim() : dim;
  ARIA_CHECK(d >= 0 && d < x0.dim(), "concat: dim ", dim, " out of range for ", x0.str());
  Shape shape = x0.shape();
  shape[size_t(d)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    ARIA_CHECK(x.dtype() == x0.dtype(), "concat: dtypes differ: ", x0.str(), " vs ", x.str());
    check_same_device(x0, x, "concat");
    bool ok = x.dim() == x0.dim();
    for (int k = 0; ok && k < x.dim(); ++k) ok = k == d || x.shape()[size_t(k)] == x0.shape()[size_t(k)];
    ARIA_CHECK(ok, "concat: along dim ", d, " every shape must match outside that dim: ", x0.str(), " vs ", x.str(),
               " (tensor ", i, ")");
    shape[size_t(d)] += x.shape()[size_t(d)];
  }
  Tensor out = Tensor::empty(shape, x0.dtype(), x0.device());
  std::vector<int64_t> starts;
  int64_t off = 0;
  for (const Tensor& x : xs) {
    starts.push_back(off);
    const int64_t n = x.shape()[size_t(d)];
    out.slice(d, off, off + n).copy_from(x);
    off += n;
  }
  bool any = false;
  for (const Tensor& x : xs) any |= needs_grad({&x});
  if (any) {
    std::vector<int64_t> sizes;
    for (const Tensor& x : xs) sizes.push_back(x.shape()[size_t(d)]);
    record_op("concat", xs, {out}, [d, starts, sizes](const std::vector<Tensor>& g) {
      std::vector<Tensor> gs;
      for (size_t i = 0; i < sizes.size(); ++i) gs.push_back(g[0].slice(d, starts[i], starts[i] + sizes[i]));
      return gs;
    });
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  ARIA_CHECK(x.defined(), "split: x is undefined");
  const int d = dim < 0 ? dim + x.dim() : dim;
  ARIA_CHECK(d >= 0 && d < x.dim(), "split: dim ", dim, " out of range for ", x.str());
  int64_t total = 0;
  for (int64_t s : sizes) {
    ARIA_CHECK(s >= 0, "split: negative size ", s);
    total += s;
  }
  ARIA_CHECK(total == x.shape()[size_t(d)], "split: sizes add up to ", total, " but dim ", d, " of ", x.str(),
             " has ", x.shape()[size_t(d)]);
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(x.slice(d, off, off + s));
    off += s;
  }
  return out;
}

}  // namespace aria::ops
