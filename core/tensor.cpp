#include "aria/core/tensor.h"

#include <algorithm>
#include <limits>

#include "aria/core/autograd.h"
#include "aria/kernels/backend.h"

namespace aria {

static void check_shape_valid(const Shape& shape) {
  for (int64_t d : shape) ARIA_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape_valid(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  ARIA_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(), " values for shape ",
             shape_str(shape));
  Tensor host = empty(shape, DType::F64, Device::cpu());
  std::copy(values.begin(), values.end(), host.data<double>());
  if (dtype == DType::F64 && device.is_cpu()) return host;
  Tensor out = empty(shape, dtype, Device::cpu());
  out.copy_from(host);
  return device.is_cpu() ? out : out.to(device);
}

Tensor Tensor::from_floats(const std::vector<float>& values, const Shape& shape, Device device) {
  ARIA_CHECK(int64_t(values.size()) == shape_numel(shape), "from_floats: ", values.size(), " values for shape ",
             shape_str(shape));
  Tensor host = empty(shape, DType::F32, Device::cpu());
  std::copy(values.begin(), values.end(), host.data<float>());
  return device.is_cpu() ? host : host.to(device);
}

Tensor Tensor::from_ints(const std::vector<int32_t>& values, const Shape& shape, Device device) {
  ARIA_CHECK(int64_t(values.size()) == shape_numel(shape), "from_ints: ", values.size(), " values for shape ",
             shape_str(shape));
  Tensor host = empty(shape, DType::I32, Device::cpu());
  std::copy(values.begin(), values.end(), host.data<int32_t>());
  if (device.is_cpu()) return host;  // checks read host values directly; no summary needed
  Tensor out = host.to(device);
  IntValueSummary s;
  s.count = int64_t(values.size());
  s.max = values.empty() ? 0 : values[0];
  s.neg_min = 0;
  s.neg_max = std::numeric_limits<int32_t>::min();
  for (int32_t v : values) {
    s.max = std::max(s.max, v);
    if (v >= 0) continue;
    ++s.negatives;
    s.neg_min = std::min(s.neg_min, v);
    s.neg_max = std::max(s.neg_max, v);
  }
  if (s.negatives == 0) s.neg_max = 0;
  out.impl().storage->int_summary = s;
  return out;
}

const IntValueSummary* Tensor::int_summary() const {
  const auto& st = impl().storage;
  return dtype() == DType::I32 && st && st->int_summary ? &*st->int_summary : nullptr;
}

int64_t Tensor::size(int d) const { return TensorView(*this).size(d); }

bool Tensor::is_contiguous() const { return TensorView(*this).is_contiguous(); }

std::string Tensor::str() const { return TensorView(*this).str(); }

std::vector<TensorView> views_of(const std::vector<Tensor>& ts) {
  std::vector<TensorView> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(t.view_for_kernel());
  return out;
}

void* Tensor::raw_data() const {
  auto& im = impl();
  return static_cast<char*>(im.storage->data) + im.offset * int64_t(dtype_size(im.dtype));
}

void Tensor::copy_from(const Tensor& src) const {
  ARIA_CHECK(src.shape() == shape(), "copy_from: shape ", shape_str(src.shape()), " into ", shape_str(shape()));
  impl().storage->int_summary.reset();  // the values change: the host no longer knows them
  if (src.device() == device()) {
    ARIA_DISPATCH(device(), copy_cast, src, *this);
    return;
  }
  // Cross-device: make both sides contiguous in the destination dtype, then one memcpy.
  Tensor s = src;
  if (s.dtype() != dtype() || !s.is_contiguous()) {
    Tensor tmp = empty(shape(), dtype(), src.device());
    ARIA_DISPATCH(src.device(), copy_cast, src, tmp);
    s = tmp;
  }
  Tensor d = is_contiguous() ? *this : empty(shape(), dtype(), device());
  cuda::memcpy_between(d.raw_data(), d.device(), s.raw_data(), s.device(), d.nbytes());
  if (!d.same_as(*this)) ARIA_DISPATCH(device(), copy_cast, d, *this);
}

void Tensor::fill_(double value) const {
  impl().storage->int_summary.reset();
  if (is_contiguous()) {
    ARIA_DISPATCH(device(), fill, *this, value);
  } else {
    Tensor tmp = full(shape(), value, dtype(), device());
    copy_from(tmp);
  }
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_from(*this);
  return out;
}

Tensor Tensor::detach() const {
  auto im = std::make_shared<TensorImpl>();
  im->storage = impl().storage;
  im->offset = impl().offset;
  im->shape = impl().shape;
  im->strides = impl().strides;
  im->dtype = impl().dtype;
  return Tensor(std::move(im));
}

// A view sharing storage with *this; autograd history is attached by the caller.
static Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto im = std::make_shared<TensorImpl>();
  im->storage = base.impl().storage;
  im->offset = offset;
  im->shape = std::move(shape);
  im->strides = std::move(strides);
  im->dtype = base.dtype();
  return Tensor(std::move(im));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = clone();
  if (needs_grad({this})) {
    record_op("contiguous", {*this}, {out}, [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  }
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = empty(shape(), dtype(), d);
  out.copy_from(*this);
  if (needs_grad({this})) {
    Device src_dev = device();
    record_op("to_device", {*this}, {out},
              [src_dev](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].to(src_dev)}; });
  }
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  out.copy_from(*this);
  if (needs_grad({this})) {
    ARIA_CHECK(is_floating(t), "cannot differentiate through a cast to ", dtype_name(t));
    DType src_t = dtype();
    record_op("to_dtype", {*this}, {out},
              [src_t](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].to(src_t)}; });
  }
  return out;
}

