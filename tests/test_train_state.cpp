// The trainer as state + steps (train/optim/train_state.h): loops written by hand from the free
// functions give exactly what train_lm and ContinualTrainer::train give, and the shared callbacks
// (stop_requested, on_report, extra_loss) act as documented in both trainers.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/model/gpt2.h"
#include "aria/train/continual/continual_steps.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/data/lm_data.h"
#include "aria/train/optim/lm_trainer.h"
#include "aria/train/optim/param_groups.h"
#include "aria/train/optim/train_state.h"
#include "tests/support/continual_fixtures.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::plain_model;
using testing::quiet;
using testing::small_aria_settings;
using testing::small_train_settings;
using testing::synthetic_task;
using testing::tiny_gpt2_config;

namespace {

TokenDataset periodic(size_t n) {
  TokenDataset d;
  for (size_t i = 0; i < n; ++i) d.tokens.push_back(int32_t(3 + (i * 7) % 13));
  return d;
}

LmTrainConfig lm_config() {
  LmTrainConfig c;
  c.batch_size = 4, c.seq_len = 8, c.steps = 6, c.grad_accum = 2, c.warmup_steps = 2;
  c.lr = 1e-2, c.min_lr_ratio = 0.1, c.weight_decay = 0.01, c.max_grad_norm = 0.5;
  c.seed = 99, c.verbose = false;
  return c;
}

// Every parameter's bytes equal (the continual fixtures' comparison, over the trunk alone).
void check_same_weights(const Gpt2Model& a, const Gpt2Model& b) {
  ContinualModel x, y;
  x.gpt = a, y.gpt = b;
  testing::check_bitwise_equal(x, y);
}

}  // namespace

TEST_CASE("a hand-written LM loop over OptimState gives train_lm's losses, norms and weights exactly") {
  const TokenDataset data = periodic(400);
  const LmTrainConfig cfg = lm_config();
  Gpt2Model trained = gpt2_random(tiny_gpt2_config(), 5);
  Gpt2Model by_hand = gpt2_random(tiny_gpt2_config(), 5);
  std::ostringstream log;
  std::vector<int64_t> reported;
  LmTrainConfig with_report = cfg;
  with_report.on_report = [&](const StepStats& s, int64_t done, int64_t total) {
    reported.push_back(s.step);
    CHECK(done == s.step);
    CHECK(total == cfg.steps);
  };
  const LmTrainResult r = train_lm(trained, data, nullptr, with_report, log);
  CHECK(reported == std::vector<int64_t>{1, 2, 3, 4, 5, 6});

  // The loop train_lm runs, from the public pieces.
  by_hand.set_requires_grad(true);
  const auto named = by_hand.named_parameters();
  auto groups = default_decay_groups(named, cfg.lr, cfg.weight_decay);
  for (ParamGroup& g : groups) g.beta1 = cfg.beta1, g.beta2 = cfg.beta2;
  OptimState st = make_optim_state(std::move(groups), named,
                                   ScheduleConfig{cfg.schedule, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio}, cfg.lr,
                                   cfg.max_grad_norm);
  LmBatcher batcher(data, cfg.batch_size, cfg.seq_len, cfg.seed);
  std::vector<double> losses, norms, lrs;
  for (int step = 0; step < cfg.steps; ++step) {
    zero_grads(st);
    double sum = 0;
    for (int k = 0; k < cfg.grad_accum; ++k) {
      LmBatch b = batcher.next();
      Tensor loss = gpt2_lm_loss(by_hand, b.ids, b.targets);
      loss.backward();
      sum += loss.item();
    }
    const IssuedStep is = optimizer_step(st, cfg.grad_accum);
    losses.push_back(sum / cfg.grad_accum);
    norms.push_back(read_grad_norm(st, is, cfg.grad_accum));
    lrs.push_back(is.lr);
    CHECK(is.step == step + 1);
  }
  CHECK(st.phase_step == cfg.steps);
  CHECK(losses == r.losses);
  CHECK(norms == r.grad_norms);
  CHECK(lrs == r.lrs);
  check_same_weights(trained, by_hand);
}

