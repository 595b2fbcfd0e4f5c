// SPC state (train/continual/spc.h): the penalty kept as A = sum F, B = sum F theta*, C equals the explicit
// sum over tasks (with and without decay), is 0 at a single task's anchor, its gradient matches
// finite differences (float64), and the state round-trips through state_tensors / load_state.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "aria/core/device.h"
#include "aria/core/error.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/spc.h"
#include "tests/support/test_util.h"

using namespace aria;

namespace {

ContinualModel tiny_model() {
  ContinualModel m;
  m.gpt = gpt2_random(testing::tiny_gpt2_config(), 3);
  inject_gated_mlp(m.gpt, 4);
  m.gpt = m.gpt.to(DType::F64);
  m.gpt.set_requires_grad(true);
  m.adapter_dim = 4;
  Rng rng(1);
  m.add_task("t", 2, rng);
  return m;
}

// A made-up Fisher (positive, spread over orders of magnitude) for the given scope.
FisherResult fake_fisher(const ContinualModel& m, FisherScope scope, Rng& rng) {
  FisherResult f;
  for (const auto& [name, p] : m.named_parameters()) {
    if (!in_fisher_scope(name, scope)) continue;
    std::vector<double> v(size_t(p.numel()));
    for (double& x : v) x = std::exp(2.0 * rng.normal());
    f.fisher.emplace_back(name, Tensor::from_vector(v, p.shape(), DType::F64));
    f.samples = 10;
  }
  return f;
}

// theta += std * noise for every parameter.
void move_params(const ContinualModel& m, Rng& rng, double std) {
  for (const auto& [name, p] : m.named_parameters()) {
    std::vector<double> v = p.to_doubles();
    for (double& x : v) x += std * rng.normal();
    p.copy_from(Tensor::from_vector(v, p.shape(), p.dtype()));
  }
}

std::map<std::string, std::vector<double>> snapshot(const ContinualModel& m) {
  std::map<std::string, std::vector<double>> s;
  for (const auto& [name, p] : m.named_parameters()) s[name] = p.to_doubles();
  return s;
}

// lambda/2 sum_t w_t sum_i F_t,i (theta_i - theta*_t,i)^2, computed directly.
double explicit_penalty(const ContinualModel& m, const std::vector<FisherResult>& fs,
                        const std::vector<std::map<std::string, std::vector<double>>>& anchors,
                        const std::vector<double>& weights, double lambda) {
  auto now = snapshot(m);
  double s = 0;
  for (size_t t = 0; t < fs.size(); ++t)
    for (const auto& [name, F] : fs[t].fisher) {
      auto f = F.to_doubles();
      const auto& a = anchors[t].at(name);
      const auto& th = now.at(name);
      for (size_t i = 0; i < f.size(); ++i) s += weights[t] * f[i] * (th[i] - a[i]) * (th[i] - a[i]);
    }
  return 0.5 * lambda * s;
}

}  // namespace

TEST_CASE("SPC penalty equals the explicit sum over tasks, with and without decay") {
  for (double gamma : {1.0, 0.7}) {
    CAPTURE(gamma);
    ContinualModel m = tiny_model();
    Rng rng(11);
    SpcState spc;
    CHECK(spc.penalty(m, 5.0) == 0.0);
    CHECK(spc.tasks_consolidated() == 0);
    move_params(m, rng, 0.1);
    FisherResult f1 = fake_fisher(m, FisherScope::Slow, rng);
    auto a1 = snapshot(m);
    spc.consolidate(f1, m, gamma);
    move_params(m, rng, 0.1);
    FisherResult f2 = fake_fisher(m, FisherScope::AllButFast, rng);  // a wider second scope
    auto a2 = snapshot(m);
    spc.consolidate(f2, m, gamma);
    CHECK(spc.tasks_consolidated() == 2);
    move_params(m, rng, 0.1);
    const double want = explicit_penalty(m, {f1, f2}, {a1, a2}, {gamma, 1.0}, 3.0);
    CHECK(want > 0);
    CHECK(std::abs(spc.penalty(m, 3.0) - want) <= 1e-10 * want);
  }
}

TEST_CASE("SPC penalty is 0 at a single task's anchor and grows away from it") {
  ContinualModel m = tiny_model();
  Rng rng(2);
  move_params(m, rng, 0.2);
  SpcState spc;
  const FisherResult f = fake_fisher(m, FisherScope::Slow, rng);
  spc.consolidate(f, m, 1.0);
  double scale = 0;  // lambda/2 sum F theta*^2: the size of the terms that cancel
  for (const auto& [name, F] : f.fisher) {
    auto fv = F.to_doubles();
    auto th = snapshot(m).at(name);
    for (size_t i = 0; i < fv.size(); ++i) scale += 0.5 * 10.0 * fv[i] * th[i] * th[i];
  }
  CHECK(std::abs(spc.penalty(m, 10.0)) <= 1e-12 * scale);
  move_params(m, rng, 0.01);
  CHECK(spc.penalty(m, 10.0) > 1e-6 * scale);
}

