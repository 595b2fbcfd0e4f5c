// Plug-in methods (train/continual/continual_method.h): a method defined here, registered by name and run by
// the unchanged trainer; the replay buffer's reservoir and replay's extra term; LwF's distillation
// term (zero at the task's start, then moving the update); and forgetting against finetune.
// (Bit-exact resume of replay and lwf: tests/test_continual_resume.cpp runs every method_names().)
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/train/continual/continual_method.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;
namespace fs = std::filesystem;

namespace {

struct HookCounts {
  int task_start = 0, extra = 0, after = 0, consolidate = 0;
};
HookCounts g_counts;

// L2 to the weights at the task's start: lambda/2 * |theta - theta_start|^2 over the trunk, added
// once per step (on the step's first micro-batch).
class L2ToStart : public ContinualMethod {
 public:
  explicit L2ToStart(double lambda) : lambda_(lambda) {}
  void on_task_start(const ContinualTrainer& t, int task) override {
    ++g_counts.task_start;
    anchors_.clear();
    if (task == 0) return;
    for (const auto& [name, p] : t.model().gpt.named_parameters()) anchors_.emplace_back(name, p.clone());
  }
  Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) override {
    ++g_counts.extra;
    if (anchors_.empty() || mb.micro_index != 0) return {};
    const auto params = t.model().gpt.named_parameters();
    Tensor sum;
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor d = ops::sum(ops::square(ops::sub(params[i].second, anchors_[i].second)));
      sum = sum.defined() ? ops::add(sum, d) : d;
    }
    return ops::scale(sum, lambda_ / 2);
  }
  void after_step(const ContinualTrainer&) override { ++g_counts.after; }
  void on_consolidate(const ContinualTrainer&, int, const ClsTaskData&) override { ++g_counts.consolidate; }
  std::vector<std::pair<std::string, Tensor>> state_tensors() const override { return anchors_; }
  nlohmann::json state_json() const override { return {{"anchored", !anchors_.empty()}}; }
  void load_state(const ContinualTrainer& t, const std::map<std::string, Tensor>& tensors,
                  const nlohmann::json& j) override {
    anchors_.clear();
    if (!j.at("anchored").get<bool>()) return;
    for (const auto& [name, p] : t.model().gpt.named_parameters()) anchors_.emplace_back(name, tensors.at(name).clone());
  }

 private:
  double lambda_;
  std::vector<std::pair<std::string, Tensor>> anchors_;
};

void register_test_method() {
  static bool done = false;
  if (done) return;
  register_method("test_l2", [](const ContinualTrainer&) { return std::make_unique<L2ToStart>(1.0); });
  done = true;
}

double trunk_distance(const ContinualModel& a, const ContinualModel& b) {
  const auto pa = a.gpt.named_parameters(), pb = b.gpt.named_parameters();
  double s = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const auto x = pa[i].second.to_doubles(), y = pb[i].second.to_doubles();
    for (size_t k = 0; k < x.size(); ++k) s += (x[k] - y[k]) * (x[k] - y[k]);
  }
  return std::sqrt(s);
}

TrainSettings two_micro(int64_t steps) {
  TrainSettings s = small_train_settings(steps);
  s.grad_accum = 2;
  s.batch_size = 4;
  return s;
}

}  // namespace

