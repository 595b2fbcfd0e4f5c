// ARIA's parameter groups: every parameter in exactly one right group (fast / slow / head, decay
// by dimension, frozen tasks excluded), and each group's learning rate seen in an actual AdamW step.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "aria/core/ops.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/data/cls_data.h"
#include "aria/train/optim/param_groups.h"
#include "tests/support/test_util.h"

using namespace aria;

namespace {

ContinualModel gated_model_with_two_tasks() {
  ContinualModel m;
  m.gpt = gpt2_random(testing::tiny_gpt2_config(), 4);
  inject_gated_mlp(m.gpt, 5);
  m.use_adapters = true;
  m.adapter_dim = 4;
  Rng rng(6);
  m.add_task("a", 2, rng);
  m.add_task("b", 2, rng);
  return m;
}

ParamGroupSettings settings() {
  ParamGroupSettings s;
  s.lr = 1e-3;
  s.slow_lr_ratio = 0.5;
  s.head_lr_mult = 5.0;
  s.weight_decay = 0.1;
  return s;
}

// group name of every parameter; fails on a parameter in two groups
std::map<std::string, const ParamGroup*> group_of(const std::vector<ParamGroup>& groups) {
  std::map<std::string, const ParamGroup*> out;
  for (const ParamGroup& g : groups)
    for (const auto& np : g.params) {
      INFO(np.first);
      CHECK(out.emplace(np.first, &g).second);
    }
  return out;
}

std::string expected_role(const std::string& n) {
  if (n.rfind("task.", 0) == 0) return "head";
  if (n.find(".mlp.slow.") != std::string::npos) return "slow";
  return "fast";
}

}  // namespace

TEST_CASE("roles by name") {
  CHECK(param_role("h.3.mlp.slow.c_fc.weight") == ParamRole::Slow);
  CHECK(param_role("h.3.mlp.fast.c_fc.weight") == ParamRole::Fast);
  CHECK(param_role("h.3.mlp.gate.fc1.weight") == ParamRole::Fast);
  CHECK(param_role("h.0.mlp.c_fc.weight") == ParamRole::Fast);
  CHECK(param_role("wte.weight") == ParamRole::Fast);
  CHECK(param_role("task.12.adapter.up.bias") == ParamRole::Head);
  CHECK(param_role("task.0.head.weight") == ParamRole::Head);
  CHECK(param_task("task.12.adapter.up.bias") == 12);
  CHECK(param_task("h.1.ln_1.weight") == -1);
}

TEST_CASE("every trainable parameter lands in exactly one right group") {
  ContinualModel m = gated_model_with_two_tasks();
  const ParamGroupSettings s = settings();
  auto groups = build_param_groups(m, {1}, s);
  auto where = group_of(groups);
  const std::map<std::string, double> lr = {{"fast", 1e-3}, {"slow", 5e-4}, {"head", 5e-3}};
  int seen = 0;
  for (const auto& [name, t] : m.named_parameters()) {
    INFO(name);
    if (param_task(name) == 0) {  // the frozen task
      CHECK(where.count(name) == 0);
      continue;
    }
    REQUIRE(where.count(name) == 1);
    const ParamGroup& g = *where.at(name);
    const std::string role = expected_role(name);
    const bool decay = t.dim() >= 2;
    CHECK(g.name == role + (decay ? "/decay" : "/no_decay"));
    CHECK(g.lr == doctest::Approx(lr.at(role)));
    CHECK(g.weight_decay == (decay ? 0.1 : 0.0));
    ++seen;
  }
  CHECK(seen == int(where.size()));
  CHECK(groups.size() == 6);
  // the printable table names every group and parameter
  const std::string table = describe_param_groups(groups);
  for (const ParamGroup& g : groups) CHECK(table.find(g.name) != std::string::npos);
  CHECK(table.find("h.1.mlp.slow.c_proj.bias") != std::string::npos);
  CHECK(table.find("task.0.") == std::string::npos);

  // apply_trainable: exactly the grouped parameters require grad
  apply_trainable(m, groups);
  for (const auto& [name, t] : m.named_parameters()) {
    INFO(name);
    CHECK(t.requires_grad() == (where.count(name) == 1));
  }

  // adapters-only: the trunk is in no group; joint training: every task's head
  ParamGroupSettings frozen = s;
  frozen.freeze_trunk = true;
  for (const auto& [name, g] : group_of(build_param_groups(m, {1}, frozen))) CHECK(param_task(name) == 1);
  auto joint = group_of(build_param_groups(m, {0, 1}, s));
  CHECK(joint.count("task.0.head.weight"));
  CHECK(joint.count("task.1.head.weight"));
  CHECK_THROWS_AS(build_param_groups(m, {2}, s), Error);
}

