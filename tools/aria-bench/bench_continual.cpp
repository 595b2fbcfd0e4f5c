// The continual trainer's own step on the GPU (aria-bench --continual): ContinualTrainer with the aria
// method (gated MLP in every block, plasticity loss, dampening, SPC penalty after one consolidated
// task, adapters and a head, clipping, AdamW over the fast/slow/head groups), on synthetic
// classification examples of exactly --seq tokens; and the exact per-sample Fisher of that
// consolidation, timed against a training pass over the same examples.
#include <algorithm>
#include <chrono>

#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "aria/model/gpt2.h"
#include "tools/aria-bench/bench.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria::bench {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// n examples of exactly `seq` random tokens, two labels.
ClsTaskData synthetic_task(const std::string& name, int64_t n, int seq, int vocab, uint64_t seed) {
  ClsTaskData t;
  t.name = name;
  t.label_names = {"a", "b"};
  Rng r(seed);
  for (int64_t i = 0; i < n; ++i) {
    ClsExample e;
    e.label = int32_t(r.below(2));
    e.ids.resize(size_t(seq));
    for (auto& v : e.ids) v = int32_t(r.below(uint64_t(vocab)));
    t.train.push_back(std::move(e));
  }
  t.validation = t.test = {t.train.front()};
  return t;
}

}  // namespace

ContinualResult bench_continual(const Config& cfg) {
  const Gpt2Config c = gpt2_preset(cfg.model);
  ARIA_CHECK(cfg.seq <= c.n_positions, "--seq ", cfg.seq, " is longer than the model's ", c.n_positions, " positions");
  const Device dev = Device::cuda(0);
  AriaSettings a;
  a.warmup_steps = 0;  // the plasticity loss is on from the first step
  a.consolidation_steps_per_task = cfg.fisher_batches;
  TrainSettings t;
  t.batch_size = cfg.batch;
  t.steps_per_task = 1 << 30;
  t.max_seq_len = cfg.seq;
  t.lr = 1e-4;
  t.precision = cfg.bf16 ? "bf16" : "fp32";
  TrainerOptions o;
  o.verbose = false;
  o.log_every = 1 << 30;  // report points only where train_steps returns
  ContinualModel m;
  m.gpt = gpt2_random(c, 1, dev);
  ContinualTrainer tr(std::move(m), a, t, method_spec("aria"), o);

  const int64_t n = std::max<int64_t>(int64_t(cfg.batch) * (cfg.steps + cfg.warmup), int64_t(cfg.batch) * cfg.fisher_batches);
  const ClsTaskData t0 = synthetic_task("bench0", n, cfg.seq, c.vocab_size, 1);
  const ClsTaskData t1 = synthetic_task("bench1", n, cfg.seq, c.vocab_size, 2);
  ContinualResult r;
  tr.add_task(t0.name, 2);
  tr.train_steps(t0, cfg.warmup);

  cuda::synchronize();
  auto t_fisher = std::chrono::steady_clock::now();
  tr.consolidate_task(0, t0);  // exact per-sample Fisher over fisher_batches batches (slow pathway)
  cuda::synchronize();
  r.fisher_ms = seconds_since(t_fisher) * 1e3;
  r.fisher_examples = int64_t(cfg.fisher_batches) * cfg.batch;

  tr.add_task(t1.name, 2);
  tr.train_steps(t1, cfg.warmup);  // now with the SPC penalty of task 0
  cuda::synchronize();
  cuda::device_allocator().reset_peak();
  const auto t_steps = std::chrono::steady_clock::now();
  tr.train_steps(t1, cfg.steps);  // one report point, at the last step: it waits for the GPU
  r.step_ms = seconds_since(t_steps) * 1e3 / cfg.steps;
  r.peak_gib = double(cuda::device_allocator().stats().peak_bytes) / double(1ull << 30);
  r.tokens_per_s = double(cfg.batch) * cfg.seq / (r.step_ms * 1e-3);
  r.params = tr.model().num_parameters();
  r.fisher_vs_training = r.fisher_ms / (r.step_ms * cfg.fisher_batches);
  r.precision = cfg.bf16 ? "bf16" : "fp32";
  return r;
}

}  // namespace aria::bench