TEST_CASE("a hand-written finetune loop over OptimState gives ContinualTrainer::train's weights exactly") {
  const ClsTaskData task = synthetic_task("range", 24, 8, 1);
  const TrainSettings ts = small_train_settings(5);
  TrainerOptions o = quiet();
  std::vector<ClsBatch> batches;  // the trainer's micro-batches, in step order
  o.on_micro_batch = [&](int, const ClsBatch& b) { batches.push_back(b); };
  std::vector<double> ce;
  o.log_every = 1;
  o.on_report = [&](const StepStats& s, int64_t, int64_t) { ce.push_back(s.ce); };
  ContinualTrainer trainer(plain_model(), small_aria_settings(), ts, method_spec("finetune"), o);
  const int id = trainer.add_task(task.name, task.num_labels());
  // The same model, task head and trainable flags (a second trainer that is never trained).
  ContinualTrainer twin(plain_model(), small_aria_settings(), ts, method_spec("finetune"), quiet());
  REQUIRE(twin.add_task(task.name, task.num_labels()) == id);
  testing::check_bitwise_equal(trainer.model(), twin.model());
  trainer.train(task);
  REQUIRE(batches.size() == size_t(ts.steps_per_task * ts.grad_accum));

  // finetune's step by hand: cross-entropy over the step's examples, clip, AdamW at the task's schedule.
  ContinualModel& m = twin.model();
  ParamGroupSettings ps;
  ps.lr = ts.lr, ps.slow_lr_ratio = 1.0, ps.head_lr_mult = small_aria_settings().head_lr_mult;
  ps.gate_lr_ratio = small_aria_settings().gate_lr_ratio, ps.weight_decay = ts.weight_decay;
  const TrainerOptions d;  // the trainer's default schedule
  const int64_t total = ts.steps_per_task;
  const ScheduleConfig sched{d.schedule, int64_t(std::llround(d.warmup_fraction * double(total))), total, d.min_lr_ratio};
  OptimState st = make_optim_state(build_param_groups(m, {id}, ps), {}, sched, ts.lr, ts.max_grad_norm);
  std::vector<double> my_ce;
  size_t next = 0;
  for (int64_t s = 0; s < total; ++s) {
    zero_grads(st);
    int64_t examples = 0;
    for (int k = 0; k < ts.grad_accum; ++k) examples += batches[next + size_t(k)].ids.size(0);
    Tensor ce_sum;
    for (int k = 0; k < ts.grad_accum; ++k, ++next) {
      const ClsBatch& b = batches[next];
      Tensor logits = classify_logits(m, b, id);
      Tensor l = ops::scale(ops::sum(ops::cross_entropy_rows(logits, b.labels)), 1.0 / double(examples));
      {
        NoGradGuard no_grad;
        ce_sum = ce_sum.defined() ? ops::add(ce_sum, l.detach()) : l.detach();
      }
      l.backward();
    }
    optimizer_step(st, 1, ce_sum);
    my_ce.push_back(ce_sum.to_doubles()[0]);
  }
  CHECK(my_ce == ce);
  testing::check_bitwise_equal(trainer.model(), twin.model());
}

TEST_CASE("stop_requested ends both trainers after that step, on_report sees the steps done") {
  SUBCASE("train_lm") {
    LmTrainConfig c = lm_config();
    int asked = 0;
    std::vector<int64_t> reported;
    c.stop_requested = [&] { return ++asked == 3; };
    c.on_report = [&](const StepStats& s, int64_t, int64_t) { reported.push_back(s.step); };
    Gpt2Model m = gpt2_random(tiny_gpt2_config(), 5);
    std::ostringstream log;
    const LmTrainResult r = train_lm(m, periodic(400), nullptr, c, log);
    CHECK(r.stopped);
    CHECK(r.losses.size() == 3);
    CHECK(reported == std::vector<int64_t>{1, 2, 3});
  }
  SUBCASE("ContinualTrainer") {
    const ClsTaskData task = synthetic_task("range", 24, 8, 1);
    TrainerOptions o = quiet();
    int asked = 0;
    std::vector<int64_t> done;
    o.stop_requested = [&] { return ++asked == 3; };
    o.on_report = [&](const StepStats&, int64_t phase_done, int64_t) { done.push_back(phase_done); };
    ContinualTrainer tr(plain_model(), small_aria_settings(), small_train_settings(10), method_spec("finetune"), o);
    tr.add_task(task.name, task.num_labels());
    CHECK(tr.train_steps(task, 10) == 3);
    CHECK(tr.phase_steps() == 3);
    CHECK(tr.optimizer_steps() == 3);
    CHECK(tr.optim_state().phase_step == 3);
    CHECK(done == std::vector<int64_t>{3});  // the stop makes step 3 a report point
  }
}

