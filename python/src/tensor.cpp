// aria.Tensor: numpy arrays in and out through the buffer protocol (no copy where the layout allows),
// the differentiable ops a method written in Python needs, and no_grad.
//
// Zero copy: Tensor.numpy() / numpy.asarray(t) view a CPU tensor's memory (any dtype numpy has:
// bfloat16 has none); aria.from_numpy(a) views a writable CPU array whose strides are non-negative
// multiples of its item size, keeping the array alive. Anything else (a read-only array, negative
// strides, a list) is copied by aria.tensor().
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "bindings.h"
#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "foreign_storage.h"

namespace aria::python {

namespace {

std::string buffer_format(DType t) {
  switch (t) {
    case DType::F32: return py::format_descriptor<float>::format();
    case DType::F64: return py::format_descriptor<double>::format();
    case DType::F16: return "e";
    case DType::I32: return py::format_descriptor<int32_t>::format();
    case DType::I64: return py::format_descriptor<int64_t>::format();
    case DType::BF16: break;
  }
  throw InputError("a bfloat16 tensor has no numpy dtype: convert it first (t.to('float32'))");
}

// The aria dtype of a buffer format ("f", "<f4"-style prefixes stripped) and item size.
std::optional<DType> dtype_of_format(std::string f, size_t itemsize) {
  while (!f.empty() && (f[0] == '<' || f[0] == '=' || f[0] == '@' || f[0] == '!' || f[0] == '>')) {
    if (f[0] == '>' || f[0] == '!') return std::nullopt;  // big-endian
    f.erase(0, 1);
  }
  if (f.size() != 1) return std::nullopt;
  const char c = f[0];
  if (c == 'f' && itemsize == 4) return DType::F32;
  if (c == 'd' && itemsize == 8) return DType::F64;
  if (c == 'e' && itemsize == 2) return DType::F16;
  if ((c == 'i' || c == 'l' || c == 'q') && itemsize == 4) return DType::I32;
  if ((c == 'i' || c == 'l' || c == 'q') && itemsize == 8) return DType::I64;
  return std::nullopt;
}

py::buffer_info tensor_buffer(const Tensor& t) {
  if (!t.device().is_cpu())
    throw InputError("a " + t.device().str() + " tensor has no host buffer: copy it with t.to('cpu') (or exchange it "
                     "with DLPack: __dlpack__ / from_dlpack)");
  const size_t item = dtype_size(t.dtype());
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides;
  for (int64_t s : t.strides()) strides.push_back(py::ssize_t(s * int64_t(item)));
  return py::buffer_info(t.raw_data(), py::ssize_t(item), buffer_format(t.dtype()), py::ssize_t(t.dim()), shape,
                         strides, /*readonly=*/false);
}

// A view of a writable buffer, or nullopt when its layout needs a copy.
std::optional<Tensor> view_buffer(const py::buffer& b) {
  auto info = std::make_shared<py::buffer_info>(b.request());
  const std::optional<DType> dt = dtype_of_format(info->format, size_t(info->itemsize));
  if (!dt)
    throw InputError("unsupported array dtype (buffer format '" + info->format + "', " +
                     std::to_string(info->itemsize) + " bytes): aria takes float32, float64, float16, int32, int64");
  if (info->readonly || info->size == 0 || info->ptr == nullptr) return std::nullopt;
  Shape shape, strides;
  for (py::ssize_t i = 0; i < info->ndim; ++i) {
    const py::ssize_t s = info->strides[size_t(i)];
    if (s < 0 || s % info->itemsize != 0) return std::nullopt;
    shape.push_back(int64_t(info->shape[size_t(i)]));
    strides.push_back(int64_t(s / info->itemsize));
  }
  const size_t bytes = view_extent_bytes(shape, strides, *dt);
  void* data = info->ptr;
  // The buffer (and so the array) lives until the last aria view is gone; releasing it needs the GIL,
  // and after the interpreter has finished nothing may be released.
  auto storage = foreign_storage(data, bytes, Device::cpu(), [info]() mutable {
    if (!Py_IsInitialized()) {
      new std::shared_ptr<py::buffer_info>(std::move(info));  // leaked on purpose: Python is gone
      return;
    }
    py::gil_scoped_acquire gil;
    info.reset();
  });
  return tensor_over(std::move(storage), *dt, shape, strides, 0);
}

// A new contiguous tensor holding a copy of any array-like. Without a dtype: numpy arrays keep theirs
// (bool and unsigned become int64), Python floats become float32 (as in torch), ints int64.
Tensor copy_array(const py::object& obj, const std::optional<std::string>& dtype) {
  py::module_ np = py::module_::import("numpy");
  const bool is_array = py::isinstance(obj, np.attr("ndarray"));
  py::object arr = np.attr("asarray")(obj);
  const std::string kind = py::str(arr.attr("dtype").attr("kind"));
  const bool bf16 = dtype && *dtype == "bfloat16";
  if (dtype) arr = arr.attr("astype")(bf16 ? std::string("float32") : *dtype);
  else if (kind == "f" && !is_array) arr = arr.attr("astype")("float32");
  else if (kind == "b" || kind == "u") arr = arr.attr("astype")("int64");
  arr = np.attr("ascontiguousarray")(arr);
  py::buffer_info info = arr.cast<py::buffer>().request();
  const std::optional<DType> dt = dtype_of_format(info.format, size_t(info.itemsize));
  if (!dt) throw InputError("cannot make an aria tensor from an array of dtype " + std::string(py::str(arr.attr("dtype"))));
  Shape shape(info.shape.begin(), info.shape.end());
  Tensor t = Tensor::empty(shape, *dt);
  if (info.size > 0) std::memcpy(t.raw_data(), info.ptr, size_t(info.size) * size_t(info.itemsize));
  if (bf16) t = t.to(DType::BF16);
  return t;
}

Tensor as_tensor(const py::object& x) {
  if (py::isinstance<Tensor>(x)) return x.cast<Tensor>();
  return copy_array(x, std::nullopt);
}

// A binary op with a tensor or a number on the other side (numbers become scale/affine, exact).
enum class Bin { Add, Sub, Mul, Div, RSub, RDiv };
Tensor binary(const Tensor& a, const py::object& b, Bin op) {
  if (py::isinstance<py::float_>(b) || py::isinstance<py::int_>(b)) {
    const double s = b.cast<double>();
    switch (op) {
      case Bin::Add: return ops::affine(a, 1.0, s);
      case Bin::Sub: return ops::affine(a, 1.0, -s);
      case Bin::Mul: return ops::scale(a, s);
      case Bin::Div: return ops::scale(a, 1.0 / s);
      case Bin::RSub: return ops::affine(a, -1.0, s);
      case Bin::RDiv: return ops::div(Tensor::full({}, s, a.dtype(), a.device()), a);
    }
  }
  Tensor other = as_tensor(b);
  switch (op) {
    case Bin::Add: return ops::add(a, other);
    case Bin::Sub: return ops::sub(a, other);
    case Bin::Mul: return ops::mul(a, other);
    case Bin::Div: return ops::div(a, other);
    case Bin::RSub: return ops::sub(other, a);
    case Bin::RDiv: return ops::div(other, a);
  }
  return {};
}

class NoGrad {
 public:
  void enter() { guard_ = std::make_unique<NoGradGuard>(); }
  void exit(const py::args&) { guard_.reset(); }

