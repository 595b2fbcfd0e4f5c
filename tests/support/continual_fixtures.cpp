#include "tests/support/continual_fixtures.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>

#include "tests/support/test_util.h"

namespace aria::testing {

ContinualModel plain_model() {
  ContinualModel m;
  m.gpt = gpt2_random(tiny_gpt2_config(), 21);
  return m;
}

ClsTaskData synthetic_task(const std::string& kind, int n_train, int n_test, uint64_t seed) {
  ClsTaskData t;
  t.name = kind;
  const int labels = kind == "three" ? 3 : 2;
  for (int l = 0; l < labels; ++l) t.label_names.push_back("l" + std::to_string(l));
  Rng r(seed);
  auto token = [&](int label) -> int32_t {
    if (kind == "range") return int32_t(label * 32 + 1 + r.below(31));
    if (kind == "parity") return int32_t(2 + 2 * r.below(30) + (label == 0 ? 1 : 0));
    return int32_t(1 + 21 * label + r.below(21));
  };
  auto make = [&](int n) {
    std::vector<ClsExample> v;
    for (int i = 0; i < n; ++i) {
      ClsExample e;
      e.label = int32_t(r.below(uint64_t(labels)));
      const int len = 3 + int(r.below(10));
      for (int k = 0; k < len; ++k) e.ids.push_back(token(e.label));
      v.push_back(e);
    }
    return v;
  };
  t.train = make(n_train);
  t.validation = make(n_test);
  t.test = make(n_test);
  return t;
}

AriaSettings small_aria_settings() {
  AriaSettings a;
  a.plasticity_lambda = 0.05;
  a.warmup_steps = 8;
  a.adapter_dim = 4;
  a.spc_lambda = 50.0;
  a.consolidation_steps_per_task = 4;
  return a;
}

TrainSettings small_train_settings(int64_t steps) {
  TrainSettings t;
  t.lr = 5e-3;
  t.batch_size = 8;
  t.steps_per_task = steps;
  t.seed = 17;
  return t;
}

TrainerOptions quiet() {
  TrainerOptions o;
  o.verbose = false;
  return o;
}

std::filesystem::path checkpoint_temp_dir(const std::string& tag) {
  return fresh_temp_path("aria_ct_" + tag + "_" + std::to_string(::getpid()));
}

void check_bitwise_equal(const ContinualModel& a, const ContinualModel& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    REQUIRE(pa[i].first == pb[i].first);
    const Tensor& x = pa[i].second;
    const Tensor& y = pb[i].second;
    REQUIRE(x.shape() == y.shape());
    REQUIRE(x.dtype() == y.dtype());
    CHECK(std::memcmp(x.contiguous().raw_data(), y.contiguous().raw_data(), x.nbytes()) == 0);
  }
}


std::vector<std::function<void(ContinualTrainer&)>> Run::actions(const std::string& method) {
  std::vector<std::function<void(ContinualTrainer&)>> a;
  a.push_back([this](ContinualTrainer& tr) { tr.evaluate_all_tasks(all); });
  if (method == "multitask") {
    a.push_back([this](ContinualTrainer& tr) { tr.train_joint_steps(all, 4); });
    a.push_back([this](ContinualTrainer& tr) { tr.train_joint(all); });  // the rest of the joint phase
    a.push_back([this](ContinualTrainer& tr) { tr.evaluate_all_tasks(all); });
    return a;
  }
  for (const ClsTaskData* t : all) {
    a.push_back([t](ContinualTrainer& tr) { tr.add_task(t->name, t->num_labels()); });
    a.push_back([t](ContinualTrainer& tr) { tr.train_steps(*t, 3); });
    a.push_back([t](ContinualTrainer& tr) { tr.train(*t); });
    a.push_back([t](ContinualTrainer& tr) { tr.consolidate_task(tr.task_id(t->name), *t); });
    a.push_back([this](ContinualTrainer& tr) { tr.evaluate_all_tasks(all); });
  }
  return a;
}

void check_same_state(const ContinualTrainer& a, const ContinualTrainer& b, bool b_stepped) {
  CHECK(a.optimizer_steps() == b.optimizer_steps());
  CHECK(a.bf16() == b.bf16());
  auto ma = a.model().named_parameters(), mb = b.model().named_parameters();
  REQUIRE(ma.size() == mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    INFO(ma[i].first);
    CHECK(ma[i].first == mb[i].first);
    CHECK(ma[i].second.shape() == mb[i].second.shape());
    CHECK(bit_equal(ma[i].second, mb[i].second));  // dtype, count and bytes
  }
  CHECK(a.history() == b.history());
  if (b_stepped) {
    CHECK(a.last_step().loss == b.last_step().loss);
    CHECK(a.last_step().grad_norm == b.last_step().grad_norm);
  }
  REQUIRE((a.optimizer() == nullptr) == (b.optimizer() == nullptr));
  if (a.optimizer()) {
    auto sa = a.optimizer()->state_tensors(), sb = b.optimizer()->state_tensors();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      INFO(sa[i].first);
      CHECK(sa[i].first == sb[i].first);
      CHECK(bit_equal(sa[i].second, sb[i].second));
    }
  }
  auto pa = a.spc().state_tensors(), pb = b.spc().state_tensors();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    CHECK(pa[i].first == pb[i].first);
    CHECK(bit_equal(pa[i].second, pb[i].second));
  }
}

}  // namespace aria::testing
