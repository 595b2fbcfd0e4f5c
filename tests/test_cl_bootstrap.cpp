// Issue 15's protocol pieces on the CPU: intervals over test examples and runs from per-example
// records (train/report/cl_bootstrap.h), seeded task orders (train/experiment/task_orders.h), per-example correctness
// from the trainer, the ablation methods, the gate-collapse diagnosis (train/continual/gate_diagnostics.h) and
// the head-only transfer probe (train/continual/head_probe.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "aria/core/error.h"
#include "aria/train/report/cl_bootstrap.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/continual/gate_diagnostics.h"
#include "aria/train/continual/head_probe.h"
#include "aria/train/report/report.h"
#include "aria/train/experiment/task_orders.h"
#include "tests/support/continual_fixtures.h"

using namespace aria;
using namespace aria::testing;

namespace {

// n examples of which the first k are correct.
std::string bits(size_t n, size_t k) { return std::string(k, '1') + std::string(n - k, '0'); }

double frac(const std::string& s) { return double(std::count(s.begin(), s.end(), '1')) / double(s.size()); }

// A sequential run over 2 tasks whose matrix is the fractions of its per-example rows.
MethodRun run_from(uint64_t seed, std::vector<std::vector<std::string>> correct) {
  MethodRun r;
  r.seed = seed;
  r.correct = std::move(correct);
  for (const std::string& c : r.correct[0]) r.before.push_back(frac(c));
  for (size_t i = 1; i < r.correct.size(); ++i) {
    std::vector<double> row;
    for (const std::string& c : r.correct[i]) row.push_back(frac(c));
    r.matrix.push_back(row);
  }
  return r;
}

}  // namespace

TEST_CASE("bootstrap over test examples: one run has an interval around its ACC, binomial in width") {
  // Task 0: 200 examples; task 1: 100. After the last task 120/200 and 80/100 correct: ACC 0.7.
  const MethodRun r = run_from(1, {{bits(200, 100), bits(100, 50)},
                                   {bits(200, 150), bits(100, 50)},
                                   {bits(200, 120), bits(100, 80)}});
  REQUIRE(has_example_records({&r}));
  const auto iv = bootstrap_runs_and_examples({&r});
  REQUIRE(iv[0].has);
  CHECK(iv[0].lo < 0.7);
  CHECK(iv[0].hi > 0.7);
  // Standard error of (p0 + p1) / 2: sqrt(0.6*0.4/200 + 0.8*0.2/100) / 2 = 0.0255; 95% width ~ 0.10.
  const double width = iv[0].hi - iv[0].lo;
  CHECK(width > 0.08);
  CHECK(width < 0.12);
  // The same inputs give the same interval (a fixed seed).
  const auto again = bootstrap_runs_and_examples({&r});
  CHECK(again[0].lo == iv[0].lo);
  CHECK(again[0].hi == iv[0].hi);
}

TEST_CASE("bootstrap over test examples: one draw per task shared by every row, so an unchanged model has zero BWT") {
  // Every row identical (a method whose parameters cannot change): BWT, forgetting and FWT are 0 for any
  // draw of the examples, so their intervals are exactly [0, 0]; independent draws per row would not be.
  const std::vector<std::string> row = {bits(50, 20), bits(40, 30)};
  const MethodRun r = run_from(3, {row, row, row});
  const auto iv = bootstrap_runs_and_examples({&r}, 500);
  for (int k : {1, 2, 3}) {
    REQUIRE(iv[size_t(k)].has);
    CHECK(iv[size_t(k)].lo == 0.0);
    CHECK(iv[size_t(k)].hi == 0.0);
  }
  CHECK(iv[0].hi > iv[0].lo);
}

TEST_CASE("bootstrap over test examples: runs share the test set, so identical runs do not narrow the interval") {
  const MethodRun a = run_from(1, {{bits(100, 50), bits(100, 50)},
                                   {bits(100, 90), bits(100, 40)},
                                   {bits(100, 70), bits(100, 85)}});
  MethodRun b = a;
  b.seed = 2;
  const auto one = bootstrap_runs_and_examples({&a});
  const auto two = bootstrap_runs_and_examples({&a, &b});
  const double w1 = one[0].hi - one[0].lo, w2 = two[0].hi - two[0].lo;
  CAPTURE(w1);
  CAPTURE(w2);
  // Independent example draws per run would shrink the width by about 1/sqrt(2) (0.71).
  CHECK(w2 > 0.85 * w1);
  CHECK(w2 < 1.15 * w1);
}