 private:
  std::unique_ptr<NoGradGuard> guard_;
};

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor> t(m, "Tensor", py::buffer_protocol(),
                       "An aria tensor: a shared handle to storage, shape, strides, dtype and autograd state.");
  t.def_buffer([](Tensor& self) { return tensor_buffer(self); })
      .def_property_readonly("shape", [](const Tensor& s) { return py::tuple(py::cast(s.shape())); })
      .def_property_readonly("strides", [](const Tensor& s) { return py::tuple(py::cast(s.strides())); },
                             "strides in elements")
      .def_property_readonly("dtype", [](const Tensor& s) { return std::string(dtype_name(s.dtype())); })
      .def_property_readonly("device", [](const Tensor& s) { return s.device().str(); })
      .def_property_readonly("ndim", &Tensor::dim)
      .def_property_readonly("numel", &Tensor::numel)
      .def_property_readonly("is_contiguous", &Tensor::is_contiguous)
      .def_property_readonly("is_leaf", &Tensor::is_leaf)
      .def_property("requires_grad", &Tensor::requires_grad,
                    [](Tensor& s, bool r) { as_input([&] { s.set_requires_grad(r); }); })
      .def_property_readonly("grad", [](const Tensor& s) -> std::optional<Tensor> {
        if (!s.grad().defined()) return std::nullopt;
        return s.grad();
      })
      .def("zero_grad", &Tensor::zero_grad)
      .def("backward", &Tensor::backward, py::arg("retain_graph") = false,
           "Backward from this scalar; leaves accumulate into .grad")
      .def("numpy", [](py::object self) { return py::module_::import("numpy").attr("asarray")(self); },
           "A numpy view of this CPU tensor's memory (no copy)")
      .def("tolist", [](py::object self) { return py::module_::import("numpy").attr("asarray")(self).attr("tolist")(); })
      .def("item", &Tensor::item)
      .def("clone", &Tensor::clone)
      .def("detach", &Tensor::detach)
      .def("contiguous", &Tensor::contiguous)
      .def("to", [](const Tensor& s, const std::string& where) {
             if (where == "cpu" || where == "auto" || where.rfind("cuda", 0) == 0) return s.to(device_arg(where));
             return s.to(dtype_arg(where));
           }, py::arg("device_or_dtype"), "A copy on a device ('cpu', 'cuda') or in a dtype ('float32', ...)")
      .def("reshape", [](const Tensor& s, const Shape& shape) { return as_input([&] { return s.reshape(shape); }); })
      .def("transpose", [](const Tensor& s, int a, int b) { return as_input([&] { return s.transpose(a, b); }); })
      .def("slice", [](const Tensor& s, int dim, int64_t a, int64_t b) { return as_input([&] { return s.slice(dim, a, b); }); })
      .def("select", [](const Tensor& s, int dim, int64_t i) { return as_input([&] { return s.select(dim, i); }); })
      .def("copy_", [](const Tensor& s, const py::object& src) { as_input([&] { s.copy_from(as_tensor(src)); }); },
           "Copies src's values into this tensor (not recorded by autograd)")
      .def("fill_", [](const Tensor& s, double v) { s.fill_(v); })
      .def("sum", [](const Tensor& s) { return ops::sum(s); })
      .def("mean", [](const Tensor& s) { return ops::mean(s); })
      .def("square", [](const Tensor& s) { return ops::square(s); })
      .def("__add__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Add); }); })
      .def("__radd__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Add); }); })
      .def("__sub__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Sub); }); })
      .def("__rsub__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::RSub); }); })
      .def("__mul__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Mul); }); })
      .def("__rmul__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Mul); }); })
      .def("__truediv__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::Div); }); })
      .def("__rtruediv__", [](const Tensor& a, const py::object& b) { return as_input([&] { return binary(a, b, Bin::RDiv); }); })
      .def("__neg__", [](const Tensor& a) { return ops::scale(a, -1.0); })
      .def("__len__", [](const Tensor& s) {
        if (s.dim() == 0) throw py::type_error("len() of a 0-d tensor");
        return s.size(0);
      })
      .def("__repr__", [](const Tensor& s) { return "aria.Tensor(" + s.str() + ")"; });

  m.def("from_numpy", [](const py::buffer& b) {
          std::optional<Tensor> v = view_buffer(b);
          if (!v) throw InputError("from_numpy: this array cannot be viewed without a copy (read-only, empty, or "
                                   "negative/unaligned strides): use aria.tensor(a) to copy it");
          return *v;
        }, py::arg("array"), "A tensor viewing a writable numpy array's memory (no copy; the array is kept alive)");
  m.def("tensor", [](const py::object& data, std::optional<std::string> dtype, const std::string& device,
                     bool requires_grad) {
          if (dtype) dtype_arg(*dtype);  // an unknown name is refused before numpy sees it
          Tensor t = copy_array(data, dtype);
          const Device d = device_arg(device);
          if (d != Device::cpu()) t = t.to(d).detach();
          if (requires_grad) as_input([&] { t.set_requires_grad(true); });
          return t;
        }, py::arg("data"), py::arg("dtype") = py::none(), py::arg("device") = "cpu", py::arg("requires_grad") = false,
        "A new tensor holding a copy of data (a numpy array, list or number)");
  m.def("zeros", [](const Shape& shape, const std::string& dtype, const std::string& device) {
          const Device d = device_arg(device);  // outside as_input: no GPU is a DeviceError
          return as_input([&] { return Tensor::zeros(shape, dtype_arg(dtype), d); });
        }, py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu");
  m.def("full", [](const Shape& shape, double v, const std::string& dtype, const std::string& device) {
          const Device d = device_arg(device);
          return as_input([&] { return Tensor::full(shape, v, dtype_arg(dtype), d); });
        }, py::arg("shape"), py::arg("value"), py::arg("dtype") = "float32", py::arg("device") = "cpu");

  // The differentiable ops (core/ops.h) a loss term written in Python uses; shape and dtype
  // mistakes are InputError.
  auto unary = [&](const char* name, Tensor (*f)(const Tensor&)) {
    m.def(name, [f](const Tensor& x) { return as_input([&] { return f(x); }); }, py::arg("x"));
  };
  unary("relu", &ops::relu);
  unary("gelu", &ops::gelu);
  unary("sigmoid", &ops::sigmoid);
  unary("tanh", &ops::tanh);
  unary("exp", &ops::exp);
  unary("log", &ops::log);
  unary("square", &ops::square);
  unary("softmax", &ops::softmax);
  m.def("sum", [](const Tensor& x, std::optional<int> dim, bool keepdim) {
          return as_input([&] { return dim ? ops::sum_dim(x, *dim, keepdim) : ops::sum(x); });
        }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("mean", [](const Tensor& x, std::optional<int> dim, bool keepdim) {
          return as_input([&] { return dim ? ops::mean_dim(x, *dim, keepdim) : ops::mean(x); });
        }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("matmul", [](const Tensor& a, const Tensor& b) { return as_input([&] { return ops::matmul(a, b); }); });
  m.def("linear", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b) {
          return as_input([&] { return ops::linear(x, w, b ? *b : Tensor()); });
        }, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), "x [..., in] @ weight [in, out] + bias");
  m.def("concat", [](const std::vector<Tensor>& xs, int dim) { return as_input([&] { return ops::concat(xs, dim); }); },
        py::arg("tensors"), py::arg("dim") = 0);
  m.def("cross_entropy", [](const Tensor& logits, const Tensor& targets, int ignore_index) {
          return as_input([&] { return ops::cross_entropy(logits, targets, ignore_index); });
        }, py::arg("logits"), py::arg("targets"), py::arg("ignore_index") = -100);

  py::class_<NoGrad>(m, "no_grad", "with aria.no_grad(): ops inside record no autograd history")
      .def(py::init<>())
      .def("__enter__", &NoGrad::enter)
      .def("__exit__", &NoGrad::exit);
  m.def("grad_enabled", &grad_enabled);
}

}  // namespace aria::python
