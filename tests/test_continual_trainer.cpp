// ContinualTrainer: the method table, a 2-task run that learns, evaluation of tasks not added yet,
// the baselines' mechanics (adapters-only freezes the trunk, multitask trains every head, ewc
// consolidates every trunk parameter), and a checkpoint resume that is bit-for-bit on the CPU.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "aria/core/atomic_dir.h"
#include "aria/core/error.h"
#include "aria/train/continual/checkpoint.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

using testing::check_bitwise_equal;
using testing::plain_model;
using testing::quiet;
using testing::synthetic_task;

namespace {

AriaSettings aria_settings() { return testing::small_aria_settings(); }
TrainSettings train_settings(int64_t steps) { return testing::small_train_settings(steps); }
fs::path temp_dir(const std::string& tag) { return testing::checkpoint_temp_dir(tag); }

}  // namespace

TEST_CASE("method table") {
  const MethodSpec a = method_spec("aria");
  CHECK((a.gated_mlp && a.adapters && a.spc && a.plasticity && a.dampening && a.asymmetric_lr && !a.freeze_trunk));
  const MethodSpec e = method_spec("ewc");
  CHECK((e.spc && !e.gated_mlp && !e.adapters && e.fisher_scope == FisherScope::All));
  const MethodSpec ad = method_spec("adapters");
  CHECK((ad.adapters && ad.freeze_trunk && !ad.spc));
  const MethodSpec f = method_spec("finetune");
  CHECK(!(f.gated_mlp || f.adapters || f.spc || f.plasticity || f.freeze_trunk || f.joint));
  CHECK(method_spec("multitask").joint);
  for (const char* p : {"replay", "lwf"}) {  // plug-ins (train/continual/cl_methods.cpp) on finetune's flags
    const MethodSpec s = method_spec(p);
    CHECK((s.plugin && s.name == p && !(s.gated_mlp || s.adapters || s.spc || s.freeze_trunk || s.joint)));
  }
  CHECK_FALSE(method_spec("ewc").plugin);
  CHECK_THROWS_WITH_AS(method_spec("si"), doctest::Contains("aria, finetune, ewc, adapters, multitask, aria-no-gates, "
                                                            "aria-no-spc, aria-no-adapters, aria-no-dampening, "
                                                            "finetune-adapters, replay, lwf"),
                       Error);
  CHECK(method_names().size() == 12);  // the five, the five ablations (issue 15), replay and lwf
}

TEST_CASE("aria on two synthetic tasks: learns, consolidates, keeps the full accuracy history") {
  const ClsTaskData t0 = synthetic_task("range", 96, 48, 1), t1 = synthetic_task("parity", 96, 48, 2);
  std::ostringstream log;
  TrainerOptions o;
  o.log = &log;
  ContinualTrainer tr(plain_model(), aria_settings(), train_settings(40), method_spec("aria"), o);
  CHECK(tr.model().gpt.blocks[0].gated);  // injected by the trainer
  const std::vector<const ClsTaskData*> all = {&t0, &t1};
  tr.evaluate_all_tasks(all);  // b[j]
  CHECK(tr.add_task(t0.name, 2) == 0);
  tr.train(t0);
  CHECK(tr.optimizer_steps() == 40);
  tr.consolidate_task(0, t0);
  auto m = tr.evaluate_all_tasks(all);
  REQUIRE(m.size() == 2);
  MESSAGE("accuracy after task 0: ", m[1][0], " (before: ", m[0][0], ")");
  CHECK(m[1][0] >= 0.85);
  CHECK(tr.add_task(t1.name, 2) == 1);
  tr.train(t1);
  tr.consolidate_task(1, t1);
  m = tr.evaluate_all_tasks(all);
  REQUIRE(m.size() == 3);
  REQUIRE(m[2].size() == 2);
  MESSAGE("after task 1: ", m[2][0], " ", m[2][1]);
  CHECK(m[2][1] >= 0.85);
  CHECK(tr.optimizer_steps() == 80);
  CHECK(tr.spc().tasks_consolidated() == 2);
  const std::string out = log.str();
  CHECK(out.find("consolidate 'range'") != std::string::npos);
  CHECK(out.find("on the training split") != std::string::npos);
  CHECK(out.find("exact") != std::string::npos);  // which estimator ran
  CHECK(out.find("tok/s") != std::string::npos);
  CHECK(out.find("slow/decay") != std::string::npos);
  CHECK_THROWS_WITH_AS(tr.train(t0), doctest::Contains("not the active task"), Error);
}