TEST_CASE("paired bootstrap over examples: a method equal to its baseline differs by exactly 0") {
  const MethodRun a = run_from(1, {{bits(60, 30), bits(60, 30)},
                                   {bits(60, 50), bits(60, 20)},
                                   {bits(60, 40), bits(60, 55)}});
  const Interval same = paired_bootstrap_runs_and_examples({&a}, {&a}, 0, 300);
  REQUIRE(same.has);
  CHECK(same.lo == 0.0);
  CHECK(same.hi == 0.0);
  // Right on 5 more examples of task 1 at the end (60 of 60 instead of 55): ACC + 5/120. The same
  // examples are drawn for both and the method's correct set contains the baseline's, so no resample
  // can show a loss; a gain is the drawn copies of those 5 examples / 120.
  MethodRun better = a;
  better.correct[2][1] = bits(60, 60);
  better.matrix[1][1] = 1.0;
  const Interval d = paired_bootstrap_runs_and_examples({&better}, {&a}, 0, 300);
  REQUIRE(d.has);
  CHECK(d.lo >= 0.0);
  CHECK(d.hi > 0.0);
  CHECK(d.hi < 15.0 / 120);  // 15 or more copies of 5 examples in 60 draws: far beyond the 97.5th percentile
  MethodRun other_seed = a;
  other_seed.seed = 9;
  CHECK_THROWS_WITH_AS(paired_bootstrap_runs_and_examples({&a}, {&other_seed}, 0), doctest::Contains("differs"), Error);
}

TEST_CASE("report: intervals over runs and test examples when recorded, over runs otherwise") {
  ClReport r;
  r.tasks = {"t0", "t1"};
  r.num_labels = {2, 2};
  const MethodRun a = run_from(1, {{bits(80, 40), bits(80, 40)},
                                   {bits(80, 70), bits(80, 40)},
                                   {bits(80, 60), bits(80, 72)}});
  r.methods.push_back({"finetune", {a}});
  auto j = report_to_json(r);
  CHECK(j["statistics"]["over"] == "runs and test examples");
  CHECK(j["statistics"]["over_test_examples"] == true);
  REQUIRE(j["methods"]["finetune"]["ci95"]["acc"].is_array());  // one seed: the examples still vary
  CHECK(j["methods"]["finetune"]["ci95_runs"]["acc"].is_null());
  CHECK(j["methods"]["finetune"]["correct"][2][1] == bits(80, 72));
  r.methods[0].runs[0].correct.clear();
  j = report_to_json(r);
  CHECK(j["statistics"]["over"] == "runs");
  CHECK(j["methods"]["finetune"]["ci95"]["acc"].is_null());
}

TEST_CASE("report: task orders are reported per order and pooled, paired by seed and order") {
  ClReport r;
  r.tasks = {"t0", "t1"};
  MethodResult ft{"finetune", {}}, ar{"aria", {}};
  for (int o = 0; o < 2; ++o)
    for (uint64_t s = 1; s <= 2; ++s) {
      MethodRun run = run_from(s, {{bits(10, 5), bits(10, 5)},
                                   {bits(10, 9), bits(10, 5)},
                                   {bits(10, o ? 6 : 8), bits(10, 9)}});
      run.order_index = o;
      if (o) run.order = {1, 0};
      ft.runs.push_back(run);
      run.correct[2][0] = bits(10, 9);  // aria: 9/10 on the first-trained task at the end, every run
      run.matrix[1][0] = 0.9;
      ar.runs.push_back(run);
    }
  r.methods = {ft, ar};
  const auto j = report_to_json(r);
  const auto& f = j["methods"]["finetune"];
  REQUIRE(f["per_order"].size() == 2);
  CHECK(f["per_order"][0]["order"] == nlohmann::ordered_json({"t0", "t1"}));
  CHECK(f["per_order"][1]["order"] == nlohmann::ordered_json({"t1", "t0"}));
  CHECK(f["per_order"][0]["acc"].get<double>() == doctest::Approx(0.85));  // (0.8 + 0.9) / 2
  CHECK(f["per_order"][1]["acc"].get<double>() == doctest::Approx(0.75));  // (0.6 + 0.9) / 2
  CHECK(f["acc"].get<double>() == doctest::Approx(0.80));                  // pooled over 4 runs
  // The mean matrix is over the configured order's runs only (its columns are the listed tasks).
  CHECK(f["matrix"][1][0].get<double>() == doctest::Approx(0.8));
  CHECK(f["per_seed"][2]["order"] == nlohmann::ordered_json({"t1", "t0"}));
  const auto& v = j["methods"]["aria"]["vs_finetune"];
  CHECK(v["pairs"] == 4);
  CHECK(v["acc"]["wins"] == 4);
}

