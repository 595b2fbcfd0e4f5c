// The continual trainer against its PyTorch twin (tools/hf_reference/continual_twin.py, docs/twin.md):
// from one initial GPT-2 and one batch order, every method over three tasks gives the per-step losses
// (ce, plasticity, SPC/EWC penalty, a plug-in's extra loss, their sum), the gradient norm and the
// gate means that the twin computed, to a relative 1e-4, and the same Fisher diagonals at every
// consolidation (1e-5). The twin's numbers are the committed fixture tests/fixtures/continual_twin/.
//
// Regenerating the fixture (docs/twin.md): ARIA_TWIN_DUMP=DIR makes the CPU case also write what the
// twin reads (DIR/initial.safetensors, DIR/setup.json with the settings, the tasks, every method's
// micro-batches in step order and aria's own per-step numbers, DIR/aria_fisher.safetensors), then
// tools/hf_reference/continual_twin.py --setup DIR --out tests/fixtures/continual_twin.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/model/safetensors.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"
#include "tests/support/test_util.h"

using namespace aria;
using namespace aria::testing;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kMethods = {"aria", "finetune", "ewc", "adapters", "multitask", "replay", "lwf"};
const fs::path kFixture = fs::path(ARIA_SOURCE_DIR) / "tests/fixtures/continual_twin";
constexpr double kLossTol = 1e-4;  // relative, per step
// Fisher: max|aria - twin| <= max(kFisherTol, kFisherSpread * spread) * max|twin|, spread the twin's own
// float32-vs-float64 distance for that tensor (recorded in the fixture): a Fisher estimated after a few
// steps on a task is only as exact as float32 training lets it be (docs/twin.md has the measured values).
constexpr double kFisherTol = 5e-5;
constexpr double kFisherSpread = 20;