TEST_CASE("each group gets its own learning rate in an AdamW step") {
  ContinualModel m = gated_model_with_two_tasks();
  // Break the symmetries of the initialisation (identical pathways, zero up-projections) so that
  // every tensor gets a gradient.
  Rng rng(8);
  for (const auto& [name, t] : m.named_parameters()) {
    auto v = t.to_doubles();
    for (double& x : v) x += 0.05 * rng.normal();
    t.copy_from(Tensor::from_vector(v, t.shape(), DType::F64));
  }
  ParamGroupSettings s = settings();
  s.weight_decay = 0.0;  // the first AdamW step is then lr * sign(grad) where |grad| >> eps
  auto groups = build_param_groups(m, {1}, s);
  apply_trainable(m, groups);
  std::map<std::string, std::vector<double>> before;
  for (const auto& [name, t] : m.named_parameters()) before[name] = t.to_doubles();
  AdamW opt(groups);

  std::vector<ClsExample> ex;
  for (int i = 0; i < 6; ++i) ex.push_back({{int32_t(1 + i), int32_t(10 + 3 * i), int32_t(40 + i)}, i % 2});
  std::vector<const ClsExample*> ptrs;
  for (auto& e : ex) ptrs.push_back(&e);
  ClsBatch b = make_cls_batch(ptrs, Device::cpu(), 0);
  ops::cross_entropy(classify_logits(m, b, 1), b.labels).backward();
  opt.step();

  auto where = group_of(groups);
  for (const auto& [name, t] : m.named_parameters()) {
    INFO(name);
    const auto after = t.to_doubles();
    double max_step = 0;
    for (size_t i = 0; i < after.size(); ++i) max_step = std::max(max_step, std::abs(after[i] - before[name][i]));
    if (!where.count(name)) {
      CHECK(max_step == 0.0);  // frozen task 0
      continue;
    }
    CHECK(max_step == doctest::Approx(where.at(name)->lr).epsilon(0.01));
  }
}

TEST_CASE("gate_lr_ratio puts the gates in their own groups at lr * ratio, and 1 leaves them in fast") {
  const ContinualModel m = gated_model_with_two_tasks();
  ParamGroupSettings s = settings();
  s.gate_lr_ratio = 0.1;
  const auto groups = build_param_groups(m, {1}, s);
  const auto where = group_of(groups);
  int gates = 0;
  for (const auto& [name, g] : where) {
    INFO(name);
    const bool gate = name.find(".mlp.gate.") != std::string::npos;
    gates += gate;
    if (gate) {
      CHECK(g->name.rfind("gate/", 0) == 0);
      CHECK(g->lr == doctest::Approx(1e-4));
      CHECK(g->weight_decay == (name.find("weight") != std::string::npos ? 0.1 : 0.0));
    } else {
      CHECK(g->name.rfind(expected_role(name) + "/", 0) == 0);
    }
  }
  CHECK(gates == 2 * 4);  // 2 layers x fc1/fc2 weight and bias
  s.gate_lr_ratio = 1.0;
  for (const ParamGroup& g : build_param_groups(m, {1}, s)) CHECK(g.name.rfind("gate/", 0) != 0);
}