TEST_CASE("an extra loss term adds its gradient, shows in method_loss, and on_evaluation gets the accuracy row") {
  const ClsTaskData task = synthetic_task("range", 24, 8, 1);
  TrainSettings ts = small_train_settings(1);
  const double c = 0.25;
  std::vector<std::vector<double>> evaluations;
  TrainerOptions plain_o = quiet(), extra_o = quiet();
  ContinualTrainer plain(plain_model(), small_aria_settings(), ts, method_spec("finetune"), plain_o);
  extra_o.on_evaluation = [&](int64_t steps, const std::vector<double>& r) {
    CHECK(steps == 1);
    evaluations.push_back(r);
  };
  ContinualTrainer* self = nullptr;
  extra_o.extra_loss = [&](const LossTermInput& in) {
    REQUIRE(in.logits);
    REQUIRE(in.loss);
    REQUIRE(in.batch);
    CHECK(in.task == 0);
    CHECK(in.step_examples == double(ts.batch_size * ts.grad_accum));
    return ops::scale(ops::sum(self->model().tasks[0].head_w), c);
  };
  ContinualTrainer with_extra(plain_model(), small_aria_settings(), ts, method_spec("finetune"), extra_o);
  self = &with_extra;
  plain.add_task(task.name, task.num_labels());
  with_extra.add_task(task.name, task.num_labels());
  plain.train(task);
  with_extra.train(task);
  // The gradients of the step are kept until the next one starts.
  const std::vector<float> g0 = plain.model().tasks[0].head_w.grad().to_floats();
  const std::vector<float> g1 = with_extra.model().tasks[0].head_w.grad().to_floats();
  REQUIRE(g0.size() == g1.size());
  for (size_t i = 0; i < g0.size(); ++i) CHECK(g1[i] - g0[i] == doctest::Approx(c * ts.grad_accum).epsilon(1e-4));
  // A trunk weight's gradient is unchanged: the term depends on the head only.
  CHECK(plain.model().gpt.wte.grad().to_floats() == with_extra.model().gpt.wte.grad().to_floats());
  CHECK(plain.last_step().method_loss == 0);
  CHECK(with_extra.last_step().method_loss != 0);
  CHECK(with_extra.last_step().ce == plain.last_step().ce);
  CHECK(with_extra.last_step().loss == with_extra.last_step().ce + with_extra.last_step().method_loss);
  const std::vector<const ClsTaskData*> all = {&task};
  const auto history = with_extra.evaluate_all_tasks(all);
  REQUIRE(evaluations.size() == 1);
  CHECK(evaluations[0] == history.back());
}

TEST_CASE("train_lm: an extra loss equal to the LM loss doubles the first step's loss and gradient norm exactly") {
  LmTrainConfig c = lm_config();
  c.steps = 1;
  std::ostringstream log;
  Gpt2Model a = gpt2_random(tiny_gpt2_config(), 5), b = gpt2_random(tiny_gpt2_config(), 5);
  const LmTrainResult plain = train_lm(a, periodic(400), nullptr, c, log);
  int calls = 0;
  c.extra_loss = [&](const LossTermInput& in) {
    REQUIRE(in.loss);
    CHECK(in.micro_index == calls++ % c.grad_accum);
    return *in.loss;  // d(2 loss) = 2 d(loss): doubling is exact in floating point
  };
  const LmTrainResult doubled = train_lm(b, periodic(400), nullptr, c, log);
  CHECK(calls == c.grad_accum);
  REQUIRE(doubled.losses.size() == 1);
  CHECK(doubled.losses[0] == 2 * plain.losses[0]);
  CHECK(doubled.grad_norms[0] == 2 * plain.grad_norms[0]);
}