// FNV-1a over little-endian int32 values and raw bytes: the twin computes the same hashes, so a fixture
// made from another batch order or another initial model is recognised as such.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  }
  void i32(int32_t v) {
    const unsigned char b[4] = {uint8_t(v), uint8_t(uint32_t(v) >> 8), uint8_t(uint32_t(v) >> 16),
                                uint8_t(uint32_t(v) >> 24)};
    bytes(b, 4);
  }
  std::string hex() const {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

struct MicroBatch {
  int task = 0;
  std::vector<std::vector<int32_t>> rows;  // real tokens only (padding dropped)
  std::vector<int32_t> labels;
};

struct Record {
  std::vector<StepStats> steps;
  std::vector<MicroBatch> micro;
  std::vector<std::pair<int, FisherResult>> fisher;  // on the CPU
  std::string batches_fnv() const {
    Fnv f;
    for (const MicroBatch& m : micro) {
      f.i32(m.task);
      f.i32(int32_t(m.rows.size()));
      for (size_t r = 0; r < m.rows.size(); ++r) {
        f.i32(int32_t(m.rows[r].size()));
        for (int32_t id : m.rows[r]) f.i32(id);
        f.i32(m.labels[r]);
      }
    }
    return f.hex();
  }
};

// The three tasks and the settings (small, so that the fixture is small): batch 8 x accum 2, 6 steps a
// task, plasticity on from the 9th optimizer step (inside task 1), Fisher over the whole training split.
struct Setup {
  ClsTaskData t0 = synthetic_task("range", 20, 12, 1), t1 = synthetic_task("parity", 20, 12, 2);
  ClsTaskData t2 = synthetic_task("three", 20, 12, 3);
  std::vector<const ClsTaskData*> all = {&t0, &t1, &t2};
  AriaSettings aria = small_aria_settings();
  TrainSettings train = [] {
    TrainSettings t = small_train_settings(6);
    t.lr = 1e-3;
    t.grad_accum = 2;
    t.precision = "fp32";
    return t;
  }();
};

ContinualModel initial_model(Device dev) {
  ContinualModel m;
  m.gpt = gpt2_random(tiny_gpt2_config(), 21, dev);
  return m;
}

std::string initial_fnv(const ContinualModel& m) {
  auto params = m.gpt.named_parameters();
  std::sort(params.begin(), params.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Fnv f;
  for (const auto& [name, p] : params) {
    f.bytes(name.data(), name.size());
    const std::vector<float> v = p.to_floats();
    f.bytes(v.data(), v.size() * sizeof(float));
  }
  return f.hex();
}

MicroBatch micro_of(int task, const ClsBatch& b) {
  MicroBatch m;
  m.task = task;
  const std::vector<int32_t> ids = b.ids.to_ints(), last = b.last_index.to_ints();
  const int64_t T = b.ids.size(1);
  m.labels = b.host_labels.empty() ? b.labels.to_ints() : b.host_labels;
  for (size_t r = 0; r < last.size(); ++r) {
    const int64_t len = int64_t(last[r]) - int64_t(r) * T + 1;
    m.rows.emplace_back(ids.begin() + int64_t(r) * T, ids.begin() + int64_t(r) * T + len);
  }
  return m;
}

Record run_method(const Setup& s, const std::string& method, Device dev) {
  Record rec;
  TrainerOptions o = quiet();
  o.log_every = 1;  // every step is a report point: its statistics (the SPC penalty's value too) are read
  o.on_report = [&](const StepStats& st, int64_t, int64_t) { rec.steps.push_back(st); };
  o.on_micro_batch = [&](int task, const ClsBatch& b) { rec.micro.push_back(micro_of(task, b)); };
  o.on_fisher = [&](int task, const FisherResult& f) {
    FisherResult c = f;
    for (auto& np : c.fisher) np.second = np.second.to(Device::cpu());
    rec.fisher.emplace_back(task, std::move(c));
  };
  ContinualTrainer tr(initial_model(dev), s.aria, s.train, method_spec(method), o);
  if (method == "multitask") {
    tr.train_joint(s.all);
    return rec;
  }
  for (const ClsTaskData* t : s.all) {
    const int id = tr.add_task(t->name, t->num_labels());
    tr.train(*t);
    tr.consolidate_task(id, *t);
  }
  return rec;
}

json step_json(const StepStats& st) {
  return {{"step", st.step},   {"loss", st.loss},           {"ce", st.ce},
          {"plasticity", st.plasticity}, {"spc", st.spc},   {"method_loss", st.method_loss},
          {"grad_norm", st.grad_norm},   {"lr", st.lr},     {"gate_means", st.gate_means}};
}

// What the twin reads (docs/twin.md): the initial model, the settings, the tasks' training splits,
// every method's micro-batches in step order and aria's own numbers (for the twin's side-by-side print).
void write_dump(const Setup& s, const std::map<std::string, Record>& runs, const fs::path& dir) {
  fs::create_directories(dir);
  const ContinualModel m = initial_model(Device::cpu());
  save_safetensors((dir / "initial.safetensors").string(), m.gpt.named_parameters());
  ExperimentConfig cfg;
  cfg.aria = s.aria;
  cfg.train = s.train;
  const json settings = experiment_config_to_json(cfg);
  const Gpt2Config& c = m.gpt.config;
  json j = {{"format", "aria-twin-setup/1"},
            {"config",
             {{"vocab_size", c.vocab_size},
              {"n_positions", c.n_positions},
              {"n_embd", c.n_embd},
              {"n_layer", c.n_layer},
              {"n_head", c.n_head},
              {"layer_norm_epsilon", c.layer_norm_epsilon}}},
            {"aria", settings.at("aria")},
            {"train", settings.at("train")},
            {"schedule", {{"kind", "cosine"}, {"warmup_fraction", 0.1}, {"min_lr_ratio", 0.1}}},
            {"initial", "initial.safetensors"},
            {"initial_fnv", initial_fnv(m)}};
  for (const ClsTaskData* t : s.all) {
    json ids = json::array(), labels = json::array();
    for (const ClsExample& e : t->train) ids.push_back(e.ids), labels.push_back(e.label);
    j["tasks"].push_back({{"name", t->name}, {"num_labels", t->num_labels()}, {"train_ids", ids}, {"train_labels", labels}});
  }
  std::vector<std::pair<std::string, Tensor>> fisher;
  for (const auto& [method, r] : runs) {
    json micro = json::array(), steps = json::array();
    for (const MicroBatch& mb : r.micro) micro.push_back({{"task", mb.task}, {"ids", mb.rows}, {"labels", mb.labels}});
    for (const StepStats& st : r.steps) steps.push_back(step_json(st));
    j["methods"][method] = {{"micro_batches", micro}, {"batches_fnv", r.batches_fnv()}, {"aria_steps", steps}};
    for (const auto& [task, f] : r.fisher)
      for (const auto& [name, t] : f.fisher) fisher.emplace_back(method + "/" + std::to_string(task) + "/" + name, t);
  }
  std::ofstream(dir / "setup.json") << j.dump(1) << "\n";
  save_safetensors((dir / "aria_fisher.safetensors").string(), fisher);
}

json load_fixture() {
  const fs::path p = kFixture / "twin.json";
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), "missing fixture ", p.string(), " (docs/twin.md says how to make it)");
  return json::parse(in);
}

// |got - want| <= tol * |want|; a value the twin has as exactly 0 (a term that is off) must be 0 here too.
void check_rel(double got, double want, double tol, const std::string& what) {
  INFO(what, ": aria ", got, ", twin ", want);
  if (want == 0.0) {
    CHECK(got == 0.0);
    return;
  }
  CHECK(std::fabs(got - want) <= tol * std::fabs(want));
}