TEST_CASE("add_penalty_grad is the gradient of penalty (finite differences, float64)") {
  ContinualModel m = tiny_model();
  Rng rng(5);
  SpcState spc;
  spc.consolidate(fake_fisher(m, FisherScope::Slow, rng), m, 1.0);
  move_params(m, rng, 0.05);
  spc.consolidate(fake_fisher(m, FisherScope::All, rng), m, 0.9);
  move_params(m, rng, 0.05);
  const double lambda = 2.5;
  // One parameter starts with a gradient (added to), the others with none (allocated).
  const Tensor& pre = m.gpt.blocks[0].attn_w;
  pre.set_grad(Tensor::full(pre.shape(), 1.0, DType::F64));
  spc.add_penalty_grad(m, lambda);
  for (const auto& [name, p] : m.named_parameters()) {
    CAPTURE(name);
    if (name.rfind("task.", 0) == 0) {
      CHECK_FALSE(p.grad().defined());  // never consolidated
      continue;
    }
    REQUIRE(p.grad().defined());
    auto g = p.grad().to_doubles();
    if (p.same_as(pre))
      for (double& x : g) x -= 1.0;
    auto v = p.to_doubles();
    for (size_t i : {size_t(0), v.size() / 2, v.size() - 1}) {
      const double h = 1e-5, keep = v[i];
      v[i] = keep + h;
      p.copy_from(Tensor::from_vector(v, p.shape(), DType::F64));
      const double up = spc.penalty(m, lambda);
      v[i] = keep - h;
      p.copy_from(Tensor::from_vector(v, p.shape(), DType::F64));
      const double down = spc.penalty(m, lambda);
      v[i] = keep;
      p.copy_from(Tensor::from_vector(v, p.shape(), DType::F64));
      const double numeric = (up - down) / (2 * h);
      CHECK(std::abs(g[i] - numeric) <= 1e-6 * (1.0 + std::abs(numeric)));
    }
  }
  // Parameters that do not require grad are skipped.
  for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
  Tensor(m.gpt.wte).set_requires_grad(false);
  spc.add_penalty_grad(m, lambda);
  CHECK_FALSE(m.gpt.wte.grad().defined());
  CHECK(m.gpt.wpe.grad().defined());
}

TEST_CASE("SPC state round-trips through state_tensors / load_state") {
  ContinualModel m = tiny_model();
  Rng rng(8);
  SpcState a;
  a.consolidate(fake_fisher(m, FisherScope::Slow, rng), m, 1.0);
  move_params(m, rng, 0.1);
  a.consolidate(fake_fisher(m, FisherScope::Slow, rng), m, 0.5);
  move_params(m, rng, 0.1);

  std::map<std::string, Tensor> saved;
  for (auto& [k, t] : a.state_tensors()) saved.emplace(k, t.clone());
  CHECK(saved.count("spc.C") == 1);
  CHECK(saved.count("spc.A.h.0.mlp.slow.c_fc.weight") == 1);
  CHECK(saved.count("spc.B.h.1.mlp.slow.c_proj.bias") == 1);
  CHECK(saved.size() == 2 * 8 + 1);
  saved.emplace("model.wte.weight", m.gpt.wte);  // other checkpoint tensors are ignored

  SpcState b;
  b.load_state(saved, a.tasks_consolidated());
  CHECK(b.tasks_consolidated() == 2);
  CHECK(b.penalty(m, 4.0) == a.penalty(m, 4.0));
  auto sa = a.state_tensors(), sb = b.state_tensors();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].first == sb[i].first);
    CHECK(sa[i].second.to_doubles() == sb[i].second.to_doubles());
  }
  // Both continue identically.
  Rng r1(3), r2(3);
  a.consolidate(fake_fisher(m, FisherScope::Slow, r1), m, 0.5);
  b.consolidate(fake_fisher(m, FisherScope::Slow, r2), m, 0.5);
  move_params(m, rng, 0.1);
  CHECK(a.penalty(m, 4.0) == b.penalty(m, 4.0));

  SpcState empty;
  empty.load_state({}, 0);
  CHECK(empty.penalty(m, 1.0) == 0.0);
}

TEST_CASE("SPC errors") {
  ContinualModel m = tiny_model();
  Rng rng(1);
  SpcState spc;
  CHECK_THROWS_WITH_AS(spc.consolidate(fake_fisher(m, FisherScope::Slow, rng), m, 1.5),
                       doctest::Contains("gamma must be in [0, 1]"), Error);
  FisherResult wrong;
  wrong.fisher.emplace_back("h.0.mlp.slow.c_fc.weight", Tensor::zeros({3}, DType::F64));
  CHECK_THROWS_WITH_AS(spc.consolidate(wrong, m, 1.0), doctest::Contains("Fisher of h.0.mlp.slow.c_fc.weight"), Error);
  std::map<std::string, Tensor> bad = {{"spc.A.x", Tensor::zeros({2}, DType::F64)},
                                       {"spc.C", Tensor::zeros({1}, DType::F64)}};
  CHECK_THROWS_WITH_AS(spc.load_state(bad, 1), doctest::Contains("has spc.A but not spc.B"), Error);
  CHECK_THROWS_WITH_AS(spc.load_state({{"spc.D", Tensor::zeros({1}, DType::F64)}}, 1),
                       doctest::Contains("unknown tensor spc.D"), Error);
  CHECK_THROWS_WITH_AS(spc.load_state({{"spc.A.x", Tensor::zeros({2}, DType::F64)},
                                       {"spc.B.x", Tensor::zeros({2}, DType::F64)}},
                                      1),
                       doctest::Contains("no spc.C"), Error);
  CHECK(spc.tasks_consolidated() == 0);  // failed loads change nothing
}