TEST_CASE("consolidate_task_state and evaluate_correct by hand give the trainer's SPC buffers and accuracy rows") {
  const ClsTaskData t0 = synthetic_task("range", 24, 8, 1), t1 = synthetic_task("parity", 24, 8, 2);
  const std::vector<const ClsTaskData*> all = {&t0, &t1};
  AriaSettings a = small_aria_settings();
  a.fisher_estimator = "empirical";  // draws nothing from the Fisher RNG, so a fresh one here is the same
  const TrainSettings ts = small_train_settings(3);
  ContinualTrainer trainer(plain_model(), a, ts, method_spec("ewc"), quiet());
  ContinualTrainer twin(plain_model(), a, ts, method_spec("ewc"), quiet());
  for (ContinualTrainer* t : {&trainer, &twin}) {
    t->add_task(t0.name, t0.num_labels());
    t->train(t0);
  }
  trainer.consolidate_task(0, t0);
  SpcState spc;
  Rng fisher_rng(1);
  ConsolidationSettings cs;
  cs.batch_size = ts.batch_size, cs.max_batches = a.consolidation_steps_per_task;
  cs.estimator = FisherEstimator::Empirical, cs.scope = FisherScope::All, cs.spc_gamma = a.spc_gamma;
  int seen = -1;
  consolidate_task_state(twin.model(), spc, fisher_rng, 0, t0, cs, [&](int id, const FisherResult&) { seen = id; });
  CHECK(seen == 0);
  CHECK(spc.tasks_consolidated() == trainer.spc().tasks_consolidated());
  const auto want = trainer.spc().state_tensors(), got = spc.state_tensors();
  REQUIRE(want.size() == got.size());
  REQUIRE(!want.empty());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].first);
    CHECK(want[i].first == got[i].first);
    CHECK(want[i].second.to_doubles() == got[i].second.to_doubles());
  }
  // t1 is not registered: evaluated through its probe head, seeded by train.seed.
  const std::vector<std::string> row = evaluate_correct(twin.model(), all, "test", ts.batch_size, ts.seed);
  CHECK(row == trainer.evaluate_tasks_correct(all, "test"));
  REQUIRE(row.size() == 2);
  CHECK(row[1].size() == t1.test.size());
  CHECK(fraction_correct("1101") == 0.75);
  CHECK_THROWS_WITH_AS(evaluate_correct(twin.model(), all, "dev", ts.batch_size, ts.seed),
                       doctest::Contains("unknown split 'dev'"), Error);
  CHECK_THROWS_WITH_AS(consolidate_task_state(twin.model(), spc, fisher_rng, 5, t0, cs),
                       doctest::Contains("task id 5 outside"), Error);
}

TEST_CASE("optimizer_step refuses a state without an optimizer and a bad grad_accum") {
  OptimState empty;
  CHECK_THROWS_WITH_AS(optimizer_step(empty), doctest::Contains("no optimizer"), Error);
  CHECK_THROWS_WITH_AS(zero_grads(empty), doctest::Contains("no optimizer"), Error);
  Tensor w = Tensor::zeros({2}, DType::F32, Device::cpu());
  w.set_requires_grad(true);
  ParamGroup g;
  g.name = "all", g.params = {{"w", w}}, g.lr = 0.1;
  OptimState st = make_optim_state({g}, {}, ScheduleConfig{}, 0.1, 1.0);
  CHECK(st.params.size() == 1);
  CHECK_THROWS_WITH_AS(optimizer_step(st, 0), doctest::Contains("grad_accum must be >= 1"), Error);
  CHECK(st.phase_step == 0);
}
