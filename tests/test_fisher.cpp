// Diagonal Fisher (train/continual/fisher.h): the fast per-sample path (one backward per batch, per-sample
// gradients from captured activations) equals the slow reference (one batch-1 backward per sample)
// to 1e-9 in float64 for every scope and both per-sample estimators; the batched estimator; the
// estimate leaves no trace on the model; parsing and scopes; a timing print (Fisher vs training pass).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <map>
#include <set>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/kernels/backend.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/continual/fisher.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::max_abs;
using testing::max_abs_diff;
using testing::tiny_gpt2_config;

namespace {

// Every parameter moved off its initial value (layernorms away from 1/0, the two pathways apart,
// the new adapter's zero up-projection non-zero), so that no gradient is trivially zero.
void perturb(const ContinualModel& m, Rng& rng, double std) {
  for (const auto& [name, p] : m.named_parameters()) {
    std::vector<double> v = p.to_doubles();
    for (double& x : v) x += std * rng.normal();
    p.copy_from(Tensor::from_vector(v, p.shape(), p.dtype(), p.device()));
  }
}

// Tiny gated GPT-2 with two tasks (task 0 frozen), in `dtype`.
ContinualModel tiny_model(DType dtype, bool gated = true, const Gpt2Config& cfg = tiny_gpt2_config()) {
  ContinualModel m;
  m.gpt = gpt2_random(cfg, 5);
  if (gated) inject_gated_mlp(m.gpt, 6, 0.3);
  m.gpt = m.gpt.to(dtype);
  m.gpt.set_requires_grad(true);
  m.use_adapters = true;
  m.adapter_dim = 4;
  Rng rng(9);
  m.add_task("first", 3, rng);
  m.add_task("second", 3, rng);
  perturb(m, rng, 0.05);
  return m;
}

std::vector<ClsExample> examples(int64_t n, int vocab, int max_len, uint64_t seed) {
  Rng rng(seed);
  std::vector<ClsExample> out(static_cast<size_t>(n));
  for (ClsExample& e : out) {
    const int len = 1 + int(rng.below(uint64_t(max_len)));
    for (int t = 0; t < len; ++t) e.ids.push_back(int32_t(1 + rng.below(uint64_t(vocab - 1))));
    e.label = int32_t(rng.below(3));
  }
  return out;
}

std::vector<ClsBatch> batches_of(const std::vector<ClsExample>& ex, const std::vector<int>& sizes) {
  std::vector<ClsBatch> out;
  size_t k = 0;
  for (int s : sizes) {
    std::vector<const ClsExample*> ptrs;
    for (int i = 0; i < s; ++i) ptrs.push_back(&ex[k++]);
    out.push_back(make_cls_batch(ptrs, Device::cpu(), 0));  // pad with id 0: the vocabulary is tiny
  }
  return out;
}

void check_equal(const FisherResult& got, const FisherResult& want, double tol) {
  REQUIRE(got.fisher.size() == want.fisher.size());
  CHECK(got.samples == want.samples);
  for (size_t k = 0; k < got.fisher.size(); ++k) {
    const auto& [name, F] = got.fisher[k];
    CAPTURE(name);
    REQUIRE(name == want.fisher[k].first);
    REQUIRE(F.shape() == want.fisher[k].second.shape());
    const double scale = max_abs(want.fisher[k].second);
    CHECK(scale > 0);  // every in-scope parameter has a non-zero Fisher here
    CHECK(max_abs_diff(F, want.fisher[k].second) <= tol * scale);
  }
}

}  // namespace