TEST_CASE("a task not added yet is evaluated through its fixed probe head, deterministically") {
  const ClsTaskData t0 = synthetic_task("range", 32, 24, 1), t1 = synthetic_task("parity", 32, 24, 2);
  const ClsTaskData t2 = synthetic_task("three", 32, 24, 3);
  ContinualTrainer tr(plain_model(), aria_settings(), train_settings(5), method_spec("aria"), quiet());
  tr.add_task(t0.name, 2);
  tr.train(t0);
  const auto before = tr.evaluate_tasks({&t1, &t2});
  const auto again = tr.evaluate_tasks({&t1, &t2});
  CHECK(before == again);  // deterministic, no state change
  CHECK(tr.model().tasks.size() == 1);
  // (add_task copies task 0's head for training; evaluation before that uses the probe head, which
  // tests/test_continual_probe.cpp checks.)
  CHECK_THROWS_AS(tr.evaluate_tasks({&t1}, "dev"), Error);
}

TEST_CASE("adapters-only trains adapters and heads, never the trunk") {
  const ClsTaskData t0 = synthetic_task("range", 32, 16, 1);
  ContinualTrainer tr(plain_model(), aria_settings(), train_settings(5), method_spec("adapters"), quiet());
  CHECK_FALSE(tr.model().gpt.blocks[0].gated);
  const auto before = tr.model().gpt.named_parameters();
  std::vector<std::vector<double>> values;
  for (auto& [n, t] : before) values.push_back(t.to_doubles());
  tr.add_task(t0.name, 2);
  const auto up0 = tr.model().tasks[0].adapter.up_w.to_doubles();
  tr.train(t0);
  auto after = tr.model().gpt.named_parameters();
  for (size_t i = 0; i < after.size(); ++i) CHECK(after[i].second.to_doubles() == values[i]);
  CHECK(tr.model().tasks[0].adapter.up_w.to_doubles() != up0);
  tr.consolidate_task(0, t0);  // no consolidation for this method: a no-op
  CHECK(tr.spc().tasks_consolidated() == 0);
}

TEST_CASE("ewc consolidates plain trunk parameters, multitask trains every head jointly") {
  const ClsTaskData t0 = synthetic_task("range", 32, 16, 1), t1 = synthetic_task("parity", 32, 16, 2);
  ContinualTrainer ewc(plain_model(), aria_settings(), train_settings(4), method_spec("ewc"), quiet());
  ewc.add_task(t0.name, 2);
  ewc.train(t0);
  ewc.consolidate_task(0, t0);
  CHECK(ewc.spc().tasks_consolidated() == 1);
  ewc.add_task(t1.name, 2);
  ewc.train_steps(t1, 2);  // the penalty is measured before each update: 0 at the anchor, > 0 after
  CHECK(ewc.last_step().spc > 0);

  ContinualTrainer joint(plain_model(), aria_settings(), train_settings(20), method_spec("multitask"), quiet());
  CHECK_THROWS_AS(joint.train(t0), Error);
  joint.train_joint({&t0, &t1});
  CHECK(joint.optimizer_steps() == 40);
  CHECK(joint.trained_tasks() == std::vector<int>{0, 1});
  // both heads moved from their start (task 1's head started as a copy of task 0's)
  CHECK(joint.model().tasks[0].head_w.to_doubles() != joint.model().tasks[1].head_w.to_doubles());
  auto acc = joint.evaluate_tasks({&t0, &t1});
  MESSAGE("multitask accuracies ", acc[0], " ", acc[1]);
  CHECK(acc[0] > 0.6);
  CHECK(acc[1] > 0.6);
}

