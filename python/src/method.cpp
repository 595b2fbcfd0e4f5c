// Continual-learning methods written in Python, plugged into the trainer through the method
// interface of train/continual/continual_method.h (the one the built-in replay and lwf use):
//
//   class L2ToPrevious:                      # any object; every hook is optional
//       def on_task_start(self, trainer, task_id): ...
//       def extra_loss(self, trainer, batch):  # an aria.Tensor scalar (with autograd) or None
//       def after_step(self, trainer): ...
//       def on_consolidate(self, trainer, task_id, task): ...
//       def state_tensors(self): {name: Tensor}       # saved in the trainer's checkpoint
//       def state_json(self): {...}                   # JSON-able
//       def load_state(self, trainer, tensors, state): ...
//   aria.register_method("l2", lambda: L2ToPrevious(1.0), base="finetune")
//
// The hooks run on the training thread with the GIL taken for the call: extra_loss once per
// micro-batch (after the forward, before the backward), after_step once per optimizer step. That is
// a Python call per step, never one inside the kernels. An exception in a hook propagates out of the
// trainer's call (the trainer is then mid-step: load a checkpoint to continue).
#include <memory>

#include "bindings.h"
#include "aria/train/continual/continual_method.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria::python {

namespace {

class PyMethod final : public ContinualMethod {
 public:
  explicit PyMethod(py::object obj) : obj_(std::move(obj)) {}
  ~PyMethod() override {
    if (!Py_IsInitialized()) {
      obj_.release();  // Python has finished: nothing can be released any more
      return;
    }
    py::gil_scoped_acquire gil;
    obj_ = py::object();
  }

  const py::object& object() const { return obj_; }

  void on_task_start(const ContinualTrainer& t, int task) override {
    py::gil_scoped_acquire gil;
    if (py::hasattr(obj_, "on_task_start")) obj_.attr("on_task_start")(trainer_object(t), task);
  }

  Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) override {
    py::gil_scoped_acquire gil;
    if (!py::hasattr(obj_, "extra_loss")) return {};
    // A namespace of tensor handles and numbers: safe to keep after the call.
    py::object batch = py::module_::import("types").attr("SimpleNamespace")(
        py::arg("task") = mb.task, py::arg("logits") = *mb.logits, py::arg("labels") = mb.batch->labels,
        py::arg("ids") = mb.batch->ids, py::arg("step_examples") = mb.step_examples,
        py::arg("phase_step") = mb.phase_step, py::arg("micro_index") = mb.micro_index,
        py::arg("task_name") = mb.data ? mb.data->name : std::string());
    py::object r = obj_.attr("extra_loss")(trainer_object(t), batch);
    if (r.is_none()) return {};
    if (!py::isinstance<Tensor>(r))
      throw InputError("extra_loss must return an aria.Tensor (a scalar) or None, got " +
                       std::string(py::str(py::type::of(r))));
    Tensor loss = r.cast<Tensor>();
    if (loss.numel() != 1) throw InputError("extra_loss must return a scalar, got " + loss.str());
    return loss.dim() == 0 ? loss : loss.reshape({});
  }

  void after_step(const ContinualTrainer& t) override {
    py::gil_scoped_acquire gil;
    if (py::hasattr(obj_, "after_step")) obj_.attr("after_step")(trainer_object(t));
  }

  void on_consolidate(const ContinualTrainer& t, int task, const ClsTaskData& data) override {
    py::gil_scoped_acquire gil;
    if (py::hasattr(obj_, "on_consolidate"))
      obj_.attr("on_consolidate")(trainer_object(t), task, py::cast(&data, py::return_value_policy::reference));
  }

  std::vector<std::pair<std::string, Tensor>> state_tensors() const override {
    py::gil_scoped_acquire gil;
    std::vector<std::pair<std::string, Tensor>> out;
    if (!py::hasattr(obj_, "state_tensors")) return out;
    for (const auto& [k, v] : obj_.attr("state_tensors")().cast<py::dict>())
      out.emplace_back(k.cast<std::string>(), v.cast<Tensor>());
    return out;
  }

  nlohmann::json state_json() const override {
    py::gil_scoped_acquire gil;
    if (!py::hasattr(obj_, "state_json")) return nlohmann::json::object();
    return to_json(obj_.attr("state_json")());
  }

  void load_state(const ContinualTrainer& t, const std::map<std::string, Tensor>& tensors,
                  const nlohmann::json& state) override {
    py::gil_scoped_acquire gil;
    if (!py::hasattr(obj_, "load_state")) return;
    py::dict d;
    for (const auto& [k, v] : tensors) d[py::str(k)] = v;
    obj_.attr("load_state")(trainer_object(t), d, from_json(state));
  }

 private:
  py::object obj_;
};

}  // namespace

py::object plugin_object(ContinualMethod& method) {
  if (auto* p = dynamic_cast<PyMethod*>(&method)) return p->object();
  return py::none();
}

void bind_method(py::module_& m) {
  m.def("register_method",
        [](const std::string& name, py::object factory, const std::string& base) {
          if (!PyCallable_Check(factory.ptr())) throw InputError("register_method: factory must be callable");
          // The registry is process-wide and outlives the interpreter: the factory is never released.
          auto* held = new py::object(std::move(factory));
          as_input([&] {
            register_method(
                name,
                [held](const ContinualTrainer&) -> std::unique_ptr<ContinualMethod> {
                  py::gil_scoped_acquire gil;
                  return std::make_unique<PyMethod>((*held)());
                },
                base);
          });
        },
        py::arg("name"), py::arg("factory"), py::arg("base") = "finetune",
        "Makes `name` a method: base's mechanisms (finetune, ewc, adapters, aria, ...) plus the hooks of the "
        "object factory() returns. Registered once per process (a second registration of a name raises).");
}

}  // namespace aria::python
