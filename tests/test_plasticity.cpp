// Plasticity loss (real tokens only, sign of the legacy form, warmup in optimizer steps), gate
// statistics and gradient dampening, and the invariance of a whole ARIA step to the split into
// micro-batches (accumulation 1 x batch 8 == accumulation 4 x batch 2, float64).
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/continual/plasticity.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::tiny_gpt2_config;

namespace {

Gpt2Model tiny_gated(uint64_t seed = 3, double gate_std = 0.5) {
  Gpt2Model g = gpt2_random(tiny_gpt2_config(), seed);
  inject_gated_mlp(g, seed + 1, gate_std);
  return g;
}

// A learnable task: label 0 sequences use tokens [1, 32), label 1 tokens [32, 64).
ClsTaskData range_task(const std::string& name, int n_train, uint64_t seed) {
  ClsTaskData t;
  t.name = name;
  t.label_names = {"low", "high"};
  Rng r(seed);
  auto make = [&](int n) {
    std::vector<ClsExample> v;
    for (int i = 0; i < n; ++i) {
      ClsExample e;
      e.label = int32_t(r.below(2));
      const int len = 2 + int(r.below(9));
      for (int k = 0; k < len; ++k) e.ids.push_back(int32_t(e.label * 32 + 1 + r.below(31)));
      v.push_back(e);
    }
    return v;
  };
  t.train = make(n_train);
  t.validation = make(16);
  t.test = make(16);
  return t;
}

ContinualModel plain_model(DType dt) {
  ContinualModel m;
  m.gpt = gpt2_random(tiny_gpt2_config(), 21);
  if (dt != DType::F32) m.gpt = m.gpt.to(dt);
  return m;
}

std::vector<double> grad_of(const Tensor& t) { return t.grad().to_doubles(); }

}  // namespace

TEST_CASE("the plasticity loss averages pi(1 - pi) over real tokens only") {
  Tensor pi = Tensor::from_vector({0.2, 0.9, 0.5, 0.7, 0.3, 0.1}, {2, 3, 1}, DType::F64);
  Tensor mask = Tensor::from_floats({1, 1, 0, 1, 0, 0}, {2, 3, 1});
  PlasticitySettings s{2.0, false, 0};
  const double want = 2.0 * (0.2 * 0.8 + 0.9 * 0.1 + 0.7 * 0.3) / 3.0;
  CHECK(plasticity_layer_loss(pi, mask, 3.0, s).item() == doctest::Approx(want).epsilon(1e-12));
  s.legacy = true;
  CHECK(plasticity_layer_loss(pi, mask, 3.0, s).item() ==
        doctest::Approx(2.0 / ((0.2 * 0.8 + 0.9 * 0.1 + 0.7 * 0.3) / 3.0 + 1e-4)).epsilon(1e-12));

  // On a model: a padded batch gives the token-weighted mean of the sequences run alone.
  Gpt2Model g = tiny_gated();
  std::vector<ClsExample> ex = {{{5, 6, 7}, 0}, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1}};
  s.legacy = false;
  auto loss_of = [&](std::vector<const ClsExample*> e) {
    ClsBatch b = make_cls_batch(e, Device::cpu(), 0);
    GateValues gates;
    gpt2_hidden(g, b.ids, ForwardOptions{&gates});
    return plasticity_loss(gates, b.mask, double(b.real_tokens), s).item();
  };
  const double both = loss_of({&ex[0], &ex[1]}), first = loss_of({&ex[0]}), second = loss_of({&ex[1]});
  CHECK(both == doctest::Approx((3 * first + 9 * second) / 12).epsilon(1e-6));
}

