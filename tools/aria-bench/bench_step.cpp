// Whole GPT-2 training step on the GPU: forward (lm loss), backward, global grad norm + clipping,
// one AdamW step (decay/no_decay groups), timed as the median of several steps after warm-up, with
// tokens/s, model FLOP utilisation and the caching allocator's peak. Optional: ARIA's gated MLP in
// every block with its plasticity loss (what the continual trainer runs).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>

#include "aria/core/autograd.h"
#include "aria/core/context.h"
#include "aria/core/ops.h"
#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/gpt2.h"
#include "tools/aria-bench/bench.h"
#include "aria/train/optim/adamw.h"
#include "aria/train/optim/grad_clip.h"
#include "aria/train/continual/spc.h"

namespace aria::bench {

StepResult bench_step(const Config& cfg) {
  ARIA_CHECK(cfg.model == "d12" || cfg.model == "d24" || cfg.model == "tiny", "--model must be d12, d24 or tiny");
  Gpt2Config c = gpt2_preset(cfg.model);
  c.vocab_size = 50304;  // padded to a multiple of 128, as the PyTorch reference does
  const Device dev = Device::cuda(0);
  Gpt2Model m = gpt2_random(c, 1, dev);
  if (cfg.gated) inject_gated_mlp(m, 2);
  if (cfg.bf16) m = m.to(DType::BF16);  // AdamW keeps the float32 masters
  context().recompute_activations = cfg.recompute;
  if (cfg.lm_chunk_mib > 0) context().lm_head_chunk_bytes = int64_t(cfg.lm_chunk_mib) << 20;
  m.set_requires_grad(true);
  const auto params = m.named_parameters();
  AdamW opt(default_decay_groups(params, 1e-4, 0.1));

  // SPC active (--spc): buffers A, B over every parameter outside the fast pathways, as after one
  // consolidated task (a synthetic Fisher: its values do not change the cost), and the penalty
  // gradient lambda (A theta - B) added to the gradients every step, as the continual trainer does.
  ContinualModel cm;
  cm.gpt = m;  // shares the parameter tensors
  cm.use_adapters = false;
  SpcState spc;
  if (cfg.spc) {
    FisherResult f;
    Rng frng(5);
    for (const auto& [name, p] : params) {
      if (name.find(".fast.") != std::string::npos) continue;
      Tensor fi = Tensor::empty(p.shape(), p.dtype(), p.device());
      frng.fill_uniform(fi, 0.0, 1e-3);
      f.fisher.emplace_back(name, fi);
    }
    spc.consolidate(f, cm, 1.0);
  }

  Rng rng(3);
  std::vector<int32_t> ids(size_t(cfg.batch) * size_t(cfg.seq)), tg(ids.size());
  for (auto& v : ids) v = int32_t(rng.below(50257));
  for (auto& v : tg) v = int32_t(rng.below(50257));
  const Tensor x = Tensor::from_ints(ids, {cfg.batch, cfg.seq}, dev);
  const Tensor y = Tensor::from_ints(tg, {cfg.batch, cfg.seq}, dev);

  // mark(i) is called after phase i (0 forward, 1 backward, 2 grad norm + AdamW); the timed steps pass
  // a no-op, the breakdown step a synchronising stopwatch.
  auto step = [&](const std::function<void(int)>& mark) {
    GateValues gates;
    Tensor loss = gpt2_lm_loss(m, x, y, ForwardOptions{cfg.gated ? &gates : nullptr});
    if (cfg.gated) {  // the plasticity loss the continual trainer adds: 0.01 * sum_l mean(pi (1 - pi))
      for (const Tensor& pi : gates.pi) {
        loss = ops::add(loss, ops::scale(ops::mean(ops::mul(pi, ops::affine(pi, -1.0, 1.0))), 0.01));
      }
    }
    mark(0);
    loss.backward();
    if (cfg.spc) spc.add_penalty_grad(cm, 1.0);
    mark(1);
    // Clipped on the device: nothing is read back inside a step (the norm stays on the GPU).
    opt.step_clipped(1.0, grad_sum_squares_on_device(params), 1.0);
    opt.zero_grad();
    mark(2);
  };
  const auto no_mark = [](int) {};
  for (int i = 0; i < cfg.warmup; ++i) step(no_mark);
  cuda::synchronize();
  cuda::device_allocator().reset_peak();
  std::vector<double> times, host_times;
  // --graph: the step recorded once as a CUDA graph, then replayed: the same kernels with the same
  // tensors (the caching allocator hands the recording the blocks the warm-up steps used, and nothing
  // else allocates between replays); AdamW's step count and bias corrections stay the recording's.
  std::shared_ptr<cuda::CapturedGraph> graph;
  if (cfg.graph) {
    graph = cuda::capture_graph([&] { step(no_mark); });
    for (int i = 0; i < 2; ++i) cuda::replay_graph(*graph);
    cuda::synchronize();
  }
  for (int i = 0; i < cfg.steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (graph) cuda::replay_graph(*graph);
    else step(no_mark);
    host_times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cuda::synchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  std::sort(host_times.begin(), host_times.end());
  StepResult r;
  if (std::getenv("ARIA_BENCH_PROFILE")) {  // one more plain step inside a profiler range (ncu --profile-from-start off)
    cuda::profiler_range(true);
    step(no_mark);
    cuda::synchronize();
    cuda::profiler_range(false);
  }
  {  // one more step, synchronised after each phase: where the time goes
    cuda::synchronize();
    auto t = std::chrono::steady_clock::now();
    step([&](int phase) {
      cuda::synchronize();
      const auto now = std::chrono::steady_clock::now();
      r.phase_ms[phase] = std::chrono::duration<double>(now - t).count() * 1e3;
      t = now;
    });
  }
  r.step_ms = times[times.size() / 2] * 1e3;
  r.host_ms = host_times[host_times.size() / 2] * 1e3;
  const double tokens = double(cfg.batch) * cfg.seq;
  r.tokens_per_s = tokens / (r.step_ms * 1e-3);
  r.params = m.num_parameters();
  // 6 N per token for the parameter matmuls (forward + backward) + 12 L T C for attention scores.
  r.flops_per_token = 6.0 * double(r.params) + 12.0 * c.n_layer * double(cfg.seq) * c.n_embd;
  r.tflops = r.flops_per_token * r.tokens_per_s / 1e12;
  r.peak_gib = double(cuda::device_allocator().stats().peak_bytes) / double(1ull << 30);
  return r;
}

}  // namespace aria::bench