TEST_CASE("parse and name Fisher estimators and scopes") {
  for (auto e : {FisherEstimator::Exact, FisherEstimator::Empirical, FisherEstimator::Batched})
    CHECK(parse_fisher_estimator(fisher_estimator_name(e)) == e);
  for (auto s : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All})
    CHECK(parse_fisher_scope(fisher_scope_name(s)) == s);
  CHECK_THROWS_WITH_AS(parse_fisher_estimator("true"), doctest::Contains("exact, empirical, batched"), Error);
  CHECK_THROWS_WITH_AS(parse_fisher_scope("fast"), doctest::Contains("slow, all_but_fast, all"), Error);

  CHECK(in_fisher_scope("h.0.mlp.slow.c_fc.weight", FisherScope::Slow));
  CHECK_FALSE(in_fisher_scope("h.0.mlp.fast.c_fc.weight", FisherScope::Slow));
  CHECK_FALSE(in_fisher_scope("h.0.mlp.gate.fc1.weight", FisherScope::Slow));
  CHECK_FALSE(in_fisher_scope("h.0.attn.c_attn.weight", FisherScope::Slow));
  CHECK(in_fisher_scope("h.0.mlp.gate.fc1.weight", FisherScope::AllButFast));
  CHECK(in_fisher_scope("wte.weight", FisherScope::AllButFast));
  CHECK_FALSE(in_fisher_scope("h.1.mlp.fast.c_proj.bias", FisherScope::AllButFast));
  CHECK(in_fisher_scope("h.1.mlp.fast.c_proj.bias", FisherScope::All));
  CHECK(in_fisher_scope("h.1.mlp.c_fc.weight", FisherScope::All));
  for (auto s : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All}) {
    CHECK_FALSE(in_fisher_scope("task.0.head.weight", s));
    CHECK_FALSE(in_fisher_scope("task.3.adapter.down.weight", s));
  }
}

TEST_CASE("fast per-sample Fisher equals the batch-1 reference in float64 (every scope, both estimators)") {
  ContinualModel m = tiny_model(DType::F64);
  const auto ex = examples(9, 64, 12, 21);
  const auto batches = batches_of(ex, {5, 1, 3});
  const int task = 1;
  for (auto scope : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All}) {
    for (auto est : {FisherEstimator::Exact, FisherEstimator::Empirical}) {
      CAPTURE(std::string(fisher_scope_name(scope)));
      CAPTURE(std::string(fisher_estimator_name(est)));
      Rng r1(77);
      const auto labels = fisher_labels(m, task, batches, est, r1);
      const FisherResult fast = estimate_fisher_at_labels(m, task, batches, labels, scope);
      const FisherResult ref = estimate_fisher_reference(m, task, batches, labels, scope);
      check_equal(fast, ref, 1e-9);

      // The scope: exactly the named trunk parameters.
      std::set<std::string> want, got;
      for (const auto& [name, p] : m.named_parameters())
        if (in_fisher_scope(name, scope)) want.insert(name);
      for (const auto& np : fast.fisher) got.insert(np.first);
      CHECK(got == want);

      // estimate_fisher draws the same labels from the same rng state, in its single forward.
      Rng r2(77);
      const FisherResult direct = estimate_fisher(m, task, batches, est, scope, r2);
      check_equal(direct, fast, 0.0);
      CHECK(r2.state().counter == r1.state().counter);
      const std::string what = est == FisherEstimator::Exact ? "exact per-sample Fisher (sampled labels)"
                                                             : "empirical per-sample Fisher (true labels)";
      CHECK(direct.description == what + ", scope " + fisher_scope_name(scope) + ", 9 samples");
    }
  }
}

TEST_CASE("fast per-sample Fisher matches the reference in float32 too") {
  ContinualModel m = tiny_model(DType::F32);
  const auto batches = batches_of(examples(6, 64, 12, 31), {4, 2});
  Rng r(5);
  const auto labels = fisher_labels(m, 1, batches, FisherEstimator::Exact, r);
  check_equal(estimate_fisher_at_labels(m, 1, batches, labels, FisherScope::All),
              estimate_fisher_reference(m, 1, batches, labels, FisherScope::All), 1e-4);
}

TEST_CASE("sampled labels follow the model's predictive distribution, empirical labels are the true ones") {
  ContinualModel m = tiny_model(DType::F64);
  const auto ex = examples(40, 64, 6, 3);
  const auto batches = batches_of(ex, {40});
  Rng r(1);
  CHECK(fisher_labels(m, 1, batches, FisherEstimator::Empirical, r)[0] == batches[0].host_labels);
  CHECK(r.state().counter == 0);
  // Every hidden state = 50 (final layernorm weight 0, bias 50), identity adapter, and a head whose
  // class-2 column is 1: logit 2 is 800 above the others, so every sampled label is 2.
  m.gpt.lnf_w.copy_from(Tensor::full({16}, 0.0, DType::F64));
  m.gpt.lnf_b.copy_from(Tensor::full({16}, 50.0, DType::F64));
  m.tasks[1].adapter.up_w.copy_from(Tensor::zeros({4, 16}, DType::F64));
  m.tasks[1].adapter.up_b.copy_from(Tensor::zeros({16}, DType::F64));
  std::vector<double> head(16 * 3, 0.0);
  for (int i = 0; i < 16; ++i) head[size_t(i * 3 + 2)] = 1.0;
  m.tasks[1].head_w.copy_from(Tensor::from_vector(head, {16, 3}, DType::F64));
  const auto y = fisher_labels(m, 1, batches, FisherEstimator::Exact, r)[0];
  CHECK(r.state().counter > 0);
  for (int32_t v : y) CHECK(v == 2);
}