// float32, on `dev`: one consolidated task, the parameters at its anchor: lambda (A theta - B) must be
// exactly 0 (B holds the rounded products F theta*; a fused multiply-add would leave their rounding
// residue, which AdamW's per-element normalisation turns into lr-sized steps: the PyTorch twin found it,
// docs/twin.md).
static void check_zero_grad_at_anchor(Device dev) {
  ContinualModel m = tiny_model();
  m.gpt = m.gpt.to(DType::F32).to(dev);
  m.tasks.clear();
  Rng rng(8);
  move_params(m, rng, 0.2);
  FisherResult f = fake_fisher(m, FisherScope::All, rng);
  for (auto& [name, F] : f.fisher) F = F.to(DType::F32).to(dev);
  SpcState spc;
  spc.consolidate(f, m, 1.0);
  m.gpt.set_requires_grad(true);
  for (const auto& np : m.named_parameters()) np.second.zero_grad();
  spc.add_penalty_grad(m, 50.0);
  int64_t nonzero = 0, n = 0;
  for (const auto& [name, p] : m.named_parameters()) {
    REQUIRE(p.grad().defined());
    for (double g : p.grad().to_doubles()) nonzero += g != 0.0, ++n;
  }
  CHECK(n > 1000);
  CHECK(nonzero == 0);
  move_params(m, rng, 1e-3);  // away from the anchor the gradient is there
  for (const auto& np : m.named_parameters()) np.second.zero_grad();
  spc.add_penalty_grad(m, 50.0);
  nonzero = 0;
  for (const auto& [name, p] : m.named_parameters())
    for (double g : p.grad().to_doubles()) nonzero += g != 0.0;
  CHECK(nonzero == n);
}

TEST_CASE("SPC penalty gradient is exactly 0 at a single task's anchor in float32") {
  check_zero_grad_at_anchor(Device::cpu());
}

TEST_CASE("CUDA: SPC penalty gradient is exactly 0 at a single task's anchor in float32") {
  if (!testing::gpu_or_skip("CUDA SPC gradient at the anchor")) return;
  check_zero_grad_at_anchor(Device::cuda(0));
}

TEST_CASE("CUDA: SPC buffers, penalty and gradient on the GPU match the CPU (float32)") {
  if (!testing::gpu_or_skip("CUDA SPC")) return;
  ContinualModel cpu = tiny_model();
  cpu.gpt = cpu.gpt.to(DType::F32);
  cpu.tasks.clear();
  Rng rng(4);
  move_params(cpu, rng, 0.05);
  ContinualModel gpu = cpu;
  gpu.gpt = cpu.gpt.to(Device::cuda(0));
  FisherResult f = fake_fisher(cpu, FisherScope::All, rng);
  for (auto& [name, F] : f.fisher) F = F.to(DType::F32);
  FisherResult fg = f;
  for (auto& [name, F] : fg.fisher) F = F.to(Device::cuda(0));
  SpcState a, b;
  a.consolidate(f, cpu, 0.9);
  b.consolidate(fg, gpu, 0.9);
  Rng r1(6), r2(6);
  move_params(cpu, r1, 0.05);
  move_params(gpu, r2, 0.05);
  const double pa = a.penalty(cpu, 2.0), pb = b.penalty(gpu, 2.0);
  CHECK(std::abs(pa - pb) <= 1e-3 * std::abs(pa) + 1e-3);
  a.add_penalty_grad(cpu, 2.0);
  b.add_penalty_grad(gpu, 2.0);
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  for (size_t k = 0; k < pc.size(); ++k) {
    CAPTURE(pc[k].first);
    REQUIRE(pg[k].second.grad().defined());
    CHECK(pg[k].second.grad().device().is_cuda());
    auto x = pc[k].second.grad().to_doubles(), y = pg[k].second.grad().to_doubles();
    double d = 0, s = 0;
    for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i])), s = std::max(s, std::abs(x[i]));
    CHECK(d <= 1e-4 * s + 1e-6);
  }
  // Buffers loaded on the CPU move to the parameters' device on first use.
  std::map<std::string, Tensor> saved;
  for (auto& [k, t] : b.state_tensors()) saved.emplace(k, t.to(Device::cpu()));
  SpcState c;
  c.load_state(saved, 1);
  CHECK(c.penalty(gpu, 2.0) == doctest::Approx(pb).epsilon(1e-6));
}