TEST_CASE("a method registered by name runs through the trainer's hooks and resumes bit for bit") {
  register_test_method();
  CHECK(is_plugin_method("test_l2"));
  CHECK(method_names().back() == "test_l2");
  const MethodSpec spec = method_spec("test_l2");
  CHECK((spec.plugin && !spec.spc && !spec.adapters && !spec.joint));
  CHECK_THROWS_WITH_AS(register_method("ewc", [](const ContinualTrainer&) { return std::make_unique<L2ToStart>(1.0); }),
                       doctest::Contains("already known"), Error);
  CHECK_THROWS_WITH_AS(
      register_method("x_joint", [](const ContinualTrainer&) { return std::make_unique<L2ToStart>(1.0); }, "multitask"),
      doctest::Contains("is not one of aria, finetune, ewc, adapters"), Error);

  const ClsTaskData t0 = synthetic_task("range", 32, 8, 1), t1 = synthetic_task("parity", 32, 8, 2);
  g_counts = {};
  ContinualTrainer l2(plain_model(), small_aria_settings(), two_micro(6), method_spec("test_l2"), quiet());
  ContinualTrainer ft(plain_model(), small_aria_settings(), two_micro(6), method_spec("finetune"), quiet());
  for (ContinualTrainer* tr : {&l2, &ft}) {
    tr->add_task(t0.name, 2);
    tr->train(t0);
    tr->consolidate_task(0, t0);
  }
  // Task 0: no anchors yet, so the same run as finetune.
  check_bitwise_equal(l2.model(), ft.model());
  const ContinualModel start = ContinualModel{l2.model().gpt.to(l2.model().gpt.dtype()), {}, 64, false};
  for (ContinualTrainer* tr : {&l2, &ft}) {
    tr->add_task(t1.name, 2);
    tr->train_steps(t1, 2);
  }
  // Saved mid-task 1 and resumed: the anchors come back from the checkpoint.
  const fs::path dir = checkpoint_temp_dir("plugin");
  l2.save(dir.string());
  ContinualTrainer resumed = ContinualTrainer::load(dir.string(), quiet());
  REQUIRE(resumed.plugin() != nullptr);
  for (ContinualTrainer* tr : {&l2, &ft, &resumed}) tr->train(t1);
  check_bitwise_equal(l2.model(), resumed.model());
  CHECK(l2.last_step().loss == resumed.last_step().loss);
  fs::remove_all(dir);

  CHECK(g_counts.task_start == 2);
  CHECK(g_counts.after == 6 + 6 + 4);                 // l2's 12 steps, the resumed run's 4
  CHECK(g_counts.extra == 2 * g_counts.after);        // one call per micro-batch
  CHECK(g_counts.consolidate == 1);
  CHECK(l2.last_step().method_loss > 0);
  CHECK(ft.last_step().method_loss == 0);
  CHECK(l2.last_step().loss == l2.last_step().ce + l2.last_step().method_loss);
  // The pull towards the task's start weights shows in the trunk.
  const double d_l2 = trunk_distance(l2.model(), start), d_ft = trunk_distance(ft.model(), start);
  MESSAGE("trunk drift over task 1: test_l2 ", d_l2, ", finetune ", d_ft);
  CHECK(d_l2 < d_ft);
}

TEST_CASE("reservoir sampling keeps min(n, k) distinct stream items, uniformly, reproducibly") {
  Rng a(5), b(5);
  CHECK(reservoir_sample(10, 4, a) == reservoir_sample(10, 4, b));
  Rng c(1);
  const std::vector<size_t> all = reservoir_sample(3, 8, c);
  CHECK(all == std::vector<size_t>{0, 1, 2});
  const size_t n = 20, k = 5;
  const int runs = 4000;
  std::vector<int> hits(n, 0);
  for (int s = 0; s < runs; ++s) {
    Rng r(uint64_t(s) * 7919 + 1);
    const std::vector<size_t> res = reservoir_sample(n, k, r);
    REQUIRE(res.size() == k);
    CHECK(std::set<size_t>(res.begin(), res.end()).size() == k);
    for (size_t i : res) {
      REQUIRE(i < n);
      ++hits[i];
    }
  }
  // Each item is kept with probability k/n = 0.25: 1000 of 4000 runs, sd ~ 27.
  for (size_t i = 0; i < n; ++i) {
    INFO("item ", i);
    CHECK(std::abs(hits[i] - runs * double(k) / double(n)) < 150);
  }
}

TEST_CASE("replay: each task's buffer is a reservoir of its training split, replayed from the next task on") {
  const ClsTaskData t0 = synthetic_task("range", 40, 8, 1), t1 = synthetic_task("parity", 40, 8, 2);
  AriaSettings aria = small_aria_settings();
  aria.replay_per_task = 6;
  aria.replay_batch = 3;
  ContinualTrainer tr(plain_model(), aria, two_micro(4), method_spec("replay"), quiet());
  ContinualTrainer ft(plain_model(), aria, two_micro(4), method_spec("finetune"), quiet());
  for (ContinualTrainer* x : {&tr, &ft}) {
    x->add_task(t0.name, 2);
    x->train(t0);
  }
  CHECK(tr.last_step().method_loss == 0);  // nothing to replay during the first task
  check_bitwise_equal(tr.model(), ft.model());
  nlohmann::json st = tr.plugin()->state_json();
  REQUIRE(st["buffers"].size() == 1);
  CHECK(st["buffers"][0]["name"] == "range");
  REQUIRE(st["buffers"][0]["ids"].size() == 6);
  for (size_t i = 0; i < 6; ++i) {  // every kept example is one of the task's training examples
    const auto ids = st["buffers"][0]["ids"][i].get<std::vector<int32_t>>();
    const int32_t label = st["buffers"][0]["labels"][i].get<int32_t>();
    bool found = false;
    for (const ClsExample& e : t0.train) found = found || (e.ids == ids && e.label == label);
    CHECK(found);
  }
  for (ContinualTrainer* x : {&tr, &ft}) {
    x->add_task(t1.name, 2);
    x->train(t1);
  }
  CHECK(tr.last_step().method_loss > 0);
  CHECK(tr.optimizer_steps() == ft.optimizer_steps());  // the same step budget
  CHECK(tr.last_step().examples == ft.last_step().examples);
  st = tr.plugin()->state_json();
  CHECK(st["buffers"].size() == 2);
}

