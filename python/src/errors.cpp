// Errors as Python exceptions, one class per kind (python/aria/_core.pyi documents them):
//   AriaError                 the base of every error aria raises
//   InputError(ValueError)    the caller's input: arguments, files, checkpoints, data, settings
//   EngineError(RuntimeError) a failure while computing (non-finite loss, a busy trainer, ...)
//   DeviceError(EngineError)  CUDA: no GPU or no CUDA build, a CUDA call that failed
// The engine throws one C++ type (aria::Error) for everything, so the kind comes from where it was
// thrown: the bindings wrap input-only calls in as_input(), and a message about CUDA is a device
// error. A C++ exception never crosses into Python unconverted, so bad input never crashes.
#include <string>

#include "bindings.h"
#include "aria/core/device.h"

namespace aria::python {

namespace {

PyObject* g_aria_error = nullptr;
PyObject* g_input_error = nullptr;
PyObject* g_engine_error = nullptr;
PyObject* g_device_error = nullptr;

PyObject* new_exception(py::module_& m, const char* name, const char* doc, py::tuple bases) {
  const std::string qualified = std::string("aria.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!type) throw py::error_already_set();
  m.add_object(name, py::handle(type));  // the module keeps a reference (never released: a static)
  return type;
}

bool about_cuda(const std::string& msg) {
  return msg.find("CUDA") != std::string::npos || msg.find("cuda") != std::string::npos;
}

}  // namespace

Device device_arg(const std::string& name) {
  if (name.rfind("cuda", 0) == 0 && !cuda_available())
    throw Error("device '" + name + "': no CUDA device is available (a build without the CUDA backend, or no GPU "
                "visible)");
  return as_input([&] { return parse_device(name); });
}

nlohmann::json to_json(const py::handle& obj) {
  const std::string text = py::module_::import("json").attr("dumps")(obj).cast<std::string>();
  return nlohmann::json::parse(text);
}

py::object from_json(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

void bind_errors(py::module_& m) {
  g_aria_error = new_exception(m, "AriaError", "Base class of every error aria raises.",
                               py::make_tuple(py::handle(PyExc_Exception)));
  g_input_error = new_exception(m, "InputError",
                                "Bad input: an argument, file, checkpoint, data set or setting aria refuses.",
                                py::make_tuple(py::handle(g_aria_error), py::handle(PyExc_ValueError)));
  g_engine_error = new_exception(m, "EngineError", "A failure while computing (not the caller's input).",
                                 py::make_tuple(py::handle(g_aria_error), py::handle(PyExc_RuntimeError)));
  g_device_error = new_exception(m, "DeviceError", "CUDA: no GPU or CUDA backend, or a CUDA call failed.",
                                 py::make_tuple(py::handle(g_engine_error)));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(g_input_error, e.what());
    } catch (const Error& e) {
      PyErr_SetString(about_cuda(e.what()) ? g_device_error : g_engine_error, e.what());
    }
  });
}

}  // namespace aria::python