TEST_CASE("gate values that are missing or do not match the model are refused with clear errors") {
  std::vector<ClsExample> ex = {{{5, 6, 7}, 0}};
  ClsBatch b = make_cls_batch({&ex[0]}, Device::cpu(), 0);
  const PlasticitySettings s{0.1, false, 0};
  GateValues plain;  // a plain GPT-2's forward: one undefined entry per block
  gpt2_hidden(gpt2_random(tiny_gpt2_config(), 3), b.ids, ForwardOptions{&plain});
  CHECK_THROWS_WITH_AS(plasticity_loss(plain, b.mask, 3.0, s), doctest::Contains("layer 0 has no gate values"), Error);
  CHECK_THROWS_WITH_AS(plasticity_loss(GateValues{}, b.mask, 3.0, s), doctest::Contains("plasticity: no gate values"),
                       Error);
  GateValues gates;
  gpt2_hidden(tiny_gated(), b.ids, ForwardOptions{&gates});
  GateStats st;
  st.reset(3);
  CHECK_THROWS_WITH_AS(st.accumulate(gates, b.mask, b.real_tokens),
                       doctest::Contains("GateStats: reset for 3 layers, the gate values have 2"), Error);
  st.reset(2);
  CHECK_THROWS_WITH_AS(st.accumulate(plain, b.mask, b.real_tokens), doctest::Contains("layer 0 has no gate values"),
                       Error);
}

TEST_CASE("the default loss pushes pi toward 0 or 1, the legacy one toward 0.5") {
  for (double p : {0.8, 0.2}) {
    CAPTURE(p);
    Tensor mask = Tensor::from_floats({1}, {1, 1, 1});
    PlasticitySettings s{0.1, false, 0};
    Tensor pi = Tensor::from_vector({p}, {1, 1, 1}, DType::F64);
    pi.set_requires_grad(true);
    plasticity_layer_loss(pi, mask, 1.0, s).backward();
    const double g_default = grad_of(pi)[0];
    CHECK(g_default == doctest::Approx(0.1 * (1 - 2 * p)));
    s.legacy = true;
    Tensor pi2 = Tensor::from_vector({p}, {1, 1, 1}, DType::F64);
    pi2.set_requires_grad(true);
    plasticity_layer_loss(pi2, mask, 1.0, s).backward();
    const double g_legacy = grad_of(pi2)[0];
    // A descent step moves pi by -grad: away from 0.5 for the default, toward 0.5 for the legacy.
    if (p > 0.5) {
      CHECK(g_default < 0);
      CHECK(g_legacy > 0);
    } else {
      CHECK(g_default > 0);
      CHECK(g_legacy < 0);
    }
  }
  CHECK_FALSE(plasticity_active({0.1, false, 5}, 4));
  CHECK(plasticity_active({0.1, false, 5}, 5));
  CHECK_FALSE(plasticity_active({0.0, false, 0}, 100));
}

TEST_CASE("gate statistics use real tokens, dampening scales slow gradients by 1 - mean pi") {
  Gpt2Model g = tiny_gated();
  g.set_requires_grad(true);
  std::vector<ClsExample> ex = {{{5, 6, 7}, 0}, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1}};
  ClsBatch b = make_cls_batch({&ex[0], &ex[1]}, Device::cpu(), 0);
  GateValues gates;
  Tensor h = gpt2_hidden(g, b.ids, ForwardOptions{&gates});
  GateStats st;
  st.reset(2);
  st.accumulate(gates, b.mask, b.real_tokens);
  CHECK(st.tokens() == 12);
  const auto mask = b.mask.to_doubles();
  for (int l = 0; l < 2; ++l) {
    const auto pi = gates.pi[size_t(l)].to_doubles();
    double sum = 0;
    for (size_t i = 0; i < pi.size(); ++i) sum += pi[i] * mask[i];
    CHECK(st.mean(l) == doctest::Approx(sum / 12).epsilon(1e-6));
  }
  ops::sum(ops::square(h)).backward();
  std::vector<std::vector<double>> slow_before, fast_before;
  for (auto& blk : g.blocks) {
    slow_before.push_back(grad_of(blk.gated->slow.fc_w));
    fast_before.push_back(grad_of(blk.gated->fast.fc_w));
  }
  dampen_slow_grads(g, st);
  for (int l = 0; l < 2; ++l) {
    const auto slow = grad_of(g.blocks[size_t(l)].gated->slow.fc_w);
    const auto fast = grad_of(g.blocks[size_t(l)].gated->fast.fc_w);
    const double f = 1 - st.mean(l);
    for (size_t i = 0; i < slow.size(); i += 7) CHECK(slow[i] == doctest::Approx(f * slow_before[size_t(l)][i]));
    CHECK(fast == fast_before[size_t(l)]);
  }
}

