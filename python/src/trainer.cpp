// aria.ContinualTrainer: the engine's ContinualTrainer driven from Python. The training loop stays in
// C++ and runs with the GIL released; Python is called back only at report points (every log_every
// optimizer steps and the last step of a train call: on_step and the per-step log), after evaluations
// (on_evaluation), and in the hooks of a method written in Python (method.cpp). A callback returning
// True stops training after the next optimizer step (the trainer asks before each step and finishes
// the one it has begun); an exception in a callback (KeyboardInterrupt included) stops it the same way
// and is raised when train() returns. Never a Python call inside the kernels.
#include <atomic>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "bindings.h"
#include "aria/core/autograd.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/aria_config.h"
#include "aria/train/report/cl_metrics.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria::python {

namespace {

using TaskPtr = std::shared_ptr<ClsTaskData>;

struct PyTrainer;
std::mutex g_registry_mutex;
std::map<const ContinualTrainer*, PyTrainer*> g_registry;  // for the hooks of Python methods

py::object opt_double(bool has, double v) { return has ? py::cast(v) : py::none(); }

py::dict stats_dict(const StepStats& s) {
  py::dict d;
  d["step"] = s.step;
  d["loss"] = s.loss;
  d["ce"] = s.ce;
  d["plasticity"] = s.plasticity;
  d["spc"] = s.spc;
  d["method_loss"] = s.method_loss;
  d["accuracy"] = s.accuracy;
  d["grad_norm"] = s.grad_norm;
  d["lr"] = s.lr;
  d["plasticity_on"] = s.plasticity_on;
  d["gate_means"] = s.gate_means;
  d["examples"] = s.examples;
  d["tokens"] = s.tokens;
  return d;
}

py::dict metrics_dict(const ClMetrics& c) {
  py::dict d;
  d["tasks"] = c.tasks;
  d["acc"] = opt_double(c.has_acc, c.acc);
  d["bwt"] = opt_double(c.has_bwt, c.bwt);
  d["forgetting"] = opt_double(c.has_forgetting, c.forgetting);
  d["fwt"] = opt_double(c.has_fwt, c.fwt);
  return d;
}

// Settings as aria continual reads them (train/continual/aria_config.h): errors name the key.
ExperimentConfig settings_from(const py::object& aria_settings, const py::object& train_settings) {
  nlohmann::json j = {{"tasks", {"python"}}};
  if (!aria_settings.is_none()) j["aria"] = to_json(aria_settings);
  if (!train_settings.is_none()) j["train"] = to_json(train_settings);
  return as_input([&] { return parse_experiment_config(j, "ContinualTrainer settings"); });
}

struct PyTrainer {
  std::unique_ptr<ContinualTrainer> t;
  py::object on_step = py::none(), on_evaluation = py::none();
  py::list log;
  std::string phase;                 // the task (or "joint") being trained, for the log
  std::atomic<bool> stop{false};     // asked by a callback: the trainer polls it after every step
  bool should_stop = false;          // a callback asked to stop (stays set until cleared)
  std::exception_ptr pending;        // a callback's exception, raised when the call returns
  std::atomic<bool> busy{false};
  std::vector<TaskPtr> tasks_seen;   // tasks given to the trainer stay alive with it

  TrainerOptions options(int64_t log_every, bool verbose) {
    TrainerOptions o;
    o.log_every = log_every;
    o.verbose = verbose;
    o.on_report = [this](const StepStats& s, int64_t done, int64_t total) { report(s, done, total); };
    o.stop_requested = [this] { return stop.load(); };
    return o;
  }

  void report(const StepStats& s, int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    try {
      py::dict rec = stats_dict(s);
      rec["task"] = phase;
      rec["phase_step"] = done;
      rec["phase_steps"] = total;
      log.append(rec);
      if (!on_step.is_none() && py::bool_(on_step(rec))) {
        stop = true;
        should_stop = true;
      }
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    } catch (...) {
      if (!pending) pending = std::current_exception();
      stop = true;
      should_stop = true;
    }
  }

  void adopt(std::unique_ptr<ContinualTrainer> trainer) {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    t = std::move(trainer);
    g_registry[t.get()] = this;
  }
  ~PyTrainer() {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    if (t) g_registry.erase(t.get());
  }

