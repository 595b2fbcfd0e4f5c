#include "aria/train/optim/lm_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "aria/core/autograd.h"
#include "aria/core/cpu_threads.h"
#include "aria/train/optim/adamw.h"
#include "aria/train/optim/grad_clip.h"
#include "aria/train/optim/lm_checkpoint.h"
#include "aria/train/optim/train_state.h"
#include "aria/train/report/progress.h"
#include "aria/train/report/report_format.h"

namespace aria {

namespace {

void check_config(const LmTrainConfig& c, const Gpt2Config& mc) {
  ARIA_CHECK(c.batch_size >= 1, "train: batch_size must be >= 1, got ", c.batch_size);
  ARIA_CHECK(c.seq_len >= 1 && c.seq_len <= mc.n_positions, "train: seq_len must be in [1, n_positions=",
             mc.n_positions, "], got ", c.seq_len);
  ARIA_CHECK(c.steps >= 0, "train: steps must be >= 0, got ", c.steps);
  ARIA_CHECK(c.grad_accum >= 1, "train: grad_accum must be >= 1, got ", c.grad_accum);
  ARIA_CHECK(c.warmup_steps >= 0, "train: warmup_steps must be >= 0, got ", c.warmup_steps);
  ARIA_CHECK(c.eval_every >= 0, "train: eval_every must be >= 0, got ", c.eval_every);
  ARIA_CHECK(c.eval_batches >= 1, "train: eval_batches must be >= 1, got ", c.eval_batches);
  ARIA_CHECK(std::isfinite(c.lr) && c.lr >= 0, "train: lr must be >= 0, got ", c.lr);
  ARIA_CHECK(c.checkpoint_every >= 0, "train: checkpoint_every must be >= 0, got ", c.checkpoint_every);
  ARIA_CHECK(!c.checkpoint_dir.empty() || (c.checkpoint_every == 0 && !c.resume),
             "train: checkpoint_every and resume need a checkpoint_dir");
}

void check_tokens(const TokenDataset& d, int vocab_size, const char* which) {
  ARIA_CHECK(!d.empty(), which, " corpus is empty (0 tokens)");
  if (d.shards) {  // ids < the shards' vocabulary were checked when they were opened
    ARIA_CHECK(int64_t(d.shards->vocab_size) <= vocab_size, which, " shards hold token ids of a vocabulary of ",
               d.shards->vocab_size, ", larger than the model's ", vocab_size);
    return;
  }
  auto [lo, hi] = std::minmax_element(d.tokens.begin(), d.tokens.end());
  ARIA_CHECK(*lo >= 0 && *hi < vocab_size, which, " corpus holds token ids in [", *lo, ", ", *hi,
             "], outside the model's vocabulary [0, ", vocab_size, ")");
}

using report_format::fmt;

}  // namespace

nlohmann::ordered_json lm_run_identity(const LmTrainConfig& c, const Gpt2Config& m, uint64_t train_tokens,
                                       uint64_t val_tokens) {
  return {{"batch_size", c.batch_size},     {"seq_len", c.seq_len},
          {"steps", c.steps},               {"grad_accum", c.grad_accum},
          {"warmup_steps", c.warmup_steps}, {"eval_every", c.eval_every},
          {"eval_batches", c.eval_batches}, {"lr", c.lr},
          {"min_lr_ratio", c.min_lr_ratio}, {"weight_decay", c.weight_decay},
          {"max_grad_norm", c.max_grad_norm}, {"beta1", c.beta1},
          {"beta2", c.beta2},               {"schedule", c.schedule == ScheduleConfig::Kind::Cosine ? "cosine" : "constant"},
          {"seed", c.seed},                 {"bf16", c.bf16},
          {"train_tokens", train_tokens},   {"validation_tokens", val_tokens},
          {"n_layer", m.n_layer},           {"n_embd", m.n_embd},
          {"n_head", m.n_head},             {"n_positions", m.n_positions},
          {"vocab_size", m.vocab_size}};
}

double evaluate_lm(const Gpt2Model& model, const TokenDataset& data, int batch_size, int seq_len, int batches,
                   uint64_t seed) {
  NoGradGuard no_grad;
  LmBatcher batcher(data, batch_size, seq_len, seed);
  double sum = 0;
  for (int i = 0; i < batches; ++i) {
    LmBatch b = batcher.next(model.device());
    sum += gpt2_lm_loss(model, b.ids, b.targets).item();
  }
  return sum / batches;
}

LmTrainResult train_lm(Gpt2Model& target, const TokenDataset& train, const TokenDataset* val,
                       const LmTrainConfig& cfg, std::ostream& log) {
  check_config(cfg, target.config);
  ARIA_CHECK(!cfg.bf16 || target.device().is_cuda(), "train_lm: bfloat16 training runs on CUDA only (model is on ",
             target.device().str(), ")");
  // Mixed precision trains a bfloat16 copy; AdamW's float32 masters are written back at the end.
  Gpt2Model work = cfg.bf16 ? target.to(DType::BF16) : Gpt2Model();
  Gpt2Model& model = cfg.bf16 ? work : target;
  check_tokens(train, model.config.vocab_size, "training");
  if (val) check_tokens(*val, model.config.vocab_size, "validation");
  LmBatcher batcher(train, cfg.batch_size, cfg.seq_len, cfg.seed);
  const uint64_t val_seed = cfg.seed ^ 0x5a17e5eedull;
  if (val) LmBatcher(*val, cfg.batch_size, cfg.seq_len, val_seed);  // "corpus too short" before training

  model.set_requires_grad(true);
  const auto named = model.named_parameters();
  auto groups = default_decay_groups(named, cfg.lr, cfg.weight_decay);
  for (ParamGroup& g : groups) g.beta1 = cfg.beta1, g.beta2 = cfg.beta2;
  const ScheduleConfig sched{cfg.schedule, cfg.warmup_steps, std::max(cfg.steps, 1), cfg.min_lr_ratio};
  // The clipping norm sums over every parameter in the model's order (not the groups').
  OptimState st = make_optim_state(std::move(groups), named, sched, cfg.lr, cfg.max_grad_norm);
  AdamW& opt = *st.opt;
  const int64_t tokens_per_step = int64_t(cfg.batch_size) * cfg.seq_len * cfg.grad_accum;

  if (cfg.verbose) {
    log << "train_lm: " << model.num_parameters() << " parameters on " << model.device().str() << ", "
        << train.size() << " training tokens" << (train.shards ? " (shards)" : "")
        << (val ? ", " + std::to_string(val->size()) + " validation" : "")
        << "\n  " << cfg.steps << " steps x " << tokens_per_step << " tokens (batch " << cfg.batch_size << " x seq "
        << cfg.seq_len << " x accum " << cfg.grad_accum << "), lr " << cfg.lr << " warmup " << cfg.warmup_steps
        << " min_lr_ratio " << cfg.min_lr_ratio << ", clip " << cfg.max_grad_norm << "\n"
        << opt.describe();
  }

  LmTrainResult r;
  r.tokens_per_step = tokens_per_step;
  double train_seconds = 0;
  int start = 0;
  const auto run_identity = lm_run_identity(cfg, model.config, train.size(), val ? val->size() : 0);
  if (cfg.resume) {
    LmCheckpointState ck = load_lm_checkpoint(cfg.checkpoint_dir, model, opt, run_identity);
    ARIA_CHECK(ck.steps_done <= cfg.steps, cfg.checkpoint_dir, ": the checkpoint is at step ", ck.steps_done,
               ", past this run's ", cfg.steps, " steps");
    start = r.resumed_from = ck.steps_done;
    batcher.set_state(ck.sampler);
    r.losses = std::move(ck.losses), r.grad_norms = std::move(ck.grad_norms), r.lrs = std::move(ck.lrs);
    r.val_losses = std::move(ck.val_losses);
    train_seconds = ck.train_seconds;
    st.phase_step = st.run_step = start;
    if (cfg.verbose) log << "train_lm: resumed from " << cfg.checkpoint_dir << " at step " << start << "\n";
  }
  auto checkpoint = [&](int done) {
    LmCheckpointState ck;
    ck.steps_done = done, ck.adam_steps = opt.steps(), ck.sampler = batcher.state();
    ck.losses = r.losses, ck.grad_norms = r.grad_norms, ck.lrs = r.lrs, ck.val_losses = r.val_losses;
    ck.train_seconds = train_seconds, ck.run = run_identity;
    save_lm_checkpoint(cfg.checkpoint_dir, model, opt, ck);
  };
  Progress progress(log, cfg.steps, "step", cfg.log_every);
  auto evaluate = [&](int done) {
    const double vl = evaluate_lm(model, *val, cfg.batch_size, cfg.seq_len, cfg.eval_batches, val_seed);
    r.val_losses.emplace_back(done, vl);
    if (cfg.on_evaluation) cfg.on_evaluation(done, {vl});
    if (cfg.verbose) progress.message("step " + std::to_string(done) + " | val loss " + fmt("%.4f", vl));
  };

  // On the CPU, the team size is chosen by timing the first steps (core/cpu_threads.h: more threads
  // can be slower than one on a shared machine).
  cpu_threads::TeamSizeTuner tuner =
      model.device().is_cuda() ? cpu_threads::TeamSizeTuner(1, false) : cpu_threads::TeamSizeTuner::for_cpu_training();
  for (int step = start; step < cfg.steps; ++step) {
    if (!tuner.decided()) cpu_threads::set_team_size(tuner.threads());
    const auto t0 = std::chrono::steady_clock::now();
    zero_grads(st);
    double loss_sum = 0;
    for (int micro = 0; micro < cfg.grad_accum; ++micro) {
      LmBatch b = batcher.next(model.device());
      Tensor loss = gpt2_lm_loss(model, b.ids, b.targets);
      if (cfg.extra_loss) {
        LossTermInput in;
        in.loss = &loss, in.phase_step = step, in.micro_index = micro;
        loss = add_extra_loss(cfg, loss, in);
      }
      loss.backward();
      loss_sum += loss.item();
    }
    const double loss = loss_sum / cfg.grad_accum;
    ARIA_CHECK(std::isfinite(loss), "non-finite training loss (", loss, ") at step ", step + 1);
    // The grads hold the sum S over micro-batches; the step uses their mean, clipped at max_grad_norm:
    // with s = sqrt(sum of squares of S), k = grad_accum, m = max_grad_norm, the mean's norm is s / k
    // and the multiplier clip_scale(s / k, m) / k. The kernel clips S itself (no host read before the
    // step) with grad_scale 1/k and max norm m k: (1/k) clip_scale(s, m k), the same number, since
    // s > m k <=> s / k > m, m k > 0 <=> m > 0, and m k / s = m / (s / k) (in exact arithmetic; each way
    // the multiplier reaches the kernel rounded to float once).
    const IssuedStep issued = optimizer_step(st, cfg.grad_accum);
    const double mult = issued.lr_mult;
    // Read after the step was issued: a non-finite norm skipped the update on the device; it ends
    // training here (the optimizer's step counts advanced anyway: see AdamW::step_clipped).
    const double norm = read_grad_norm(st, issued, cfg.grad_accum);
    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    train_seconds += step_seconds;
    if (const std::string chosen = tuner.record(step_seconds); !chosen.empty()) {
      cpu_threads::set_team_size(tuner.threads());
      if (cfg.verbose) progress.message(chosen);
    }

    r.losses.push_back(loss);
    r.grad_norms.push_back(norm);
    r.lrs.push_back(cfg.lr * mult);
    const double tps = double(tokens_per_step) * (step + 1) / std::max(train_seconds, 1e-9);
    if (cfg.on_report) {
      StepStats s;
      s.step = step + 1, s.loss = loss, s.grad_norm = norm, s.lr = cfg.lr * mult, s.tokens = tokens_per_step;
      cfg.on_report(s, step + 1, cfg.steps);
    }
    if (cfg.verbose)
      progress.update(step + 1, "loss " + fmt("%.4f", loss) + " | lr " + fmt("%.2e", cfg.lr * mult) + " | norm " +
                                    fmt("%.3f", norm) + " | " + fmt("%.0f", tps) + " tok/s");
    if (val && cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0 && step + 1 < cfg.steps) evaluate(step + 1);
    const bool stop = cfg.stop_requested && cfg.stop_requested() && step + 1 < cfg.steps;
    if (!cfg.checkpoint_dir.empty() && step + 1 < cfg.steps &&
        (stop || (cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0))) {
      checkpoint(step + 1);
      if (cfg.verbose) progress.message("step " + std::to_string(step + 1) + " | checkpoint " + cfg.checkpoint_dir);
    }
    if (stop) {
      if (cfg.verbose) progress.finish();
      r.stopped = true;
      r.train_seconds = train_seconds;
      r.sampler_state = batcher.state();
      return r;
    }
  }
  if (val) {
    evaluate(cfg.steps);
    r.final_val_loss = r.val_losses.back().second;
  }
  if (cfg.verbose) progress.finish();
  if (cfg.bf16) {
    NoGradGuard no_grad;
    const auto target_params = target.named_parameters();
    for (size_t i = 0; i < named.size(); ++i) {  // a parameter never updated keeps its float32 value
      const Tensor master = opt.master(named[i].first);
      if (master.defined()) target_params[i].second.copy_from(master);
    }
  }
  r.train_seconds = train_seconds;
  r.sampler_state = batcher.state();
  r.tokens_per_second = cfg.steps ? double(tokens_per_step) * cfg.steps / std::max(train_seconds, 1e-9) : 0.0;
  if (cfg.verbose)
    log << "train_lm: done in " << format_duration(progress.elapsed_seconds()) << ", " << fmt("%.0f", r.tokens_per_second)
        << " tokens/s" << (r.losses.empty() ? "" : ", final loss " + fmt("%.4f", r.losses.back()))
        << (val ? ", val loss " + fmt("%.4f", r.final_val_loss) : "") << "\n";
  return r;
}

}  // namespace aria
