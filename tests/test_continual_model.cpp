// ContinualModel: add_task (freezing, head copy, adapter init), parameter naming, and
// classify_logits (last real token, padding-invariance, identity at injection + new adapter).
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/ops.h"
#include "aria/model/continual_model.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/data/cls_data.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::max_abs_diff;

namespace {

ContinualModel tiny_model(bool adapters, uint64_t seed = 11) {
  ContinualModel m;
  m.gpt = gpt2_random(testing::tiny_gpt2_config(), seed);
  m.use_adapters = adapters;
  m.adapter_dim = 4;
  return m;
}

bool all_zero(const Tensor& t) {
  for (double v : t.to_doubles())
    if (v != 0.0) return false;
  return true;
}

}  // namespace

TEST_CASE("add_task creates identity adapters, copies the head and freezes earlier tasks") {
  ContinualModel m = tiny_model(true);
  Rng rng(3);
  CHECK(m.add_task("a", 2, rng) == 0);
  const TaskSlot& a = m.tasks[0];
  CHECK(a.adapter.down_w.shape() == Shape{16, 4});
  CHECK(all_zero(a.adapter.up_w));
  CHECK(all_zero(a.adapter.up_b));
  CHECK_FALSE(all_zero(a.adapter.down_w));
  CHECK(a.head_w.shape() == Shape{16, 2});
  CHECK_FALSE(all_zero(a.head_w));
  CHECK(a.head_w.requires_grad());
  CHECK(a.adapter.down_w.requires_grad());
  CHECK_FALSE(a.frozen);

  CHECK(m.add_task("b", 2, rng) == 1);
  const TaskSlot& a2 = m.tasks[0];
  const TaskSlot& b = m.tasks[1];
  CHECK(a2.frozen);
  for (const Tensor* t : {&a2.head_w, &a2.adapter.down_w, &a2.adapter.down_b, &a2.adapter.up_w, &a2.adapter.up_b})
    CHECK_FALSE(t->requires_grad());
  CHECK(b.head_w.requires_grad());
  CHECK(b.head_w.to_doubles() == a2.head_w.to_doubles());  // a copy of the previous head...
  CHECK(b.head_w.raw_data() != a2.head_w.raw_data());      // ...in its own storage
  CHECK(b.adapter.down_w.to_doubles() != a2.adapter.down_w.to_doubles());

  CHECK(m.add_task("c", 3, rng) == 2);  // different label count: a fresh random head
  CHECK(m.tasks[2].head_w.shape() == Shape{16, 3});
  CHECK_FALSE(all_zero(m.tasks[2].head_w));
  CHECK_THROWS_WITH_AS(m.add_task("c", 2, rng), doctest::Contains("already registered"), Error);
  CHECK_THROWS_AS(m.add_task("d", 1, rng), Error);

  // Names: trunk first, then every task's adapter and head; all counted.
  auto named = m.named_parameters();
  std::set<std::string> names;
  int64_t total = 0;
  for (auto& [n, t] : named) names.insert(n), total += t.numel();
  CHECK(names.size() == named.size());
  for (const char* n : {"task.0.adapter.down.weight", "task.0.adapter.down.bias", "task.0.adapter.up.weight",
                        "task.0.adapter.up.bias", "task.0.head.weight", "task.2.head.weight", "h.1.mlp.c_fc.weight"})
    CHECK(names.count(n));
  CHECK(m.num_parameters() == total);
  CHECK(total == m.gpt.num_parameters() + 3 * (16 * 4 + 4 + 4 * 16 + 16) + 16 * 2 * 2 + 16 * 3);
}

TEST_CASE("a model without adapters has heads only") {
  ContinualModel m = tiny_model(false);
  Rng rng(1);
  m.add_task("a", 2, rng);
  for (auto& [n, t] : m.named_parameters()) CHECK(n.find("adapter") == std::string::npos);
  CHECK_FALSE(m.tasks[0].adapter.down_w.defined());
}

TEST_CASE("gated MLP injection plus a new adapter leave the logits unchanged") {
  ContinualModel plain = tiny_model(false);
  ContinualModel aria;
  aria.gpt = plain.gpt.to(DType::F32);  // deep copy
  inject_gated_mlp(aria.gpt, 5, 0.5);   // a large gate: pi far from 0.5 does not matter either
  aria.use_adapters = true;
  aria.adapter_dim = 4;
  Rng r1(9), r2(9);
  plain.add_task("a", 3, r1);
  aria.add_task("a", 3, r2);
  aria.tasks[0].head_w.copy_from(plain.tasks[0].head_w);
  std::vector<ClsExample> ex = {{{1, 2, 3, 4, 5}, 0}, {{7, 8}, 1}, {{9, 10, 11, 12, 13, 14, 15}, 2}};
  ClsBatch b = make_cls_batch({&ex[0], &ex[1], &ex[2]}, Device::cpu(), 0);
  NoGradGuard ng;
  Tensor lp = classify_logits(plain, b, 0), la = classify_logits(aria, b, 0);
  CHECK(lp.shape() == Shape{3, 3});
  CHECK(max_abs_diff(lp, la) == 0.0);
}

TEST_CASE("classify_logits reads the last real token, padding changes nothing") {
  ContinualModel m = tiny_model(true);
  Rng rng(2);
  m.add_task("a", 2, rng);
  rng.fill_normal(m.tasks[0].adapter.up_w, 0, 0.3);  // a non-trivial adapter
  m.gpt.set_requires_grad(true);
  std::vector<ClsExample> ex = {{{5, 6, 7}, 1}, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0}};
  ClsBatch padded = make_cls_batch({&ex[0], &ex[1]}, Device::cpu(), 0);
  ClsBatch padded_other = make_cls_batch({&ex[0], &ex[1]}, Device::cpu(), 63);
  ClsBatch single = make_cls_batch({&ex[0]}, Device::cpu(), 0);
  Tensor lb = classify_logits(m, padded, 0);
  Tensor lo = classify_logits(m, padded_other, 0);
  Tensor ls = classify_logits(m, single, 0);
  CHECK(max_abs_diff(lb.slice(0, 0, 1), ls) < 1e-6);
  CHECK(max_abs_diff(lb, lo) < 1e-6);
  // The same as reading the hidden state of position 2 of sequence 0 by hand.
  Tensor h = gpt2_hidden(m.gpt, single.ids).select(1, 2);  // [1, C]
  const TaskAdapter& a = m.tasks[0].adapter;
  Tensor ha = ops::add(h, ops::linear(ops::relu(ops::linear(h, a.down_w, a.down_b)), a.up_w, a.up_b));
  CHECK(max_abs_diff(ops::matmul(ha.contiguous(), m.tasks[0].head_w), ls) < 1e-6);

  // Gradients flow through the gather into the trunk, the adapter and the head.
  Tensor loss = ops::cross_entropy(lb, padded.labels);
  loss.backward();
  CHECK(m.gpt.wte.grad().defined());
  CHECK(a.down_w.grad().defined());
  CHECK(m.tasks[0].head_w.grad().defined());
  CHECK_THROWS_AS(classify_logits(m, padded, 1), Error);
}