  // Runs f without the GIL (one call at a time per trainer), then raises a callback's exception.
  template <typename F>
  auto released(F&& f) -> decltype(f()) {
    if (busy.exchange(true)) throw Error("ContinualTrainer: busy in another thread (one call at a time)");
    struct Done {
      std::atomic<bool>& b;
      ~Done() { b = false; }
    } done{busy};
    stop = false;
    pending = nullptr;
    auto raise_pending = [&] {
      if (pending) {
        std::exception_ptr p = pending;
        pending = nullptr;
        std::rethrow_exception(p);
      }
    };
    // An exception inside a step (a Python hook's) leaves that step's forward on this thread's
    // autograd tape: dropped, so that the next backward on this thread does not walk it.
    auto run = [&]() -> decltype(f()) {
      py::gil_scoped_release nogil;
      try {
        return f();
      } catch (...) {
        tape().clear();
        throw;
      }
    };
    if constexpr (std::is_void_v<decltype(f())>) {
      run();
      raise_pending();
    } else {
      decltype(f()) r = run();
      raise_pending();
      return r;
    }
  }

  ContinualTrainer& get() {
    if (!t) throw Error("ContinualTrainer: not initialised");
    return *t;
  }

  std::vector<const ClsTaskData*> keep(const std::vector<TaskPtr>& tasks) {
    std::vector<const ClsTaskData*> v;
    for (const TaskPtr& p : tasks) {
      if (!p) throw InputError("a task is None");
      v.push_back(p.get());
      tasks_seen.push_back(p);
    }
    return v;
  }

  void evaluated(const std::vector<double>& row, const std::vector<const ClsTaskData*>& tasks) {
    if (on_evaluation.is_none()) return;
    py::dict rec;
    py::list names;
    for (const ClsTaskData* d : tasks) names.append(d->name);
    rec["tasks"] = names;
    rec["accuracies"] = row;
    rec["row"] = get().history().size() - 1;
    rec["optimizer_steps"] = get().optimizer_steps();
    if (py::bool_(on_evaluation(rec))) should_stop = true;
  }
};

std::unique_ptr<PyTrainer> make_trainer(const Gpt2Model& base, const std::string& method, const py::object& aria_s,
                                        const py::object& train_s, std::optional<std::string> device,
                                        int64_t log_every, bool verbose, py::object on_step, py::object on_eval) {
  if (log_every < 1) throw InputError("ContinualTrainer: log_every must be >= 1");
  const ExperimentConfig cfg = settings_from(aria_s, train_s);
  const MethodSpec spec = as_input([&] { return method_spec(method); });
  const Device d = device ? device_arg(*device) : base.device();
  auto p = std::make_unique<PyTrainer>();
  p->on_step = std::move(on_step);
  p->on_evaluation = std::move(on_eval);
  // As aria continual builds each run: a copy of the model, gated MLPs injected (seeded by the run's
  // seed) when the method has them, adapters when it uses them.
  ContinualModel model;
  {
    py::gil_scoped_release nogil;
    model.gpt = base.to(d);
  }
  if (spec.gated_mlp) inject_gated_mlp(model.gpt, cfg.train.seed, cfg.aria.gate_init_std);
  model.use_adapters = spec.adapters;
  model.adapter_dim = cfg.aria.adapter_dim;
  // Settings that only fail against the model or device (bf16 on the CPU) are input errors too.
  p->adopt(as_input([&] {
    return std::make_unique<ContinualTrainer>(std::move(model), cfg.aria, cfg.train, spec,
                                              p->options(log_every, verbose));
  }));
  return p;
}

std::vector<std::vector<double>> vec_matrix(const py::object& m) {
  return m.cast<std::vector<std::vector<double>>>();
}

}  // namespace

py::object trainer_object(const ContinualTrainer& t) {
  PyTrainer* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto it = g_registry.find(&t);
    if (it != g_registry.end()) p = it->second;
  }
  if (!p) return py::none();
  return py::cast(p, py::return_value_policy::reference);
}

