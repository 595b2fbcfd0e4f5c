// Evaluation of tasks not trained yet through one fixed probe head per (task, seed)
// (../shared/aria-spec.md "Metrics", issue 15): adapters-only, whose trunk is frozen, then reports
// FWT = BWT = forgetting = 0 exactly, and b[j] is the same for every method with the same seed.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "aria/train/report/cl_metrics.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using testing::plain_model;
using testing::quiet;
using testing::synthetic_task;

namespace {

struct Tasks {
  ClsTaskData t0 = synthetic_task("range", 48, 32, 1), t1 = synthetic_task("parity", 48, 32, 2),
              t2 = synthetic_task("three", 48, 32, 3);
  std::vector<const ClsTaskData*> all() const { return {&t0, &t1, &t2}; }
};

// The protocol of aria continual: b = evaluation before any training, then one row after each task.
void run_sequence(ContinualTrainer& tr, const std::vector<const ClsTaskData*>& all, AccMatrix& a,
                  std::vector<double>& b) {
  b = tr.evaluate_all_tasks(all).back();
  for (const ClsTaskData* t : all) {
    const int id = tr.add_task(t->name, t->num_labels());
    tr.train(*t);
    tr.consolidate_task(id, *t);
    a.push_back(tr.evaluate_all_tasks(all).back());
  }
}

}  // namespace

TEST_CASE("adapters-only over 3 tasks: FWT, BWT and forgetting are exactly 0 with the probe head") {
  const Tasks tk;
  const auto all = tk.all();
  ContinualTrainer tr(plain_model(), testing::small_aria_settings(), testing::small_train_settings(8),
                      method_spec("adapters"), quiet());
  AccMatrix a;
  std::vector<double> b;
  run_sequence(tr, all, a, b);
  REQUIRE(a.size() == 3);
  // The trunk is frozen: an untrained task's accuracy through its probe head never moves (with the
  // old evaluation, a copy of the last trained head when the label counts matched, a[0][1] != b[1]),
  for (size_t j = 1; j < 3; ++j)
    for (size_t i = 0; i < j; ++i) CHECK(a[i][j] == b[j]);
  // and a trained task's adapter and head are frozen once the next task is added.
  for (size_t j = 0; j < 3; ++j)
    for (size_t i = j; i < 3; ++i) CHECK(a[i][j] == a[j][j]);
  const ClMetrics m = compute_cl_metrics(a, b);
  REQUIRE(m.has_fwt);
  CHECK(m.fwt == 0.0);
  CHECK(m.bwt == 0.0);
  CHECK(m.forgetting == 0.0);
}

TEST_CASE("the probe head is seeded by task name and train.seed only: b[j] is the same for every method") {
  const Tasks tk;
  const auto all = tk.all();
  std::vector<double> first;
  for (const char* method : {"finetune", "ewc", "adapters", "aria", "multitask"}) {
    CAPTURE(method);
    ContinualTrainer tr(plain_model(), testing::small_aria_settings(), testing::small_train_settings(2),
                        method_spec(method), quiet());
    const std::vector<double> b = tr.evaluate_tasks(all);
    if (first.empty())
      first = b;
    else
      CHECK(b == first);
  }
  // The same seed gives the same row again (no state is drawn from the trainer's RNG).
  ContinualTrainer again(plain_model(), testing::small_aria_settings(), testing::small_train_settings(2),
                         method_spec("finetune"), quiet());
  CHECK(again.evaluate_tasks(all) == first);
}