void check_method(const std::string& method, const Record& r, const json& fx, const SafeTensorsFile& fisher) {
  INFO("method ", method);
  const json& m = fx.at("methods").at(method);
  REQUIRE_MESSAGE(r.batches_fnv() == m.at("batches_fnv").get<std::string>(),
                  "the trainer's batch order is not the one the fixture was made from: regenerate it (docs/twin.md)");
  const json& steps = m.at("steps");
  REQUIRE(r.steps.size() == steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepStats& st = r.steps[i];
    const json& w = steps[i];
    const std::string at = "step " + std::to_string(i + 1);
    CHECK(st.step == w.at("step").get<int64_t>());
    check_rel(st.lr, w.at("lr").get<double>(), 1e-12, at + " lr");
    check_rel(st.loss, w.at("loss").get<double>(), kLossTol, at + " loss");
    check_rel(st.ce, w.at("ce").get<double>(), kLossTol, at + " ce");
    check_rel(st.plasticity, w.at("plasticity").get<double>(), kLossTol, at + " plasticity");
    // The penalty's value (never its gradient) is aria's expanded form lambda/2 (A theta^2 - 2 B theta + C),
    // which cancels near the anchors (train/continual/spc.h); its error is bounded by the float32 rounding of
    // lambda/2 sum A theta^2 (the twin's "spc_scale"), not by the penalty's own size.
    const double spc = w.at("spc").get<double>(), scale = w.at("spc_scale").get<double>();
    INFO(at, " spc: aria ", st.spc, ", twin ", spc, " (scale ", scale, ")");
    CHECK(std::fabs(st.spc - spc) <= kLossTol * std::fabs(spc) + 1e-6 * scale);
    check_rel(st.method_loss, w.at("method_loss").get<double>(), kLossTol, at + " method loss");
    check_rel(st.grad_norm, w.at("grad_norm").get<double>(), kLossTol, at + " grad norm");
    const auto gates = w.at("gate_means").get<std::vector<double>>();
    REQUIRE(st.gate_means.size() == gates.size());
    for (size_t l = 0; l < gates.size(); ++l)
      check_rel(st.gate_means[l], gates[l], kLossTol, at + " gate mean of layer " + std::to_string(l));
  }
  const json& fnames = m.at("fisher");  // "task/param" keys the twin wrote, in its order
  size_t seen = 0;
  for (const auto& [task, f] : r.fisher)
    for (const auto& [name, t] : f.fisher) {
      const std::string key = method + "/" + std::to_string(task) + "/" + name;
      INFO("Fisher ", key);
      REQUIRE_MESSAGE(fisher.find(key) != nullptr, "the fixture has no Fisher ", key);
      const std::vector<double> got = t.to_doubles(), want = fisher.load(key, DType::F64).to_doubles();
      REQUIRE(got.size() == want.size());
      double top = 0, err = 0;
      for (size_t k = 0; k < got.size(); ++k) {
        top = std::max(top, std::fabs(want[k]));
        err = std::max(err, std::fabs(got[k] - want[k]));
      }
      const json& spreads = m.at("fisher_f32_spread");
      const std::string local = std::to_string(task) + "/" + name;
      const double spread = spreads.contains(local) ? spreads.at(local).get<double>() : 0.0;
      INFO("max |aria - twin| ", err, ", largest entry ", top, ", twin float32 vs float64 ", spread);
      CHECK(err <= std::max(kFisherTol, kFisherSpread * spread) * top);
      ++seen;
    }
  CHECK(seen == fnames.size());
}

void check_against_twin(Device dev) {
  const Setup s;
  std::map<std::string, Record> runs;
  for (const std::string& method : kMethods) runs[method] = run_method(s, method, dev);
  // Written before any check, so that a stale or missing fixture can be regenerated from it.
  if (const char* dir = std::getenv("ARIA_TWIN_DUMP"); dir && *dir && dev.is_cpu()) write_dump(s, runs, dir);
  const json fx = load_fixture();
  REQUIRE_MESSAGE(initial_fnv(initial_model(Device::cpu())) == fx.at("initial_fnv").get<std::string>(),
                  "the initial model is not the one the fixture was made from: regenerate it (docs/twin.md)");
  const SafeTensorsFile fisher = SafeTensorsFile::open((kFixture / "twin_fisher.safetensors").string());
  for (const std::string& method : kMethods) check_method(method, runs.at(method), fx, fisher);
}

}  // namespace

TEST_CASE("continual trainer on the CPU matches the PyTorch twin fixture for every method") {
  check_against_twin(Device::cpu());
}

TEST_CASE("continual trainer on CUDA in float32 matches the PyTorch twin fixture for every method") {
  if (!gpu_or_skip("the continual trainer against the PyTorch twin fixture on CUDA")) return;
  check_against_twin(Device::cuda(0));
}
