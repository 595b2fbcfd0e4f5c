// DLPack: aria tensors to and from PyTorch, NumPy, CuPy, JAX without copies, on the CPU and on CUDA.
//   t.__dlpack__(stream=None), t.__dlpack_device__()   so torch.from_dlpack(t) / numpy.from_dlpack(t)
//   aria.from_dlpack(x)                                 x: anything with __dlpack__, or a "dltensor" capsule
// The exported capsule holds a handle to the tensor (its storage lives while the consumer uses it); an
// imported tensor's storage calls the producer's deleter when aria's last view of it goes away.
// CUDA streams: aria's one stream is blocking with respect to the legacy default stream
// (kernels/cuda/runtime.h). Exporting waits for aria's queued work (one synchronize) whatever stream
// the consumer names; importing asks the producer to order its work before the legacy default stream
// (stream=1), which aria's stream then follows.
#include <memory>
#include <vector>

#include "bindings.h"
#include "dlpack_abi.h"
#include "foreign_storage.h"
#include "aria/kernels/backend.h"

namespace aria::python {

namespace {

using namespace dlpack;

struct Exported {
  Tensor tensor;
  std::vector<int64_t> shape, strides;
  DLManagedTensor managed{};
};

DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::F32: return {kDLFloat, 32, 1};
    case DType::F64: return {kDLFloat, 64, 1};
    case DType::F16: return {kDLFloat, 16, 1};
    case DType::BF16: return {kDLBfloat, 16, 1};
    case DType::I32: return {kDLInt, 32, 1};
    case DType::I64: return {kDLInt, 64, 1};
  }
  throw Error("dlpack: unknown dtype");
}

DType aria_dtype(const DLDataType& t) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 32) return DType::F32;
    if (t.code == kDLFloat && t.bits == 64) return DType::F64;
    if (t.code == kDLFloat && t.bits == 16) return DType::F16;
    if (t.code == kDLBfloat && t.bits == 16) return DType::BF16;
    if (t.code == kDLInt && t.bits == 32) return DType::I32;
    if (t.code == kDLInt && t.bits == 64) return DType::I64;
  }
  throw InputError("from_dlpack: unsupported dtype (code " + std::to_string(t.code) + ", " + std::to_string(t.bits) +
                   " bits, " + std::to_string(t.lanes) + " lanes): aria takes float32/64/16, bfloat16, int32, int64");
}

DLDevice dl_device(Device d) { return d.is_cuda() ? DLDevice{kDLCUDA, d.index} : DLDevice{kDLCPU, 0}; }

void delete_exported(DLManagedTensor* self) { delete static_cast<Exported*>(self->manager_ctx); }

void capsule_destructor(PyObject* capsule) {
  // Still named "dltensor": no consumer took it, so the producer (aria) frees it.
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
}

py::capsule to_dlpack(const Tensor& t) {
  if (t.device().is_cuda()) {
    py::gil_scoped_release nogil;
    cuda::synchronize();  // the consumer may read at once, on any stream
  }
  auto* e = new Exported{t.detach(), t.shape(), t.strides(), {}};
  DLTensor& dl = e->managed.dl_tensor;
  dl.data = t.raw_data();
  dl.device = dl_device(t.device());
  dl.ndim = int32_t(t.dim());
  dl.dtype = dl_dtype(t.dtype());
  dl.shape = e->shape.data();
  dl.strides = e->strides.data();
  dl.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = &delete_exported;
  PyObject* cap = PyCapsule_New(&e->managed, "dltensor", &capsule_destructor);
  if (!cap) {
    delete e;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

Tensor from_capsule(PyObject* capsule) {
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
  if (!m) {
    PyErr_Clear();
    throw InputError("from_dlpack: the capsule is not an unused 'dltensor' (a DLPack capsule can be consumed once)");
  }
  PyCapsule_SetName(capsule, "used_dltensor");
  // The tensor is aria's from here: every error path below returns it to its producer.
  std::unique_ptr<DLManagedTensor, void (*)(DLManagedTensor*)> owned(m, [](DLManagedTensor* p) {
    if (p->deleter) p->deleter(p);
  });
  const DLTensor& dl = m->dl_tensor;
  const DType dt = aria_dtype(dl.dtype);
  Device device;
  if (dl.device.device_type == kDLCPU || dl.device.device_type == kDLCUDAHost) device = Device::cpu();
  else if (dl.device.device_type == kDLCUDA) device = device_arg("cuda:" + std::to_string(dl.device.device_id));
  else throw InputError("from_dlpack: unsupported device type " + std::to_string(dl.device.device_type) + " (CPU or CUDA)");
  if (dl.ndim < 0) throw InputError("from_dlpack: negative ndim");
  Shape shape(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw InputError("from_dlpack: negative extent");
    if (strides[i] < 0) throw InputError("from_dlpack: negative strides cannot be viewed (make the array contiguous first)");
  }
  const size_t item = dtype_size(dt);
  if (dl.byte_offset % item != 0) throw InputError("from_dlpack: byte_offset is not a multiple of the item size");
  if (shape_numel(shape) == 0 || dl.data == nullptr) return Tensor::zeros(shape, dt, device);
  const size_t bytes = size_t(dl.byte_offset) + view_extent_bytes(shape, strides, dt);
  DLManagedTensor* raw = owned.release();
  auto storage = foreign_storage(dl.data, bytes, device, [raw] {
    if (raw->deleter) raw->deleter(raw);
  });
  return tensor_over(std::move(storage), dt, shape, strides, int64_t(dl.byte_offset / item));
}

}  // namespace

void bind_dlpack(py::module_& m) {
  py::class_<Tensor> t = py::reinterpret_borrow<py::class_<Tensor>>(m.attr("Tensor"));
  t.def("__dlpack__", [](const Tensor& self, const py::object& stream) { return to_dlpack(self); },
        py::kw_only(), py::arg("stream") = py::none(),
        "A DLPack capsule viewing this tensor (no copy); CUDA work queued by aria is finished first")
      .def("__dlpack_device__", [](const Tensor& self) {
        const DLDevice d = dl_device(self.device());
        return py::make_tuple(d.device_type, d.device_id);
      });
  m.def("from_dlpack", [](const py::object& x) {
          if (py::hasattr(x, "__dlpack__")) {
            bool cuda = false;
            if (py::hasattr(x, "__dlpack_device__")) cuda = x.attr("__dlpack_device__")()[py::int_(0)].cast<int>() == kDLCUDA;
            py::object cap = cuda ? x.attr("__dlpack__")(py::arg("stream") = 1) : x.attr("__dlpack__")();
            return from_capsule(cap.ptr());
          }
          if (PyCapsule_CheckExact(x.ptr())) return from_capsule(x.ptr());
          throw InputError("from_dlpack: expected an object with __dlpack__ (a torch tensor, numpy array, ...) or a "
                           "'dltensor' capsule, got " + std::string(py::str(py::type::of(x))));
        }, py::arg("x"), "A tensor viewing another library's memory (no copy) through DLPack");
}

}  // namespace aria::python