TEST_CASE("a resumed run matches the uninterrupted one bit for bit") {
  const ClsTaskData t0 = synthetic_task("range", 24, 16, 1), t1 = synthetic_task("parity", 24, 16, 2);
  const ClsTaskData t2 = synthetic_task("three", 24, 16, 3);
  TrainSettings s = train_settings(6);
  s.grad_accum = 2;
  s.batch_size = 5;  // epochs end inside batches
  AriaSettings a = aria_settings();
  a.warmup_steps = 8;  // the plasticity loss switches on after the save point
  const std::vector<const ClsTaskData*> all = {&t0, &t1, &t2};

  // Phase 1: task 0 trained and consolidated, task 1 half-trained.
  auto phase1 = [&](ContinualTrainer& tr) {
    tr.add_task(t0.name, 2);
    tr.train(t0);
    tr.consolidate_task(0, t0);
    tr.evaluate_all_tasks(all);
    tr.add_task(t1.name, 2);
    tr.train_steps(t1, 3);
  };
  // Phase 2: the rest of task 1, its consolidation (Fisher RNG), task 2 (add_task RNG), a few steps.
  auto phase2 = [&](ContinualTrainer& tr) {
    tr.train(t1);
    tr.consolidate_task(1, t1);
    tr.evaluate_all_tasks(all);
    tr.add_task(t2.name, 3);
    tr.train_steps(t2, 4);
  };

  ContinualTrainer straight(plain_model(), a, s, method_spec("aria"), quiet());
  phase1(straight);
  phase2(straight);

  const fs::path dir = temp_dir("resume");
  {
    ContinualTrainer first(plain_model(), a, s, method_spec("aria"), quiet());
    phase1(first);
    first.save(dir.string());
  }
  CHECK(is_trainer_checkpoint(dir.string()));
  ContinualTrainer resumed = ContinualTrainer::load(dir.string(), quiet());
  CHECK(resumed.optimizer_steps() == 9);
  CHECK(resumed.phase_steps() == 3);
  CHECK(resumed.model().tasks[0].frozen);
  CHECK_FALSE(resumed.model().tasks[0].head_w.requires_grad());
  CHECK(resumed.history().size() == 1);
  phase2(resumed);

  CHECK(resumed.optimizer_steps() == straight.optimizer_steps());
  CHECK(resumed.last_step().plasticity_on);
  check_bitwise_equal(straight.model(), resumed.model());
  CHECK(straight.history() == resumed.history());
  CHECK(straight.last_step().loss == resumed.last_step().loss);
  // optimizer moments too
  auto sa = straight.optimizer()->state_tensors(), sb = resumed.optimizer()->state_tensors();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].first == sb[i].first);
    CHECK(std::memcmp(sa[i].second.raw_data(), sb[i].second.raw_data(), sa[i].second.nbytes()) == 0);
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoint errors name what is wrong") {
  const fs::path dir = temp_dir("errors");
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(dir.string()), doctest::Contains("does not exist"), Error);
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1);
  ContinualTrainer tr(plain_model(), aria_settings(), train_settings(2), method_spec("finetune"), quiet());
  tr.add_task(t0.name, 2);
  tr.train(t0);
  tr.save(dir.string());
  ContinualTrainer ok = ContinualTrainer::load(dir.string(), quiet());
  check_bitwise_equal(tr.model(), ok.model());
  // trainer.json describing a model the tensors do not match
  {
    std::ifstream in(dir / kCheckpointTrainerFile);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const std::string from = "\"num_labels\": 2";
    text.replace(text.find(from), from.size(), "\"num_labels\": 3");
    std::ofstream(dir / kCheckpointTrainerFile) << text;
  }
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(dir.string()), doctest::Contains("does not match manifest.json"), Error);
  io::write_manifest(dir.string());  // edited on purpose: the manifest now vouches for it
  CHECK_THROWS_WITH_AS(ContinualTrainer::load(dir.string()), doctest::Contains("task.0.head.weight"), Error);
  fs::remove_all(dir);
}