TEST_CASE("task orders: the listed order first, then distinct seeded permutations") {
  const auto o = task_orders(5, 3, 1234);
  REQUIRE(o.size() == 3);
  CHECK(o[0] == std::vector<int>({0, 1, 2, 3, 4}));
  std::set<std::vector<int>> seen(o.begin(), o.end());
  CHECK(seen.size() == 3);
  for (auto p : o) {
    std::sort(p.begin(), p.end());
    CHECK(p == std::vector<int>({0, 1, 2, 3, 4}));
  }
  CHECK(task_orders(5, 3, 1234) == o);
  CHECK(task_orders(5, 3, 1235) != o);
  // Two tasks have two orders: a third repeats one of them.
  const auto two = task_orders(2, 3, 7);
  CHECK(std::set<std::vector<int>>(two.begin(), two.end()).size() == 2);
  CHECK(order_text(o[0], {"a", "b", "c", "d", "e"}) == "a > b > c > d > e");
  CHECK_THROWS_AS(task_orders(5, 0, 1), Error);
}

TEST_CASE("per-example correctness: its fraction is the accuracy, recorded per evaluated row, kept by checkpoints") {
  const ClsTaskData t0 = synthetic_task("range", 20, 13, 1), t1 = synthetic_task("three", 20, 11, 3);
  const std::vector<const ClsTaskData*> all = {&t0, &t1};
  ContinualTrainer t(plain_model(), small_aria_settings(), small_train_settings(6), method_spec("finetune"), quiet());
  t.evaluate_all_tasks(all);
  t.add_task(t0.name, t0.num_labels());
  t.train(t0);
  t.evaluate_all_tasks(all);
  REQUIRE(t.correct_history().size() == 2);
  for (size_t r = 0; r < 2; ++r) {
    REQUIRE(t.correct_history()[r].size() == 2);
    CHECK(t.correct_history()[r][0].size() == 13);
    CHECK(t.correct_history()[r][1].size() == 11);
    for (size_t j = 0; j < 2; ++j) CHECK(frac(t.correct_history()[r][j]) == t.history()[r][j]);
  }
  CHECK(frac(t.correct_history()[1][0]) == t.accuracy(0, t0.test));
  const auto dir = checkpoint_temp_dir("correct_history");
  t.save(dir.string());
  const ContinualTrainer back = ContinualTrainer::load(dir.string(), quiet());
  CHECK(back.correct_history() == t.correct_history());
  std::filesystem::remove_all(dir);
}

TEST_CASE("ablations: each removes one mechanism of aria, finetune-adapters adds adapters to finetune") {
  const MethodSpec a = method_spec("aria");
  const MethodSpec ng = method_spec("aria-no-gates");
  CHECK_FALSE(ng.gated_mlp);
  CHECK_FALSE(ng.plasticity);
  CHECK_FALSE(ng.dampening);
  CHECK(ng.adapters);
  CHECK(ng.spc);
  CHECK(ng.fisher_scope == FisherScope::Mlp);
  const MethodSpec ns = method_spec("aria-no-spc");
  CHECK_FALSE(ns.spc);
  CHECK((ns.gated_mlp && ns.adapters && ns.plasticity && ns.dampening && ns.asymmetric_lr));
  const MethodSpec na = method_spec("aria-no-adapters");
  CHECK_FALSE(na.adapters);
  CHECK((na.gated_mlp && na.spc && na.dampening));
  const MethodSpec nd = method_spec("aria-no-dampening");
  CHECK_FALSE(nd.dampening);
  CHECK((nd.gated_mlp && nd.spc && nd.adapters && nd.plasticity));
  const MethodSpec fa = method_spec("finetune-adapters");
  CHECK(fa.adapters);
  CHECK_FALSE(fa.freeze_trunk);
  CHECK_FALSE(fa.spc);
  CHECK(a.gated_mlp);
  for (const char* n : {"aria-no-gates", "aria-no-spc", "aria-no-adapters", "aria-no-dampening", "finetune-adapters"})
    CHECK(std::find(method_names().begin(), method_names().end(), n) != method_names().end());
  CHECK(in_fisher_scope("h.0.mlp.c_fc.weight", FisherScope::Mlp));
  CHECK_FALSE(in_fisher_scope("h.0.attn.c_attn.weight", FisherScope::Mlp));
}

