// The training step on the GPU never waits for it: index checks answer from the host's summary of
// uploaded ids and targets, position ids are uploaded once, and the classifier's gradient is scaled
// on the device — so the host can queue a whole step ahead of the GPU. Also: the summary shortcut
// gives the same answers (counts, errors) as reading the values back.
#include <doctest/doctest.h>

#include "aria/core/ops.h"
#include "aria/core/rng.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/gpt2.h"
#include "aria/train/continual/continual_trainer.h"
#include "tests/support/continual_fixtures.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::gpu_or_skip;

namespace {

Gpt2Config hd64_config() {
  Gpt2Config cfg = gpt2_preset("tiny");
  cfg.n_embd = 128;
  cfg.n_head = 2;  // head dim 64: the tensor-core attention
  cfg.n_layer = 2;
  cfg.vocab_size = 300;
  return cfg;
}

}  // namespace

TEST_CASE("a bf16 GPT-2 forward + backward makes no blocking copy (plain and gated)") {
  if (!gpu_or_skip("host syncs of a training step")) return;
  const Device gpu = Device::cuda(0);
  const int B = 2, T = 64;
  Rng rng(4);
  std::vector<int32_t> ids(size_t(B * T)), tg(ids.size());
  for (auto& v : ids) v = int32_t(rng.below(300));
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = i % 7 == 3 ? -100 : int32_t(rng.below(300));  // some ignored
  const Tensor x = Tensor::from_ints(ids, {B, T}, gpu), y = Tensor::from_ints(tg, {B, T}, gpu);
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    Gpt2Model m = gpt2_random(hd64_config(), 3, gpu);
    if (gated) inject_gated_mlp(m, 2);
    m = m.to(DType::BF16);
    m.set_requires_grad(true);
    gpt2_lm_loss(m, x, y).backward();  // first step: plans, caches, position ids
    const uint64_t before = cuda::blocking_copies();
    Tensor loss = gpt2_lm_loss(m, x, y);
    loss.backward();
    CHECK(cuda::blocking_copies() == before);
    // and the result is the one the CPU computes from the same values (float32 there)
    Gpt2Model cpu = m.to(DType::F32).to(Device::cpu());
    const double ref = gpt2_lm_loss(cpu, x.to(Device::cpu()), y.to(Device::cpu())).item();
    CHECK(loss.item() == doctest::Approx(ref).epsilon(0.02));
  }
}

TEST_CASE("index checks from the upload summary agree with reading the values") {
  if (!gpu_or_skip("upload summaries")) return;
  const Device gpu = Device::cuda(0);
  const Tensor w = testing::randn({6, 4}, 1).to(gpu);
  const Tensor logits = testing::randn({2, 3, 6}, 2).to(gpu);
  const std::vector<int32_t> tg = {1, -100, 5, 0, -100, 2};
  const Tensor y = Tensor::from_ints(tg, {2, 3}, gpu);
  REQUIRE(y.int_summary() != nullptr);
  CHECK(y.int_summary()->negatives == 2);
  auto cpu_loss = [&](const Tensor& t) { return ops::cross_entropy(logits.to(Device::cpu()), t.to(Device::cpu())).item(); };
  SUBCASE("the whole tensor: count from the summary") {
    const uint64_t before = cuda::blocking_copies();
    Tensor l = ops::cross_entropy(logits, y);
    CHECK(cuda::blocking_copies() == before);
    CHECK(l.item() == doctest::Approx(cpu_loss(y)).epsilon(1e-5));
  }
  SUBCASE("a view of part of it: counted on the host, same answer") {
    const Tensor part = y.slice(0, 1, 2);
    CHECK(ops::cross_entropy(logits.slice(0, 1, 2), part).item() ==
          doctest::Approx(ops::cross_entropy(logits.to(Device::cpu()).slice(0, 1, 2), part.to(Device::cpu())).item())
              .epsilon(1e-5));
  }
  SUBCASE("bad values are still named with their position") {
    CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, Tensor::from_ints({1, -100, 6, 0, 0, 0}, {2, 3}, gpu)),
                         doctest::Contains("target 6 at position 2"), Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, Tensor::from_ints({1, -7, 2, 0, 0, 0}, {2, 3}, gpu)),
                         doctest::Contains("target -7 at position 1"), Error);
    CHECK_THROWS_WITH_AS(ops::embedding(w, Tensor::from_ints({0, 6}, {2}, gpu)),
                         doctest::Contains("id 6 at position 1"), Error);
  }
  SUBCASE("an in-place write forgets the summary") {
    Tensor ids = Tensor::from_ints({0, 1, 2}, {3}, gpu);
    REQUIRE(ids.int_summary() != nullptr);
    ids.slice(0, 1, 2).copy_from(Tensor::from_ints({9}, {1}));
    CHECK(ids.int_summary() == nullptr);
    CHECK_THROWS_WITH_AS(ops::embedding(w, ids), doctest::Contains("id 9 at position 1"), Error);
  }
}