void bind_trainer(py::module_& m) {
  py::class_<PyTrainer, std::unique_ptr<PyTrainer>> c(m, "ContinualTrainer",
      "One method on one task sequence (train/continual/continual_trainer.h): add_task, train, consolidate_task, "
      "evaluate_all_tasks, save/load.");
  c.def(py::init(&make_trainer), py::arg("model"), py::arg("method") = "aria", py::kw_only(),
        py::arg("aria") = py::none(), py::arg("train") = py::none(), py::arg("device") = py::none(),
        py::arg("log_every") = 10, py::arg("verbose") = false, py::arg("on_step") = py::none(),
        py::arg("on_evaluation") = py::none(),
        "model: a GPT2 (copied, never changed). aria / train: dicts of the experiment config's 'aria' and 'train' "
        "keys (train/continual/aria_config.h; unknown keys and bad values raise InputError).");
  c.def_readwrite("on_step", &PyTrainer::on_step)
      .def_readwrite("on_evaluation", &PyTrainer::on_evaluation)
      .def_readwrite("should_stop", &PyTrainer::should_stop)
      .def_readonly("log", &PyTrainer::log)
      .def_property_readonly("method", [](PyTrainer& p) { return p.get().method().name; })
      .def_property_readonly("method_spec", [](PyTrainer& p) {
        const MethodSpec& s = p.get().method();
        py::dict d;
        d["name"] = s.name;
        d["gated_mlp"] = s.gated_mlp;
        d["adapters"] = s.adapters;
        d["consolidation"] = s.spc;
        d["plasticity"] = s.plasticity;
        d["dampening"] = s.dampening;
        d["asymmetric_lr"] = s.asymmetric_lr;
        d["freeze_trunk"] = s.freeze_trunk;
        d["joint"] = s.joint;
        d["plugin"] = s.plugin;
        return d;
      })
      .def_property_readonly("precision", [](PyTrainer& p) { return std::string(p.get().precision()); })
      .def_property_readonly("optimizer_steps", [](PyTrainer& p) { return p.get().optimizer_steps(); })
      .def_property_readonly("phase_steps", [](PyTrainer& p) { return p.get().phase_steps(); })
      .def_property_readonly("steps_per_task", [](PyTrainer& p) { return p.get().train_settings().steps_per_task; })
      .def_property_readonly("trained_tasks", [](PyTrainer& p) { return p.get().trained_tasks(); })
      .def_property_readonly("history", [](PyTrainer& p) { return p.get().history(); })
      .def_property_readonly("last_step", [](PyTrainer& p) { return stats_dict(p.get().last_step()); })
      .def_property_readonly("task_names", [](PyTrainer& p) {
        std::vector<std::string> names;
        for (const TaskSlot& s : p.get().model().tasks) names.push_back(s.name);
        return names;
      })
      .def_property_readonly("num_parameters", [](PyTrainer& p) { return p.get().model().num_parameters(); })
      .def_property_readonly("gpt", [](PyTrainer& p) { return p.get().model().gpt; },
                             "The trunk (a GPT2 sharing the trainer's parameters)")
      .def_property_readonly("plugin", [](PyTrainer& p) -> py::object {
        ContinualMethod* pl = p.get().plugin();
        return pl ? plugin_object(*pl) : py::none();
      }, "The Python object of a method written in Python (None otherwise)")
      .def("named_parameters", [](PyTrainer& p) {
             py::dict d;
             for (const auto& [name, t] : p.get().model().named_parameters()) d[py::str(name)] = t;
             return d;
           }, "Every parameter (trunk, gates, task adapters and heads) by name: the live tensors")
      .def("task_id", [](PyTrainer& p, const std::string& name) { return p.get().task_id(name); })
      .def("add_task", [](PyTrainer& p, const py::object& task, std::optional<int> num_labels) {
             std::string name;
             int n = 0;
             if (py::isinstance<ClsTaskData>(task)) {
               const TaskPtr d = task.cast<TaskPtr>();
               name = d->name;
               n = num_labels ? *num_labels : d->num_labels();
             } else {
               name = task.cast<std::string>();
               if (!num_labels) throw InputError("add_task: give num_labels= with a task name");
               n = *num_labels;
             }
             if (n < 1) throw InputError("add_task: num_labels must be >= 1");
             p.phase = name;
             return as_input([&] { return p.get().add_task(name, n); });
           }, py::arg("task"), py::arg("num_labels") = py::none(), "Registers a task (a Task, or a name with num_labels)")
      .def("train", [](PyTrainer& p, const TaskPtr& task, std::optional<int64_t> steps) {
             if (!task) throw InputError("train: task is None");
             if (steps && *steps < 0) throw InputError("train: steps must be >= 0");
             p.keep({task});
             p.phase = task->name;
             return p.released([&] { return p.get().train_steps(*task, steps ? *steps : INT64_MAX); });
           }, py::arg("task"), py::arg("steps") = py::none(),
           "Trains the active task (its remaining steps, or at most `steps`); returns the steps run")
      .def("train_joint", [](PyTrainer& p, const std::vector<TaskPtr>& tasks, std::optional<int64_t> steps) {
             const auto v = p.keep(tasks);
             p.phase = "joint";
             return p.released([&] { return p.get().train_joint_steps(v, steps ? *steps : INT64_MAX); });
           }, py::arg("tasks"), py::arg("steps") = py::none(), "multitask: joint training over every task's head")
      .def("consolidate_task", [](PyTrainer& p, const py::object& id_or_task, std::optional<TaskPtr> task) {
             TaskPtr data = task ? *task : (py::isinstance<ClsTaskData>(id_or_task) ? id_or_task.cast<TaskPtr>() : nullptr);
             if (!data) throw InputError("consolidate_task: give the task's data (consolidate_task(id, task) or (task))");
             const int id = py::isinstance<py::int_>(id_or_task) ? id_or_task.cast<int>() : p.get().task_id(data->name);
             p.keep({data});
             if (id < 0 || id >= int(p.get().model().tasks.size()) || p.get().model().tasks[size_t(id)].name != data->name)
               throw InputError("consolidate_task: task " + std::to_string(id) + " is not '" + data->name + "'");
             p.released([&] { p.get().consolidate_task(id, *data); });
           }, py::arg("task_id"), py::arg("task") = py::none(),
           "End of a task: the Fisher on its training split (aria, ewc), a Python method's on_consolidate")
      .def("evaluate_all_tasks", [](PyTrainer& p, const std::vector<TaskPtr>& tasks, const std::string& split) {
             const auto v = p.keep(tasks);
             if (!split.empty() && split != "test" && split != "validation" && split != "train")
               throw InputError("unknown split '" + split + "' (train, validation, test)");
             auto h = p.released([&] { return p.get().evaluate_all_tasks(v, split); });
             p.evaluated(h.back(), v);
             return h;
           }, py::arg("tasks"), py::arg("split") = "",
           "Accuracy of every task, appended to the history, which is returned whole; then on_evaluation")
      .def("evaluate_tasks", [](PyTrainer& p, const std::vector<TaskPtr>& tasks, const std::string& split) {
             const auto v = p.keep(tasks);
             if (!split.empty() && split != "test" && split != "validation" && split != "train")
               throw InputError("unknown split '" + split + "' (train, validation, test)");
             return p.released([&] { return p.get().evaluate_tasks(v, split); });
           }, py::arg("tasks"), py::arg("split") = "", "Accuracies of the tasks (the history is not changed)")
      .def("metrics", [](PyTrainer& p) {
             const auto& h = p.get().history();
             if (h.size() < 2)
               throw InputError("metrics: the history needs the row before training and one row per trained task");
             AccMatrix a(h.begin() + 1, h.end());
             return metrics_dict(as_input([&] { return compute_cl_metrics(a, h[0]); }));
           }, "ACC, BWT, forgetting, FWT of the history read as [before training, after task 0, after task 1, ...]")
      .def("save", [](PyTrainer& p, const std::string& dir) { p.released([&] { p.get().save(dir); }); }, py::arg("dir"),
           "A checkpoint: model, gates, adapters, heads, optimizer, SPC buffers, counters, RNG, history")
      .def_static("load", [](const std::string& dir, const std::string& device, int64_t log_every, bool verbose,
                             py::object on_step, py::object on_eval) {
                    if (log_every < 1) throw InputError("ContinualTrainer.load: log_every must be >= 1");
                    const Device d = device_arg(device);
                    auto p = std::make_unique<PyTrainer>();
                    p->on_step = std::move(on_step);
                    p->on_evaluation = std::move(on_eval);
                    TrainerOptions o = p->options(log_every, verbose);
                    std::unique_ptr<ContinualTrainer> t;
                    {
                      py::gil_scoped_release nogil;
                      t = as_input([&] { return std::make_unique<ContinualTrainer>(ContinualTrainer::load(dir, o, d)); });
                    }
                    p->adopt(std::move(t));
                    return p;
                  }, py::arg("dir"), py::arg("device") = "cpu", py::kw_only(), py::arg("log_every") = 10,
                  py::arg("verbose") = false, py::arg("on_step") = py::none(), py::arg("on_evaluation") = py::none(),
                  "A trainer from a checkpoint; it continues bit for bit as the saved one would have")
      .def("__repr__", [](PyTrainer& p) {
        return "aria.ContinualTrainer(method='" + p.get().method().name + "', " + std::to_string(p.get().model().tasks.size()) +
               " tasks, " + std::to_string(p.get().optimizer_steps()) + " optimizer steps)";
      });

  m.def("cl_metrics", [](const py::object& matrix, const py::object& before, bool joint) {
          const AccMatrix a = vec_matrix(matrix);
          if (joint) {
            if (a.size() != 1) throw InputError("cl_metrics: a joint run has one row of final accuracies");
            return metrics_dict(as_input([&] { return compute_joint_metrics(a[0]); }));
          }
          const std::vector<double> b = before.is_none() ? std::vector<double>{} : before.cast<std::vector<double>>();
          return metrics_dict(as_input([&] { return compute_cl_metrics(a, b); }));
        }, py::arg("matrix"), py::kw_only(), py::arg("before") = py::none(), py::arg("joint") = false,
        "ACC, BWT, forgetting, FWT of an accuracy matrix a[i][j] (and b[j] before training); None where undefined");
  m.def("method_names", &method_names, "Every method a trainer accepts (built-in, plug-ins, registered from Python)");
}

}  // namespace aria::python