TEST_CASE("aria-no-gates consolidates the MLP weights only, and its SPC penalty holds them") {
  const ClsTaskData t0 = synthetic_task("range", 24, 8, 1);
  ContinualTrainer t(plain_model(), small_aria_settings(), small_train_settings(4), method_spec("aria-no-gates"), quiet());
  const int id = t.add_task(t0.name, t0.num_labels());
  t.train(t0);
  t.consolidate_task(id, t0);
  const auto st = t.spc().state_tensors();
  REQUIRE_FALSE(st.empty());
  int per_parameter = 0;
  for (const auto& [name, tensor] : st) {
    if (name == "spc.C") continue;  // the penalty's constant term, not a parameter's buffer
    CAPTURE(name);
    CHECK(name.find(".mlp.") != std::string::npos);
    ++per_parameter;
  }
  CHECK(per_parameter > 0);
  CHECK(std::abs(t.spc().penalty(t.model(), 1.0)) < 1e-8);  // at the anchors (up to rounding)
}

TEST_CASE("gate diagnosis: a layer with 95% of its tokens at one end has collapsed, a bimodal one has not") {
  GateReport g;
  GateHistogram slow, bimodal, fast;
  slow.layer = 0, bimodal.layer = 1, fast.layer = 2;
  slow.counts.assign(20, 0), bimodal.counts.assign(20, 0), fast.counts.assign(20, 0);
  slow.counts[0] = 96, slow.counts[10] = 4;          // 96% below 0.05
  bimodal.counts[0] = 50, bimodal.counts[19] = 50;   // both ends: routing, not collapse
  fast.counts[19] = 97, fast.counts[5] = 3;          // 97% at or above 0.95
  for (GateHistogram* h : {&slow, &bimodal, &fast}) h->tokens = 100;
  g.layers = {slow, bimodal, fast};
  GateDiagnosis d = diagnose_gates(g);
  REQUIRE(d.layers.size() == 3);
  CHECK(d.layers[0].collapsed == "slow");
  CHECK(d.layers[0].low_share == doctest::Approx(0.96));
  CHECK(d.layers[1].collapsed.empty());
  CHECK(d.layers[2].collapsed == "fast");
  CHECK(d.layers[2].high_share == doctest::Approx(0.97));
  CHECK_FALSE(d.collapsed);  // one layer still routes
  g.layers = {slow, fast};
  CHECK(diagnose_gates(g).collapsed);
  CHECK(gate_diagnosis_to_json(diagnose_gates(g))["layers"][0]["collapsed"] == "slow");
  CHECK_FALSE(diagnose_gates(g, 0.99).collapsed);
}

TEST_CASE("head-only probe: the head fits frozen features, reproducibly, without touching the model") {
  // The random tiny trunk's features do not generalise on "range" (adapters-only reaches about 0.43 on its
  // test split), so the probe is checked on the examples it trains on: Adam on the head alone fits them.
  const ClsTaskData t = synthetic_task("range", 64, 40, 5);
  const ContinualModel m = plain_model();
  const ContinualModel before = m;
  HeadProbeSettings s;
  s.steps = 200;
  s.batch_size = 8;
  s.lr = 0.1;
  s.seed = 3;
  const double fit = head_only_accuracy(m, t.name, t.num_labels(), t.train, t.train, s);
  CHECK(fit >= 0.7);  // 0.77 when written
  CHECK(head_only_accuracy(m, t.name, t.num_labels(), t.train, t.train, s) == fit);  // same trunk, same head
  check_bitwise_equal(before, m);
  s.steps = 1;
  s.lr = 1e-6;  // barely trained: the probe draw's accuracy
  CHECK(head_only_accuracy(m, t.name, t.num_labels(), t.train, t.train, s) < fit - 0.1);
  CHECK_THROWS_AS(head_only_accuracy(m, t.name, t.num_labels(), {}, t.test, s), Error);
  // The transfer measure of a run: mean over positions j > 0 of trained - initial.
  MethodRun r;
  r.head_initial = {std::nan(""), 0.5, 0.6};
  r.head_trained = {std::nan(""), 0.7, 0.5};
  CHECK(head_transfer(r) == doctest::Approx((0.2 - 0.1) / 2));
  r.head_trained.clear();
  CHECK(std::isnan(head_transfer(r)));
}