TEST_CASE("lwf: the distillation term is zero at the task's start, then its gradient moves the update") {
  const ClsTaskData t0 = synthetic_task("range", 40, 8, 1), t1 = synthetic_task("three", 40, 8, 3);
  auto run = [&](const std::string& method, double lambda) {
    AriaSettings aria = small_aria_settings();
    aria.lwf_lambda = lambda;
    auto tr = std::make_unique<ContinualTrainer>(plain_model(), aria, two_micro(5), method_spec(method), quiet());
    tr->add_task(t0.name, 2);
    tr->train(t0);
    CHECK(tr->last_step().method_loss == 0);  // no earlier task
    tr->add_task(t1.name, 3);
    tr->train_steps(t1, 1);
    return tr;
  };
  auto lwf = run("lwf", 1.0), ft = run("finetune", 1.0), zero = run("lwf", 0.0);
  CHECK(lwf->last_step().method_loss == 0);  // the model is the frozen copy at the first step
  for (auto* x : {lwf.get(), ft.get(), zero.get()}) x->train(t1);
  CHECK(lwf->last_step().method_loss > 0);
  // lambda 0: the term adds nothing, the run is finetune's bit for bit; lambda 1 changes the trunk.
  check_bitwise_equal(zero->model(), ft->model());
  CHECK(trunk_distance(lwf->model(), ft->model()) > 1e-6);
}

TEST_CASE("replay and lwf forget less than finetune on range then parity") {
  const ClsTaskData t0 = synthetic_task("range", 96, 48, 1), t1 = synthetic_task("parity", 96, 48, 2);
  std::map<std::string, double> kept;
  for (const char* method : {"finetune", "replay", "lwf"}) {
    AriaSettings aria = small_aria_settings();
    aria.replay_per_task = 32;
    ContinualTrainer tr(plain_model(), aria, small_train_settings(40), method_spec(method), quiet());
    tr.add_task(t0.name, 2);
    tr.train(t0);
    const double before = tr.accuracy(0, t0.test);
    tr.add_task(t1.name, 2);
    tr.train(t1);
    kept[method] = tr.accuracy(0, t0.test);
    MESSAGE(std::string(method), ": task 0 accuracy ", before, " -> ", kept[method], ", task 1 ", tr.accuracy(1, t1.test));
  }
  CHECK(kept["replay"] >= kept["finetune"]);
  CHECK(kept["lwf"] >= kept["finetune"]);
}

namespace {

// On the aria method: its extra loss runs a forward of its own (on other token ids, as replay or a
// teacher would) and adds it with weight 0, so the update must equal plain aria's.
class SecondForward : public ContinualMethod {
 public:
  Tensor extra_loss(const ContinualTrainer& t, const MethodMicroBatch& mb) override {
    const ClsTaskData other = synthetic_task("parity", 8, 8, 99);
    std::vector<const ClsExample*> rows;
    for (const auto& e : other.train) rows.push_back(&e);
    const ClsBatch b = make_cls_batch(rows, t.model().device(), /*pad_id=*/0);
    return ops::scale(ops::sum(classify_logits(t.model(), b, mb.task)), 0.0);
  }
};

}  // namespace

TEST_CASE("a plug-in's own forward in extra_loss leaves the gate statistics and dampening of the step's batch") {
  static const bool registered = [] {
    register_method("test_second_forward", [](const ContinualTrainer&) { return std::make_unique<SecondForward>(); },
                    "aria");
    return true;
  }();
  CHECK(registered);
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  auto run = [&](const std::string& method) {
    ContinualTrainer tr(plain_model(), small_aria_settings(), small_train_settings(3), method_spec(method), quiet());
    tr.add_task(t0.name, 2);
    tr.train(t0);
    return tr;
  };
  const ContinualTrainer plain = run("aria"), plugin = run("test_second_forward");
  REQUIRE(!plain.last_step().gate_means.empty());
  CHECK(plugin.last_step().gate_means == plain.last_step().gate_means);
  check_bitwise_equal(plugin.model(), plain.model());  // dampening used the same gate values
}