TEST_CASE("continual training steps wait for the GPU only at report points, and match the CPU") {
  if (!gpu_or_skip("host syncs of a continual step")) return;
  // The aria method with everything on: gates, plasticity loss (on after 2 steps), dampening, SPC
  // penalty after task 0's consolidation, adapters and heads, clipping.
  const ClsTaskData t0 = testing::synthetic_task("range", 24, 12, 1), t1 = testing::synthetic_task("parity", 24, 12, 2);
  AriaSettings a = testing::small_aria_settings();
  a.warmup_steps = 2;
  TrainSettings s = testing::small_train_settings(8);
  s.grad_accum = 2;
  s.precision = "fp32";  // compared with the CPU, whatever "auto" picks on CUDA
  TrainerOptions o = testing::quiet();
  o.log_every = 1000;  // report points: only the last step of each train_steps call
  auto run = [&](Device device, uint64_t* waits_1, uint64_t* waits_6, uint64_t* waits_eval) {
    ContinualModel m;
    m.gpt = gpt2_random(testing::tiny_gpt2_config(), 21, device);
    ContinualTrainer tr(std::move(m), a, s, method_spec("aria"), o);
    tr.add_task(t0.name, 2);
    tr.train(t0);
    tr.consolidate_task(0, t0);
    tr.add_task(t1.name, 2);
    uint64_t c = cuda::blocking_copies();
    tr.train_steps(t1, 1);
    if (waits_1) *waits_1 = cuda::blocking_copies() - c;
    c = cuda::blocking_copies();
    tr.train_steps(t1, 6);
    if (waits_6) *waits_6 = cuda::blocking_copies() - c;
    c = cuda::blocking_copies();
    tr.evaluate_tasks({&t0, &t1});
    if (waits_eval) *waits_eval = cuda::blocking_copies() - c;
    return tr.last_step();
  };
  uint64_t w1 = 0, w6 = 0, we = 0;
  const StepStats gpu = run(Device::cuda(0), &w1, &w6, &we);
  MESSAGE("blocking copies: 1 step ", w1, ", 6 steps ", w6, ", evaluating 2 tasks ", we);
  CHECK(w6 == w1);  // five more steps, not one more wait: only the report point reads
  CHECK(w1 <= 4);   // the report point: one read of every statistic, plus the SPC penalty's value
  CHECK(we == 2);   // one read per evaluated task
  CHECK(gpu.plasticity_on);
  CHECK(gpu.spc > 0);
  const StepStats cpu = run(Device::cpu(), nullptr, nullptr, nullptr);
  CHECK(gpu.step == cpu.step);
  CHECK(gpu.loss == doctest::Approx(cpu.loss).epsilon(1e-4));
  CHECK(gpu.ce == doctest::Approx(cpu.ce).epsilon(1e-4));
  CHECK(gpu.plasticity == doctest::Approx(cpu.plasticity).epsilon(1e-4));
  CHECK(gpu.grad_norm == doctest::Approx(cpu.grad_norm).epsilon(1e-4));
  CHECK(gpu.accuracy == cpu.accuracy);
  REQUIRE(gpu.gate_means.size() == cpu.gate_means.size());
  for (size_t l = 0; l < gpu.gate_means.size(); ++l) CHECK(gpu.gate_means[l] == doctest::Approx(cpu.gate_means[l]).epsilon(1e-4));
}