TEST_CASE("batched Fisher is the mean over batches of the squared mean-batch gradient") {
  ContinualModel m = tiny_model(DType::F64);
  const auto ex = examples(8, 64, 10, 5);
  const auto batches = batches_of(ex, {3, 5});
  Rng r(2);
  const FisherResult f = estimate_fisher(m, 1, batches, FisherEstimator::Batched, FisherScope::AllButFast, r);
  CHECK(f.samples == 8);
  CHECK(f.description ==
        "batched Fisher (squared mini-batch mean gradients, true labels, 2 batches), scope all_but_fast, 8 samples");
  std::map<std::string, std::vector<double>> want;
  for (const ClsBatch& b : batches) {
    for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
    ops::cross_entropy(classify_logits(m, b, 1), b.labels).backward();
    for (const auto& [name, p] : m.named_parameters()) {
      if (!in_fisher_scope(name, FisherScope::AllButFast)) continue;
      auto g = p.grad().to_doubles();
      auto& w = want[name];
      w.resize(g.size(), 0.0);
      for (size_t i = 0; i < g.size(); ++i) w[i] += g[i] * g[i] / 2.0;
    }
  }
  for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
  REQUIRE(f.fisher.size() == want.size());
  for (const auto& [name, F] : f.fisher) {
    CAPTURE(name);
    const Tensor w = Tensor::from_vector(want.at(name), F.shape(), DType::F64);
    CHECK(max_abs_diff(F, w) <= 1e-12 * (max_abs(w) + 1e-300));
  }
}

TEST_CASE("estimating the Fisher leaves grads, requires_grad and the tape as they were") {
  ContinualModel m = tiny_model(DType::F32);
  const auto ex = examples(6, 64, 8, 8);
  const auto batches = batches_of(ex, {4, 2});
  // The trainer's state: an accumulated gradient on some parameters, frozen task 0.
  Tensor marker = Tensor::full(m.gpt.blocks[0].gated->slow.fc_w.shape(), 3.0);
  m.gpt.blocks[0].gated->slow.fc_w.set_grad(marker);
  m.gpt.blocks[1].ln1_w.zero_grad();
  std::map<std::string, bool> rg;
  for (const auto& [name, p] : m.named_parameters()) rg[name] = p.requires_grad();
  CHECK_FALSE(rg.at("task.0.head.weight"));
  for (auto est : {FisherEstimator::Exact, FisherEstimator::Empirical, FisherEstimator::Batched}) {
    Rng r(4);
    const FisherResult f = estimate_fisher(m, 1, batches, est, FisherScope::All, r);
    CHECK(f.fisher.size() > 0);
    CHECK(tape().size() == 0);
    CHECK(m.gpt.blocks[0].gated->slow.fc_w.grad().same_as(marker));
    CHECK(max_abs(marker) == 3.0);
    CHECK_FALSE(m.gpt.blocks[1].ln1_w.grad().defined());
    for (const auto& [name, p] : m.named_parameters()) {
      CAPTURE(name);
      CHECK(p.requires_grad() == rg.at(name));
      if (name != "h.0.mlp.slow.c_fc.weight") CHECK_FALSE(p.grad().defined());
    }
  }
}

TEST_CASE("uniform Fisher is one for every parameter in scope and reads no data") {
  ContinualModel m = tiny_model(DType::F64);
  const auto ex = examples(4, 64, 10, 5);
  const auto batches = batches_of(ex, {4});
  Rng r(3);
  const RngState before = r.state();
  const FisherResult f = estimate_fisher(m, 1, batches, FisherEstimator::Uniform, FisherScope::AllButFast, r);
  CHECK(r.state().counter == before.counter);  // no label was drawn
  CHECK(f.description == "uniform Fisher (F = 1: the penalty is L2 to the anchors), scope all_but_fast, 0 samples");
  std::set<std::string> want;
  for (const auto& [name, p] : m.named_parameters())
    if (in_fisher_scope(name, FisherScope::AllButFast)) want.insert(name);
  std::set<std::string> got;
  for (const auto& [name, F] : f.fisher) {
    CAPTURE(name);
    got.insert(name);
    CHECK(F.dtype() == DType::F64);
    for (double v : F.to_doubles()) CHECK(v == 1.0);
  }
  CHECK(got == want);
  CHECK(parse_fisher_estimator("uniform") == FisherEstimator::Uniform);
  CHECK(std::string(fisher_estimator_name(FisherEstimator::Uniform)) == "uniform");
}