namespace {

TrainSettings accum_settings(int batch, int accum) {
  TrainSettings t;
  t.lr = 1e-2;
  t.weight_decay = 0.01;
  t.batch_size = batch;
  t.grad_accum = accum;
  t.steps_per_task = 3;
  t.max_grad_norm = 0.5;  // clipping is part of the step too
  t.seed = 5;
  return t;
}

AriaSettings accum_aria() {
  AriaSettings a;
  a.plasticity_lambda = 0.5;
  a.warmup_steps = 0;
  a.adapter_dim = 4;
  a.gate_init_std = 0.5;
  a.spc_lambda = 10.0;
  a.consolidation_steps_per_task = 0;
  a.fisher_estimator = "exact";  // per-sample: independent of the batch size
  return a;
}

ContinualTrainer run_accum(int batch, int accum, const ClsTaskData& t0, const ClsTaskData& t1, bool legacy = false,
                           bool dampening = true) {
  AriaSettings a = accum_aria();
  a.legacy_plasticity_loss = legacy;
  a.gradient_dampening = dampening;
  TrainerOptions o;
  o.verbose = false;
  ContinualTrainer tr(plain_model(DType::F64), a, accum_settings(batch, accum), method_spec("aria"), o);
  tr.add_task(t0.name, 2);
  tr.train(t0);
  tr.consolidate_task(0, t0);
  tr.add_task(t1.name, 2);
  tr.train(t1);  // with the SPC penalty gradient
  return tr;
}

double max_param_diff(const ContinualModel& a, const ContinualModel& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  double d = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    REQUIRE(pa[i].first == pb[i].first);
    auto x = pa[i].second.to_doubles(), y = pb[i].second.to_doubles();
    for (size_t k = 0; k < x.size(); ++k) d = std::max(d, std::abs(x[k] - y[k]));
  }
  return d;
}

}  // namespace

TEST_CASE("accumulation 1 x batch 8 and 4 x batch 2 give the same ARIA update (float64)") {
  // 8 training examples: a step of 8 sees each once, in the same epoch order for both splits.
  const ClsTaskData t0 = range_task("t0", 8, 1), t1 = range_task("t1", 8, 2);
  ContinualTrainer one = run_accum(8, 1, t0, t1);
  ContinualTrainer four = run_accum(2, 4, t0, t1);
  CHECK(one.last_step().plasticity_on);
  CHECK(one.last_step().spc > 0);
  CHECK(one.last_step().plasticity == doctest::Approx(four.last_step().plasticity).epsilon(1e-9));
  CHECK(one.last_step().ce == doctest::Approx(four.last_step().ce).epsilon(1e-9));
  CHECK(one.last_step().gate_means[1] == doctest::Approx(four.last_step().gate_means[1]).epsilon(1e-9));
  const double d = max_param_diff(one.model(), four.model());
  CHECK(d < 1e-9);
  // ... and the mechanisms did something: without dampening the result differs.
  ContinualTrainer undamped = run_accum(8, 1, t0, t1, false, false);
  CHECK(max_param_diff(one.model(), undamped.model()) > 1e-6);
}

TEST_CASE("the plasticity warmup counts optimizer steps, never evaluation or Fisher forwards") {
  const ClsTaskData t0 = range_task("t0", 16, 3);
  AriaSettings a = accum_aria();
  a.warmup_steps = 3;
  TrainSettings s = accum_settings(4, 1);
  s.steps_per_task = 5;
  TrainerOptions o;
  o.verbose = false;
  ContinualTrainer tr(plain_model(DType::F32), a, s, method_spec("aria"), o);
  tr.add_task("t0", 2);
  for (int step = 0; step < 5; ++step) {
    CHECK(tr.optimizer_steps() == step);
    // evaluation and Fisher forwards in between must not move the counter
    tr.evaluate_all_tasks({&t0});
    tr.evaluate_tasks({&t0}, "train");
    CHECK(tr.optimizer_steps() == step);
    CHECK(tr.train_steps(t0, 1) == 1);
    CAPTURE(step);
    CHECK(tr.last_step().plasticity_on == (step >= 3));
    if (step < 3)
      CHECK(tr.last_step().plasticity == 0.0);
    else
      CHECK(tr.last_step().plasticity > 0.0);
  }
  CHECK(tr.train_steps(t0, 1) == 0);  // the task's budget is spent
  tr.consolidate_task(0, t0);
  CHECK(tr.optimizer_steps() == 5);
  CHECK(tr.history().size() == 5);
}
