// Gate collapse (docs/run.md "Gate collapse"): on a task whose gradient is mostly noise, the
// cross-entropy gradient on pi favours the pathway that moved less, the slow one (slow_lr_ratio
// 0.5), and AdamW turns that small gradient into steps of about lr on every gate weight, so the gate
// means fall toward 0 with the plasticity loss off; with the slow pathway at 2 x lr they rise toward
// 1 instead. aria.gate_lr_ratio trains the gates at lr * ratio in their own AdamW groups: at 0.1 the
// gates stay spread, and the last check fails when they collapse.
#include <doctest/doctest.h>

#include "aria/core/rng.h"
#include "aria/train/continual/continual_method.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;

namespace {

// "range" inputs with random labels: nothing to learn, every gradient is noise.
ClsTaskData noise_task() {
  ClsTaskData t = synthetic_task("range", 128, 16, 1);
  t.name = "noise";
  Rng rng(99);
  for (ClsExample& e : t.train) e.label = int32_t(rng.below(2));
  return t;
}

// Mean pi per layer after `steps` optimizer steps of aria on the noise task.
std::vector<double> gate_means_after(double gate_lr_ratio, double slow_lr_ratio) {
  AriaSettings a = small_aria_settings();
  a.gate_lr_ratio = gate_lr_ratio;
  a.slow_lr_ratio = slow_lr_ratio;
  a.plasticity_lambda = 0;  // the drift needs no plasticity loss (which would only speed it up)
  TrainSettings t = small_train_settings(400);
  t.lr = 1e-2;
  ContinualTrainer tr(plain_model(), a, t, method_spec("aria"), quiet());
  const ClsTaskData task = noise_task();
  tr.add_task(task.name, 2);
  tr.train(task);
  return tr.last_step().gate_means;
}

}  // namespace

TEST_CASE("gate collapse: gates follow the lower-lr pathway at full gate lr and stay spread at gate_lr_ratio 0.1") {
  const std::vector<double> full = gate_means_after(1.0, 0.5), mirrored = gate_means_after(1.0, 2.0);
  const std::vector<double> slowed = gate_means_after(0.1, 0.5);
  REQUIRE(full.size() == 2);
  REQUIRE(slowed.size() == 2);
  MESSAGE("gate means: ratio 1 ", full[0], " ", full[1], "; slow_lr_ratio 2 ", mirrored[0], " ", mirrored[1],
          "; gate_lr_ratio 0.1 ", slowed[0], " ", slowed[1]);
  // The mechanism: toward the slow pathway when it has the lower lr, toward the fast one when it has.
  for (double g : full) CHECK(g < 0.35);
  for (double g : mirrored) CHECK(g > 0.6);
  // The fix: the gates stay spread.
  for (double g : slowed) CHECK(g > 0.4);
}
