// What a step may see of earlier phases, and resuming: the clipping norm is the norm of the parameters
// the step trains (a frozen head's last gradient never counts), and every method resumes bit for bit
// from a checkpoint taken mid-task or between tasks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "aria/train/continual/checkpoint.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/optim/grad_clip.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;
namespace fs = std::filesystem;

namespace {

// The norm over the model's trainable parameters, computed here from their gradients.
double trainable_grad_norm(const ContinualModel& m) {
  std::vector<std::pair<std::string, Tensor>> trainable;
  for (const auto& np : m.named_parameters())
    if (np.second.requires_grad()) trainable.push_back(np);
  return global_grad_norm(trainable);
}

}  // namespace

TEST_CASE("the clipping norm counts only the parameters being trained") {
  // finetune and adapters never consolidate, so nothing else clears an earlier head's gradient.
  for (const char* method : {"finetune", "adapters"}) {
    INFO(std::string(method));
    const ClsTaskData t0 = synthetic_task("range", 24, 8, 1), t1 = synthetic_task("parity", 24, 8, 2);
    const ClsTaskData t2 = synthetic_task("three", 24, 8, 3);
    ContinualTrainer tr(plain_model(), small_aria_settings(), small_train_settings(3), method_spec(method), quiet());
    tr.add_task(t0.name, 2);
    tr.train(t0);
    for (const ClsTaskData* t : {&t1, &t2}) {
      tr.add_task(t->name, t->num_labels());
      // The heads (and adapters) of earlier tasks are frozen and hold no gradient.
      for (size_t i = 0; i + 1 < tr.model().tasks.size(); ++i) {
        CHECK_FALSE(tr.model().tasks[i].head_w.requires_grad());
        CHECK_FALSE(tr.model().tasks[i].head_w.grad().defined());
      }
      for (int s = 0; s < 3; ++s) {
        tr.train_steps(*t, 1);
        const double want = trainable_grad_norm(tr.model());
        CHECK(want > 0);
        CHECK(tr.last_step().grad_norm == doctest::Approx(want).epsilon(1e-12));
        CHECK(global_grad_norm(tr.trained_parameters()) == doctest::Approx(want).epsilon(1e-12));
      }
    }
  }
}

namespace {

struct SavePoint {
  const char* name;
  int after_action;  // the checkpoint is taken after this many actions of the run
};

// One continual run as a list of actions (the same for every method but multitask, which trains its
// phase jointly), so that a checkpoint can be taken between any two of them.
TrainSettings resume_settings() {
  TrainSettings s = small_train_settings(5);
  s.grad_accum = 2;
  s.batch_size = 3;  // epochs end inside batches
  s.max_grad_norm = 0.5;  // clipping is active: the norm decides every update
  return s;
}

}  // namespace

TEST_CASE("every method resumes bit for bit, mid-task and between tasks") {
  for (const std::string& method : method_names()) {
    Run run;
    const auto actions = run.actions(method);
    AriaSettings aria = small_aria_settings();
    aria.warmup_steps = 6;  // the plasticity loss switches on inside task 1
    ContinualTrainer straight(plain_model(), aria, resume_settings(), method_spec(method), quiet());
    for (const auto& act : actions) act(straight);

    std::vector<SavePoint> points;
    if (method == "multitask") {
      points = {{"before the joint phase", 1}, {"mid joint phase", 2}, {"after the joint phase", 3}};
    } else {
      points = {{"mid task 0", 3}, {"between tasks 0 and 1", 6}, {"mid task 1", 8}, {"after task 1's evaluation", 11}};
    }
    for (const SavePoint& sp : points) {
      INFO(method, ", checkpoint ", std::string(sp.name));
      const fs::path dir = checkpoint_temp_dir("resume_" + method);
      {
        ContinualTrainer first(plain_model(), aria, resume_settings(), method_spec(method), quiet());
        for (int i = 0; i < sp.after_action; ++i) actions[size_t(i)](first);
        first.save(dir.string());
      }
      ContinualTrainer resumed = ContinualTrainer::load(dir.string(), quiet());
      const int64_t steps_at_load = resumed.optimizer_steps();
      for (size_t i = size_t(sp.after_action); i < actions.size(); ++i) actions[i](resumed);
      check_same_state(straight, resumed, resumed.optimizer_steps() > steps_at_load);
      fs::remove_all(dir);
    }
  }
}

TEST_CASE("a stop request ends training after the current step, and saved and resumed, the run is unchanged") {
  Run run;
  ContinualTrainer straight(plain_model(), small_aria_settings(), resume_settings(), method_spec("aria"), quiet());
  straight.add_task(run.t0.name, 2);
  straight.train(run.t0);

  TrainerOptions o = quiet();
  int steps_seen = 0;
  o.stop_requested = [&] { return ++steps_seen == 3; };  // as a SIGINT during step 3 would
  int reports = 0;
  o.on_report = [&](const StepStats& last, int64_t done, int64_t total) {
    ++reports;
    CHECK(last.step == done);
    CHECK(total == 5);
  };
  ContinualTrainer first(plain_model(), small_aria_settings(), resume_settings(), method_spec("aria"), o);
  first.add_task(run.t0.name, 2);
  first.train(run.t0);
  CHECK(first.phase_steps() == 3);
  CHECK(reports == 1);  // log_every 10: the stop made step 3 a report point
  const fs::path dir = checkpoint_temp_dir("stop");
  first.save(dir.string());
  ContinualTrainer resumed = ContinualTrainer::load(dir.string(), quiet());
  resumed.train(run.t0);
  check_same_state(straight, resumed, true);
  fs::remove_all(dir);
}