TEST_CASE("a NaN gradient with a finite loss stops training with the named error, and the step changed nothing") {
  // ewc: after task 0 the SPC penalty gradient lambda (A theta - B) is added to every trunk gradient.
  // A NaN in a position-embedding row no sequence reaches leaves the loss finite but makes that
  // penalty gradient NaN: the AdamW step (clipped on the device) is issued, skips every update, and
  // the norm read afterwards throws with the step number and the parameter's name.
  const ClsTaskData t0 = synthetic_task("range", 16, 8, 1), t1 = synthetic_task("parity", 16, 8, 2);
  ContinualTrainer tr(plain_model(), aria_settings(), train_settings(3), method_spec("ewc"), quiet());
  tr.add_task(t0.name, 2);
  tr.train(t0);
  tr.consolidate_task(0, t0);
  tr.add_task(t1.name, 2);
  std::string wpe;
  for (const auto& [name, p] : tr.model().named_parameters()) {
    if (name.find("wpe") == std::string::npos) continue;
    wpe = name;
    std::vector<double> v = p.to_doubles();
    v.back() = NAN;  // the last position (32 > every sequence here)
    p.detach().copy_from(Tensor::from_vector(v, p.shape(), p.dtype()));
  }
  REQUIRE(!wpe.empty());
  std::vector<std::pair<std::string, Tensor>> before;
  for (const auto& [name, p] : tr.model().named_parameters()) before.emplace_back(name, p.detach().clone());
  CHECK_THROWS_WITH_AS(tr.train(t1),
                       doctest::Contains(("step 4: non-finite gradient norm (nan); NaN/inf in the gradients of 1 "
                                          "tensors: " + wpe).c_str()),
                       Error);
  CHECK(std::isfinite(tr.last_step().loss));  // the previous step's stats; this one never returned
  const auto after = tr.model().named_parameters();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].first);
    CHECK(std::memcmp(after[i].second.contiguous().raw_data(), before[i].second.raw_data(),
                      before[i].second.nbytes()) == 0);
  }
}

TEST_CASE("precision: auto is float32 on the CPU and bf16 on CUDA, bf16 on the CPU is refused naming the device, the checkpoint records it") {
  TrainSettings s = train_settings(2);
  CHECK_FALSE(bf16_precision(s, Device::cpu()));
  CHECK(bf16_precision(s, Device::cuda(0)));
  s.precision = "fp32";
  CHECK_FALSE(bf16_precision(s, Device::cuda(0)));
  s.precision = "bf16";
  CHECK(bf16_precision(s, Device::cuda(0)));
  CHECK_THROWS_WITH_AS(ContinualTrainer(plain_model(), aria_settings(), s, method_spec("finetune"), quiet()),
                       doctest::Contains("bfloat16 training runs on CUDA only (the model is on cpu)"), Error);
  s.precision = "fp16";
  CHECK_THROWS_WITH_AS(bf16_precision(s, Device::cpu()), doctest::Contains("auto, bf16, fp32"), Error);

  s.precision = "auto";
  ContinualTrainer tr(plain_model(), aria_settings(), s, method_spec("aria"), quiet());
  CHECK_FALSE(tr.bf16());
  CHECK(std::string(tr.precision()) == "fp32");
  CHECK(tr.model().gpt.dtype() == DType::F32);
  const ClsTaskData t0 = synthetic_task("range", 12, 8, 1);
  tr.add_task(t0.name, 2);
  tr.train(t0);
  const fs::path dir = temp_dir("precision");
  tr.save(dir.string());
  std::ifstream in(dir / kCheckpointTrainerFile);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str().find("\"precision\": \"fp32\"") != std::string::npos);
  const ContinualTrainer back = ContinualTrainer::load(dir.string(), quiet());
  CHECK_FALSE(back.bf16());
  CHECK(back.train_settings().precision == "fp32");
  check_bitwise_equal(tr.model(), back.model());
  fs::remove_all(dir);
}
