// What the files of python/src contribute to the aria module (aria._core), one function per area,
// and the few helpers they share: errors by kind, devices, and Python <-> JSON.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "aria/core/device.h"
#include "aria/core/error.h"

namespace aria {
class ContinualTrainer;
class ContinualMethod;
}  // namespace aria

namespace aria::python {
namespace py = pybind11;

void bind_errors(py::module_& m);   // errors.cpp: AriaError, InputError, EngineError, DeviceError
void bind_tensor(py::module_& m);   // tensor.cpp: Tensor, numpy buffers, ops, no_grad
void bind_dlpack(py::module_& m);   // dlpack.cpp: __dlpack__, __dlpack_device__, from_dlpack
void bind_model(py::module_& m);    // model.cpp: GPT2, load_gpt2, Tokenizer, score, generate
void bind_pretrain(py::module_& m); // pretrain.cpp: pretrain
void bind_data(py::module_& m);     // data.cpp: Task, load_task, make_task
void bind_trainer(py::module_& m);  // trainer.cpp: ContinualTrainer, callbacks, cl_metrics
void bind_method(py::module_& m);   // method.cpp: register_method (methods written in Python)

// The Python object of a trainer (None while it is being built or loaded), and of a method written in
// Python (None for a C++ method): what the hooks of Python methods receive.
py::object trainer_object(const ContinualTrainer& t);
py::object plugin_object(ContinualMethod& method);

// Bad input from the caller (arguments, files, data, settings): raised as aria.InputError.
// Every other aria::Error becomes aria.EngineError, or aria.DeviceError when it comes from CUDA.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs f, turning an aria::Error it throws into InputError: for calls whose only failures are the
// caller's input (loading files, parsing settings, reading data).
template <typename F>
auto as_input(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw InputError(e.what());
  }
}

// "cpu", "cuda", "cuda:N" or "auto": a malformed name is an InputError, a CUDA device in a build or
// on a machine without one a DeviceError.
Device device_arg(const std::string& name);

// A Python object made of dicts, lists, str, int, float, bool and None, as JSON (through the json
// module, so the conversion is Python's own), and back.
nlohmann::json to_json(const py::handle& obj);
py::object from_json(const nlohmann::json& j);

}  // namespace aria::python
