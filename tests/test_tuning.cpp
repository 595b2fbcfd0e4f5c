// Tuning on the validation split (train/experiment/tuning.h): the grid per method, the coordinate-wise choice,
// and the isolation from test data: the tasks handed to tune_methods carry test examples that make any
// evaluation on them throw, and tuning still succeeds.
#include <doctest/doctest.h>

#include "aria/core/error.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/experiment/tuning.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;

namespace {

ExperimentConfig tiny_config(std::vector<std::string> methods) {
  ExperimentConfig c;
  c.tasks = {"range", "parity"};
  c.methods = std::move(methods);
  c.aria = small_aria_settings();
  c.train = small_train_settings(4);
  return c;
}

// A test split that fails loudly when read: every label is outside the task's label range, so an
// evaluation on it throws (model_correct checks labels) instead of quietly scoring 0.
void poison_test_split(ClsTaskData& t) {
  for (ClsExample& e : t.test) e.label = 1000;
}

}  // namespace

TEST_CASE("tuning grid: lr for every method, lambda for ewc and aria, plasticity and slow lr for aria") {
  const ExperimentConfig c = tiny_config({"finetune", "ewc", "aria", "lwf"});
  const auto ft = tuning_grid(c, "finetune");
  REQUIRE(ft.size() == 1);
  CHECK(ft[0].key == "train.lr");
  CHECK(ft[0].values == std::vector<double>({5e-3, 2.5e-3, 1e-2}));  // the configured value first
  const auto ewc = tuning_grid(c, "ewc");
  REQUIRE(ewc.size() == 2);
  CHECK(ewc[1].key == "aria.spc_lambda");
  CHECK(ewc[1].values == std::vector<double>({50, 5, 500}));
  const auto aria = tuning_grid(c, "aria");
  REQUIRE(aria.size() == 4);
  CHECK(aria[2].key == "aria.plasticity_lambda");
  CHECK(aria[3].key == "aria.slow_lr_ratio");
  CHECK(aria[3].values == std::vector<double>({0.5, 0.25, 1.0}));
  CHECK(tuning_grid(c, "lwf").back().key == "aria.lwf_lambda");
  // A method's own settings are the grid's centre.
  ExperimentConfig own = c;
  own.method_settings["ewc"]["aria.spc_lambda"] = 1000;
  CHECK(tuning_grid(own, "ewc")[1].values == std::vector<double>({1000, 100, 10000}));
}

TEST_CASE("tuning never reads the test split: it succeeds on tasks whose test split throws when read") {
  std::vector<ClsTaskData> tasks = {synthetic_task("range", 24, 10, 1), synthetic_task("parity", 24, 10, 2)};
  for (ClsTaskData& t : tasks) poison_test_split(t);
  const ExperimentConfig c = tiny_config({"finetune", "ewc"});
  // The poison is loud: an evaluation on the test split throws.
  {
    ContinualTrainer t(plain_model(), c.aria, c.train, method_spec("finetune"), quiet());
    t.add_task(tasks[0].name, tasks[0].num_labels());
    CHECK_THROWS_WITH_AS(t.evaluate_tasks({&tasks[0]}, "test"), doctest::Contains("outside"), Error);
  }
  Gpt2Model base = plain_model().gpt;
  int calls = 0;
  const auto result = tune_methods(base, tasks, c, Device::cpu(), [&](const std::string&, const TuningTrial&) { ++calls; });
  REQUIRE(result.size() == 2);
  CHECK(result[0].method == "finetune");
  CHECK(result[0].trials.size() == 3);  // lr x 3
  CHECK(result[1].trials.size() == 5);  // lr x 3, then lambda x 3 sharing the chosen lr's trial
  CHECK(calls == 8);
  for (const MethodTuning& m : result) {
    // The chosen values are the best validation ACC's of each axis (ties: the earlier value).
    double best = -1;
    for (const TuningTrial& t : m.trials) {
      REQUIRE(t.validation.has_acc);
      best = std::max(best, t.validation.acc);
    }
    bool found = false;
    for (const TuningTrial& t : m.trials) found = found || (t.settings == m.chosen && t.validation.acc == best);
    CHECK(found);
  }
  const ExperimentConfig tuned = apply_tuning(c, result);
  CHECK(tuned.method_settings.at("ewc").count("aria.spc_lambda") == 1);
  CHECK(config_for_method(tuned, "ewc").aria.spc_lambda == result[1].chosen.at("aria.spc_lambda"));
  CHECK(config_for_method(tuned, "finetune").aria.spc_lambda == c.aria.spc_lambda);
  const auto j = tuning_to_json(result, c);
  CHECK(j["split"] == "validation");
  CHECK(j["test_split_read"] == false);
  CHECK(j["methods"]["ewc"]["trials"].size() == 5);
}

TEST_CASE("tuning refuses a task without a validation split") {
  std::vector<ClsTaskData> tasks = {synthetic_task("range", 24, 10, 1)};
  tasks[0].validation.clear();
  ExperimentConfig c = tiny_config({"finetune"});
  c.tasks = {"range"};
  CHECK_THROWS_WITH_AS(tune_methods(plain_model().gpt, tasks, c, Device::cpu()), doctest::Contains("no validation split"),
                       Error);
}