TEST_CASE("Fisher errors: empty scope, pending tape, bad task id") {
  ContinualModel plain = tiny_model(DType::F32, false);
  const auto ex = examples(3, 64, 5, 1);
  const auto batches = batches_of(ex, {3});
  Rng r(1);
  CHECK_THROWS_WITH_AS(estimate_fisher(plain, 1, batches, FisherEstimator::Exact, FisherScope::Slow, r),
                       doctest::Contains("selects no parameter"), Error);
  // A plain (ungated) model works with scope all (the EWC baseline).
  CHECK(estimate_fisher(plain, 1, batches, FisherEstimator::Exact, FisherScope::All, r).fisher.size() ==
        plain.gpt.named_parameters().size());
  CHECK_THROWS_WITH_AS(estimate_fisher(plain, 2, batches, FisherEstimator::Exact, FisherScope::All, r),
                       doctest::Contains("task id 2"), Error);
  Tensor pending = ops::sum(classify_logits(plain, batches[0], 1));
  CHECK_THROWS_WITH_AS(estimate_fisher(plain, 1, batches, FisherEstimator::Exact, FisherScope::All, r),
                       doctest::Contains("unfinished computation"), Error);
  pending.backward();
  for (const auto& [name, p] : plain.named_parameters()) p.zero_grad();
}

// A benchmark, not a test (CI timing varies): prints the cost of the Fisher relative to a training
// pass (forward + backward of the mean loss) over the same batches, for a tiny and a small model.
// ARIA_FISHER_BENCH=1 build/tests/test_fisher -tc="timing*"
TEST_CASE("timing: per-sample Fisher vs a training pass (printed)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_FISHER_BENCH")) return;
  struct Size {
    const char* name;
    Gpt2Config cfg;
    int batch, batches, len;
  };
  const Gpt2Config small =
      tiny_gpt2_config(/*vocab_size=*/2048, /*n_positions=*/128, /*n_embd=*/128, /*n_layer=*/4, /*n_head=*/4);
  const std::vector<Size> sizes = {{"tiny (L2 d16 V64)", tiny_gpt2_config(), 16, 4, 24},
                                   {"small (L4 d128 V2048)", small, 16, 1, 128}};
  for (const Size& s : sizes) {
    ContinualModel m = tiny_model(DType::F32, true, s.cfg);
    auto ex = examples(int64_t(s.batch) * s.batches, s.cfg.vocab_size, s.len, 12);
    for (ClsExample& e : ex) e.ids.resize(size_t(s.len), 7);  // full length: every token counts
    const auto batches = batches_of(ex, std::vector<int>(size_t(s.batches), s.batch));
    auto time = [](auto&& f) {
      double best = 1e30;
      for (int rep = 0; rep < 2; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    const double train = time([&] {
      for (const ClsBatch& b : batches) ops::cross_entropy(classify_logits(m, b, 1), b.labels).backward();
      for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
    });
    for (auto scope : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All}) {
      Rng r(3);
      const double fisher = time([&] { estimate_fisher(m, 1, batches, FisherEstimator::Exact, scope, r); });
      MESSAGE(std::string(s.name) << ", " << s.batches << " batches of " << s.batch << " x " << s.len << " tokens: training pass "
                     << train * 1e3 << " ms, exact per-sample Fisher (scope " << std::string(fisher_scope_name(scope)) << ") "
                     << fisher * 1e3 << " ms, ratio " << fisher / train);
    }
  }
}