Tensor Tensor::reshape(const Shape& new_shape_in) const {
  Shape new_shape = new_shape_in;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      ARIA_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape_in));
      infer = int(i);
    } else {
      ARIA_CHECK(new_shape[i] >= 0, "reshape: bad dimension in ", shape_str(new_shape_in));
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    ARIA_CHECK(known > 0 && numel() % known == 0, "reshape: cannot infer -1 for ", str(), " -> ",
               shape_str(new_shape_in));
    new_shape[infer] = numel() / known;
  }
  ARIA_CHECK(shape_numel(new_shape) == numel(), "reshape: ", str(), " cannot become ", shape_str(new_shape));
  Tensor src = contiguous();
  Tensor out = make_view(src, new_shape, contiguous_strides(new_shape), src.offset());
  if (needs_grad({&src})) {
    Shape old_shape = shape();
    record_op("reshape", {src}, {out},
              [old_shape](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].reshape(old_shape)}; });
  }
  return out;
}

Tensor Tensor::transpose(int a, int b) const {
  int n = dim();
  if (a < 0) a += n;
  if (b < 0) b += n;
  ARIA_CHECK(a >= 0 && a < n && b >= 0 && b < n, "transpose: dims out of range for ", str());
  Shape s = shape(), st = strides();
  std::swap(s[a], s[b]);
  std::swap(st[a], st[b]);
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad({this})) {
    record_op("transpose", {*this}, {out},
              [a, b](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].transpose(a, b)}; });
  }
  return out;
}

Tensor Tensor::slice(int d, int64_t start, int64_t end) const {
  int n = dim();
  if (d < 0) d += n;
  ARIA_CHECK(d >= 0 && d < n, "slice: dim out of range for ", str());
  ARIA_CHECK(0 <= start && start <= end && end <= shape()[d], "slice [", start, ", ", end, ") out of range for dim ",
             d, " of ", str());
  Shape s = shape();
  s[d] = end - start;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[d]);
  if (needs_grad({this})) {
    Shape full_shape = shape();
    DType dt = dtype();
    Device dev = device();
    record_op("slice", {*this}, {out}, [=](const std::vector<Tensor>& g) {
      Tensor gi = Tensor::zeros(full_shape, dt, dev);
      gi.slice(d, start, end).copy_from(g[0]);
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

Tensor Tensor::select(int d, int64_t index) const {
  int n = dim();
  if (d < 0) d += n;
  Tensor s = slice(d, index, index + 1);
  Shape sh = s.shape();
  sh.erase(sh.begin() + d);
  return s.reshape(sh);
}

std::vector<double> Tensor::to_doubles() const {
  Tensor host = Tensor::empty(shape(), DType::F64, Device::cpu());
  host.copy_from(*this);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + numel());
}

std::vector<float> Tensor::to_floats() const {
  Tensor host = Tensor::empty(shape(), DType::F32, Device::cpu());
  host.copy_from(*this);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + numel());
}

std::vector<int32_t> Tensor::to_ints() const {
  Tensor host = Tensor::empty(shape(), DType::I32, Device::cpu());
  host.copy_from(*this);
  const int32_t* p = host.data<int32_t>();
  return std::vector<int32_t>(p, p + numel());
}

double Tensor::item() const {
  ARIA_CHECK(numel() == 1, "item() on ", str(), " which has ", numel(), " elements");
  return to_doubles()[0];
}

Tensor& Tensor::set_requires_grad(bool r) {
  ARIA_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor (it already has autograd history)");
  ARIA_CHECK(!r || is_floating(dtype()), "only floating tensors can require grad, not ", dtype_name(dtype()));
  impl().requires_grad = r;
  return *this;
}

void Tensor::backward(bool retain_graph) const {
  ARIA_CHECK(numel() == 1, "backward() needs a scalar, got ", str());
  ARIA_CHECK(requires_grad(), "backward() on a tensor that does not require grad");
  set_grad(Tensor::full(shape(), 1.0, dtype(), device()));
  tape().backward(*this, retain_graph);
}

}  // namespace aria
