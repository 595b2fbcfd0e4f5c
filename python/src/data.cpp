// Classification tasks for the continual trainer: from Python lists of (text, label) or from task
// folders (docs/data.md "Task folders"), tokenized once with the GPT-2 tokenizer.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "bindings.h"
#include "aria/model/tokenizer.h"
#include "aria/train/data/cls_data.h"

namespace aria::python {

namespace {

using TaskPtr = std::shared_ptr<ClsTaskData>;

const std::vector<ClsExample>& split_ref(const ClsTaskData& t, const std::string& split) {
  if (split == "train") return t.train;
  if (split == "validation") return t.validation;
  if (split == "test") return t.test;
  throw InputError("unknown split '" + split + "' (train, validation, test)");
}

// (text, label) pairs as read from Python: labels are ints or strs.
struct RawExample {
  std::string text;
  std::optional<int64_t> index;
  std::string name;
};

std::vector<RawExample> read_pairs(const py::object& examples, const std::string& where) {
  std::vector<RawExample> out;
  if (examples.is_none()) return out;
  int64_t i = 0;
  for (const py::handle& item : examples) {
    const std::string at = where + "[" + std::to_string(i++) + "]";
    py::sequence pair;
    if (!py::isinstance<py::sequence>(item) || py::isinstance<py::str>(item) || py::len(item) != 2)
      throw InputError(at + ": expected a (text, label) pair");
    pair = py::reinterpret_borrow<py::sequence>(item);
    if (!py::isinstance<py::str>(pair[0])) throw InputError(at + ": the text must be a str");
    RawExample e;
    e.text = pair[0].cast<std::string>();
    if (py::isinstance<py::bool_>(pair[1])) throw InputError(at + ": a label is an int or a str, not a bool");
    if (py::isinstance<py::int_>(pair[1])) e.index = pair[1].cast<int64_t>();
    else if (py::isinstance<py::str>(pair[1])) e.name = pair[1].cast<std::string>();
    else throw InputError(at + ": a label is an int (an index into labels) or a str (a label name)");
    out.push_back(std::move(e));
  }
  return out;
}

TaskPtr make_task(const std::string& name, const py::object& train, const py::object& test,
                  const py::object& validation, std::optional<std::vector<std::string>> labels,
                  const Gpt2Tokenizer& tok, int max_seq_len) {
  if (name.empty()) throw InputError("make_task: the task needs a name");
  if (max_seq_len < 1) throw InputError("make_task: max_seq_len must be >= 1");
  const std::vector<std::string> split_names = {"train", "test", "validation"};
  std::vector<std::vector<RawExample>> raw = {read_pairs(train, "train"), read_pairs(test, "test"),
                                              read_pairs(validation, "validation")};
  if (raw[0].empty()) throw InputError("make_task '" + name + "': the training split is empty");
  if (raw[1].empty()) throw InputError("make_task '" + name + "': the test split is empty");
  auto task = std::make_shared<ClsTaskData>();
  task->name = name;
  task->files = {"python lists"};
  if (labels) {
    if (labels->empty()) throw InputError("make_task '" + name + "': labels= is empty");
    task->label_names = *labels;
    task->labels_source = "given";
  } else {
    std::set<std::string> names;
    int64_t top = -1;
    for (const auto& split : raw)
      for (const RawExample& e : split) {
        if (e.index) top = std::max(top, *e.index);
        else names.insert(e.name);
      }
    if (!names.empty() && top >= 0)
      throw InputError("make_task '" + name + "': labels mix ints and strs; pass labels=[...] to name them");
    if (top >= 0)
      for (int64_t i = 0; i <= top; ++i) task->label_names.push_back(std::to_string(i));
    else
      task->label_names.assign(names.begin(), names.end());
    task->labels_source = "collected from the data (sorted)";
  }
  std::map<std::string, int32_t> by_name;
  for (size_t i = 0; i < task->label_names.size(); ++i) by_name[task->label_names[i]] = int32_t(i);
  std::vector<std::vector<ClsExample>*> dst = {&task->train, &task->test, &task->validation};
  for (size_t s = 0; s < raw.size(); ++s)
    for (size_t i = 0; i < raw[s].size(); ++i) {
      const RawExample& e = raw[s][i];
      const std::string at = "make_task '" + name + "': " + split_names[s] + "[" + std::to_string(i) + "]";
      ClsExample ex;
      if (e.index) {
        if (*e.index < 0 || *e.index >= int64_t(task->label_names.size()))
          throw InputError(at + ": label " + std::to_string(*e.index) + " outside [0, " +
                           std::to_string(task->label_names.size()) + ")");
        ex.label = int32_t(*e.index);
      } else {
        auto it = by_name.find(e.name);
        if (it == by_name.end()) throw InputError(at + ": unknown label '" + e.name + "'");
        ex.label = it->second;
      }
      ex.ids = tok.encode(e.text);
      if (ex.ids.empty()) throw InputError(at + ": the text is empty");
      if (int(ex.ids.size()) > max_seq_len) ex.ids.resize(size_t(max_seq_len));
      dst[s]->push_back(std::move(ex));
    }
  task->validation_source = raw[2].empty() ? "none" : "given";
  return task;
}

}  // namespace

void bind_data(py::module_& m) {
  py::class_<ClsTaskData, TaskPtr>(m, "Task", "A labelled text classification task, tokenized")
      .def_property_readonly("name", [](const ClsTaskData& t) { return t.name; })
      .def_property_readonly("label_names", [](const ClsTaskData& t) { return t.label_names; })
      .def_property_readonly("num_labels", &ClsTaskData::num_labels)
      .def_property_readonly("labels_source", [](const ClsTaskData& t) { return t.labels_source; })
      .def_property_readonly("validation_source", [](const ClsTaskData& t) { return t.validation_source; })
      .def("size", [](const ClsTaskData& t, const std::string& split) { return split_ref(t, split).size(); },
           py::arg("split"))
      .def("examples", [](const ClsTaskData& t, const std::string& split) {
             py::list out;
             for (const ClsExample& e : split_ref(t, split)) out.append(py::make_tuple(e.ids, e.label));
             return out;
           }, py::arg("split"), "[(token ids, label index), ...] of a split")
      .def("__repr__", [](const ClsTaskData& t) {
        return "aria.Task('" + t.name + "', " + std::to_string(t.num_labels()) + " labels, " +
               std::to_string(t.train.size()) + " train / " + std::to_string(t.validation.size()) + " validation / " +
               std::to_string(t.test.size()) + " test)";
      });

  m.def("make_task", &make_task, py::arg("name"), py::arg("train"), py::arg("test"),
        py::arg("validation") = py::none(), py::kw_only(), py::arg("labels") = py::none(), py::arg("tokenizer"),
        py::arg("max_seq_len") = 128,
        "A task from lists of (text, label): labels are indices into labels= or label names (without labels=, "
        "the distinct names sorted, or 0..max index). Texts longer than max_seq_len tokens keep their first "
        "max_seq_len tokens. No validation split is carved: pass validation= to have one.");
  m.def("load_task",
        [](const std::string& dir, const Gpt2Tokenizer& tok, int max_seq_len, int64_t max_train, int64_t max_eval,
           const std::string& text_field, const std::string& label_field, double validation_fraction,
           uint64_t split_seed) {
          ClsDataOptions opt;
          opt.text_field = text_field;
          opt.label_field = label_field;
          opt.validation_fraction = validation_fraction;
          opt.split_seed = split_seed;
          if (max_seq_len < 1 || max_train < 0 || max_eval < 0)
            throw InputError("load_task: max_seq_len must be >= 1, max_train and max_eval >= 0");
          py::gil_scoped_release nogil;
          return as_input([&] {
            return std::make_shared<ClsTaskData>(load_cls_task(dir, tok, max_seq_len, max_train, max_eval, opt));
          });
        },
        py::arg("dir"), py::kw_only(), py::arg("tokenizer"), py::arg("max_seq_len") = 128, py::arg("max_train") = 0,
        py::arg("max_eval") = 0, py::arg("text_field") = "text", py::arg("label_field") = "label",
        py::arg("validation_fraction") = 0.1, py::arg("split_seed") = 1234,
        "A task folder (train/test[/validation] as .jsonl or .csv, labels.json optional), as aria continual reads it");
}

}  // namespace aria::python