namespace {

ContinualModel to_device(const ContinualModel& m, Device d) {
  NoGradGuard no_grad;  // plain copies, not recorded
  ContinualModel out = m;
  out.gpt = m.gpt.to(d);
  auto move = [&](Tensor& t) {
    if (!t.defined()) return;
    const bool rg = t.requires_grad();
    t = t.to(d).detach();
    if (rg) t.set_requires_grad(true);
  };
  for (TaskSlot& s : out.tasks) {
    for (Tensor* t : {&s.adapter.down_w, &s.adapter.down_b, &s.adapter.up_w, &s.adapter.up_b, &s.head_w}) move(*t);
  }
  return out;
}

std::vector<ClsBatch> batches_to(const std::vector<ClsBatch>& bs, Device d) {
  std::vector<ClsBatch> out = bs;
  for (ClsBatch& b : out) {
    b.ids = b.ids.to(d), b.last_index = b.last_index.to(d), b.labels = b.labels.to(d);
    if (b.mask.defined()) b.mask = b.mask.to(d);
  }
  return out;
}

}  // namespace

TEST_CASE("CUDA: per-sample Fisher on the GPU matches the CPU (float32, every estimator and scope)") {
  if (!testing::gpu_or_skip("CUDA Fisher")) return;
  ContinualModel cpu = tiny_model(DType::F32);
  ContinualModel gpu = to_device(cpu, Device::cuda(0));
  const auto cb = batches_of(examples(12, 64, 14, 41), {7, 5});
  const auto gb = batches_to(cb, Device::cuda(0));
  for (auto scope : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All}) {
    for (auto est : {FisherEstimator::Exact, FisherEstimator::Empirical, FisherEstimator::Batched}) {
      CAPTURE(std::string(fisher_scope_name(scope)));
      CAPTURE(std::string(fisher_estimator_name(est)));
      Rng r1(3), r2(3);
      const FisherResult a = estimate_fisher(cpu, 1, cb, est, scope, r1);
      const FisherResult b = estimate_fisher(gpu, 1, gb, est, scope, r2);
      REQUIRE(a.fisher.size() == b.fisher.size());
      for (size_t k = 0; k < a.fisher.size(); ++k) {
        CAPTURE(a.fisher[k].first);
        CHECK(b.fisher[k].second.device().is_cuda());
        CHECK(max_abs_diff(b.fisher[k].second, a.fisher[k].second) <= 1e-4 * max_abs(a.fisher[k].second));
      }
    }
  }
}

// GPU timing at GPT-2 124M shapes (random weights, gated MLPs), printed; runs only when
// ARIA_FISHER_BENCH=1 (it takes a while), e.g. ARIA_FISHER_BENCH=1 build-gpu/tests/test_fisher -tc="*bench*".
TEST_CASE("bench: per-sample Fisher vs a training pass on the GPU at GPT-2 124M shapes (printed)" * doctest::test_suite("benchmark")) {
  if (!testing::bench_or_skip("ARIA_FISHER_BENCH") || !testing::gpu_or_skip("GPT-2 124M Fisher bench")) return;
  Gpt2Config cfg;  // GPT-2 124M
  const Device dev = Device::cuda(0);
  ContinualModel m = to_device(tiny_model(DType::F32, true, cfg), dev);
  for (int T : {128, 512}) {
    const int B = 16, nb = 4;
    auto ex = examples(int64_t(B) * nb, cfg.vocab_size, T, 12);
    for (ClsExample& e : ex) e.ids.resize(size_t(T), 7);
    const auto batches = batches_to(batches_of(ex, std::vector<int>(size_t(nb), B)), dev);
    auto time = [](auto&& f) {
      f();  // warm-up (allocator, cuBLASLt plans)
      cuda::synchronize();
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        cuda::synchronize();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    const double train = time([&] {
      for (const ClsBatch& b : batches) ops::cross_entropy(classify_logits(m, b, 1), b.labels).backward();
      for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
    });
    for (auto scope : {FisherScope::Slow, FisherScope::AllButFast, FisherScope::All}) {
      for (auto est : {FisherEstimator::Exact, FisherEstimator::Batched}) {
        Rng r(3);
        const double fisher = time([&] { estimate_fisher(m, 1, batches, est, scope, r); });
        MESSAGE("GPT-2 124M gated, " << nb << " batches of " << B << " x " << T << " tokens: training pass "
                                     << train * 1e3 << " ms, " << std::string(fisher_estimator_name(est))
                                     << " Fisher (scope " << std::string(fisher_scope_name(scope)) << ") "
                                     << fisher * 1e3 << " ms, ratio " << fisher / train);
      }
    }
  }
}
