// AdamW with parameter groups: one step and three steps against a host computation in double,
// grad_scale, skipped parameters, the group table, GPT-2's decay rule, state round trip, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "model/gpt2.h"
#include "train/adamw.h"
#include "tests/support/test_util.h"

using namespace aria;

namespace {

// Host reference of one AdamW step for one tensor (torch.optim.AdamW's arithmetic).
struct RefState {
  std::vector<double> p, m, v;
  int64_t t = 0;
};

void ref_step(RefState& s, const std::vector<double>& grad, const ParamGroup& g, double lr_mult = 1,
              double grad_scale = 1) {
  if (s.m.empty()) s.m.assign(s.p.size(), 0.0), s.v.assign(s.p.size(), 0.0);
  ++s.t;
  const double lr = g.lr * lr_mult;
  const double bc1 = 1 - std::pow(g.beta1, double(s.t)), bc2 = 1 - std::pow(g.beta2, double(s.t));
  for (size_t i = 0; i < s.p.size(); ++i) {
    const double gi = grad[i] * grad_scale;
    s.m[i] = g.beta1 * s.m[i] + (1 - g.beta1) * gi;
    s.v[i] = g.beta2 * s.v[i] + (1 - g.beta2) * gi * gi;
    const double mhat = s.m[i] / bc1, vhat = s.v[i] / bc2;
    s.p[i] -= lr * (mhat / (std::sqrt(vhat) + g.eps) + g.weight_decay * s.p[i]);
  }
}

Tensor param(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape, DType::F64);
  t.set_requires_grad(true);
  return t;
}

void set_grad(const Tensor& p, const std::vector<double>& g) { p.set_grad(Tensor::from_vector(g, p.shape(), DType::F64)); }

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(what, "[", i, "]: got ", got[i], " want ", want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}

// Two groups with different lr, weight decay, betas and eps.
std::vector<ParamGroup> two_groups(Tensor a, Tensor b, Tensor c) {
  ParamGroup fast{"fast", {{"a", a}, {"b", b}}, 0.1};
  fast.weight_decay = 0.05;
  ParamGroup slow{"slow", {{"c", c}}, 0.01};
  slow.beta1 = 0.8;
  slow.beta2 = 0.99;
  slow.eps = 1e-3;
  slow.weight_decay = 0.0;
  return {fast, slow};
}

}  // namespace

TEST_CASE("adamw: one step of two groups matches a host computation") {
  std::vector<double> av{0.5, -1.0, 2.0, 0.25, -0.75, 1.5}, bv{0.1, -0.2, 0.3}, cv{1.0, -2.0, 3.0, -4.0};
  std::vector<double> ag{0.3, -0.1, 0.02, -2.0, 0.7, 0.0}, bg{1.0, -1.0, 0.5}, cg{0.01, -0.5, 2.0, 0.0};
  Tensor a = param(av, {2, 3}), b = param(bv, {3}), c = param(cv, {4});
  set_grad(a, ag), set_grad(b, bg), set_grad(c, cg);
  auto groups = two_groups(a, b, c);
  AdamW opt(groups);
  opt.step(0.5);  // lr multiplier applies to every group
  CHECK(opt.steps() == 1);
  RefState ra{av}, rb{bv}, rc{cv};
  ref_step(ra, ag, groups[0], 0.5), ref_step(rb, bg, groups[0], 0.5), ref_step(rc, cg, groups[1], 0.5);
  // Hyper-parameters travel to the kernel as float: relative 1e-6.
  check_close(a.to_doubles(), ra.p, 1e-6, "a");
  check_close(b.to_doubles(), rb.p, 1e-6, "b");
  check_close(c.to_doubles(), rc.p, 1e-6, "c");
  // The weight decay of "fast" really acted: a parameter with zero grad still shrinks there.
  CHECK(a.to_doubles()[5] < av[5]);
  CHECK(c.to_doubles()[3] == doctest::Approx(cv[3]));
}

TEST_CASE("adamw: bias correction over three steps") {
  std::vector<double> av{0.5, -1.0, 2.0}, cv{1.0, -2.0};
  Tensor a = param(av, {3}), b = param({0.0}, {1}), c = param(cv, {2});
  auto groups = two_groups(a, b, c);
  AdamW opt(groups);
  RefState ra{av}, rc{cv};
  const std::vector<std::vector<double>> ags{{0.3, -0.1, 0.02}, {-0.5, 0.4, 0.1}, {0.2, 0.2, -0.3}};
  const std::vector<std::vector<double>> cgs{{1.0, -0.5}, {0.1, 0.3}, {-2.0, 0.7}};
  for (int s = 0; s < 3; ++s) {
    opt.zero_grad();
    set_grad(a, ags[size_t(s)]), set_grad(c, cgs[size_t(s)]);
    opt.step();
    ref_step(ra, ags[size_t(s)], groups[0]), ref_step(rc, cgs[size_t(s)], groups[1]);
  }
  CHECK(opt.steps() == 3);
  check_close(a.to_doubles(), ra.p, 1e-6, "a");
  check_close(c.to_doubles(), rc.p, 1e-6, "c");
  // b never had a grad: untouched (no weight decay either) and no state.
  CHECK(b.to_doubles()[0] == 0.0);
  for (auto& [k, t] : opt.state_tensors()) CHECK(k.find(".b") == std::string::npos);
}

TEST_CASE("adamw: grad_scale 0.5 equals halving the gradients") {
  std::vector<double> pv{0.5, -1.0, 2.0, 0.25}, g1{0.3, -0.1, 0.02, -2.0}, g2{-0.4, 0.8, 0.0, 1.0};
  Tensor p = param(pv, {4}), q = param(pv, {4});
  ParamGroup gp{"p", {{"p", p}}, 0.1}, gq{"q", {{"q", q}}, 0.1};
  gp.weight_decay = gq.weight_decay = 0.1;
  gp.eps = gq.eps = 1e-2;  // eps matters, so a wrong scale would show
  AdamW op({gp}), oq({gq});
  for (const auto& g : {g1, g2}) {
    std::vector<double> half;
    for (double x : g) half.push_back(0.5 * x);
    set_grad(p, g), set_grad(q, half);
    op.step(1.0, 0.5);
    oq.step(1.0, 1.0);
  }
  check_close(p.to_doubles(), q.to_doubles(), 1e-12, "p vs q");
}

TEST_CASE("adamw: parameters without a grad are skipped and get their own step count") {
  std::vector<double> pv{1.0, 2.0}, qv{-1.0, 0.5}, g{0.3, -0.2};
  Tensor p = param(pv, {2}), q = param(qv, {2});
  ParamGroup grp{"all", {{"p", p}, {"q", q}}, 0.1};
  grp.weight_decay = 0.1;
  AdamW opt({grp});
  RefState rp{pv}, rq{qv};
  set_grad(p, g);
  opt.step();  // q has no grad: not even decayed
  ref_step(rp, g, grp);
  CHECK(q.to_doubles() == qv);
  opt.zero_grad();
  CHECK(!p.grad().defined());
  set_grad(p, g), set_grad(q, g);
  opt.step();
  ref_step(rp, g, grp), ref_step(rq, g, grp);  // q's first update: bias correction of step 1
  check_close(p.to_doubles(), rp.p, 1e-6, "p");
  check_close(q.to_doubles(), rq.p, 1e-6, "q");
  std::set<std::string> keys;
  for (auto& [k, t] : opt.state_tensors()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"m.p", "v.p", "m.q", "v.q", "step.q"});
}

TEST_CASE("adamw: state round trip continues exactly") {
  std::vector<double> pv{1.0, 2.0, -3.0}, g1{0.3, -0.2, 0.1}, g2{-0.1, 0.5, 0.2}, g3{0.2, 0.2, -0.6};
  Tensor p = param(pv, {3}), q = param({0.5}, {1});
  ParamGroup grp{"all", {{"p", p}, {"q", q}}, 0.05};
  grp.weight_decay = 0.01;
  AdamW a({grp});
  set_grad(p, g1), a.step();
  set_grad(p, g2), set_grad(q, {1.0}), a.step();
  std::map<std::string, Tensor> saved;
  for (auto& [k, t] : a.state_tensors()) saved[k] = t.clone();
  saved["h.0.other"] = Tensor::zeros({2});  // unrelated checkpoint entries are ignored

  Tensor p2 = param(p.to_doubles(), {3}), q2 = param(q.to_doubles(), {1});
  ParamGroup grp2{"all", {{"p", p2}, {"q", q2}}, 0.05};
  grp2.weight_decay = 0.01;
  AdamW b({grp2});
  b.load_state(saved, a.steps());
  CHECK(b.steps() == 2);
  set_grad(p, g3), set_grad(q, {-1.0}), a.step();
  set_grad(p2, g3), set_grad(q2, {-1.0}), b.step();
  CHECK(p.to_doubles() == p2.to_doubles());
  CHECK(q.to_doubles() == q2.to_doubles());

  std::map<std::string, Tensor> bad = saved;
  bad["m.nope"] = Tensor::zeros({3}, DType::F64);
  CHECK_THROWS_WITH_AS(b.load_state(bad, 2), doctest::Contains("'m.nope' names a parameter that is in no group"),
                       aria::Error);
  bad = saved;
  bad["m.p"] = Tensor::zeros({4}, DType::F64);
  CHECK_THROWS_WITH_AS(b.load_state(bad, 2), doctest::Contains("'m.p' has shape [4]"), aria::Error);
  bad = saved;
  bad.erase("v.q");
  CHECK_THROWS_WITH_AS(b.load_state(bad, 2), doctest::Contains("'v.q' missing"), aria::Error);
}

TEST_CASE("adamw: describe lists every parameter in exactly one group") {
  Tensor a = param({1, 2, 3, 4, 5, 6}, {2, 3}), b = param({1, 2, 3}, {3}), c = param({1, 2}, {2});
  AdamW opt(two_groups(a, b, c));
  const std::string table = opt.describe();
  MESSAGE(table);
  CHECK(table.find("fast") != std::string::npos);
  CHECK(table.find("slow") != std::string::npos);
  CHECK(table.find("1.000e-01") != std::string::npos);  // fast lr
  CHECK(table.find("1.000e-02") != std::string::npos);  // slow lr
  CHECK(table.find("  fast: a b\n") != std::string::npos);
  CHECK(table.find("  slow: c\n") != std::string::npos);
}

TEST_CASE("adamw: default_decay_groups follows GPT-2's convention") {
  Gpt2Model m = gpt2_random(testing::tiny_gpt2_config(), 7);
  const auto named = m.named_parameters();
  auto groups = default_decay_groups(named, 3e-4, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "decay");
  CHECK(groups[1].name == "no_decay");
  CHECK(groups[0].weight_decay == 0.1);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[0].lr == 3e-4);
  CHECK(groups[1].lr == 3e-4);
  std::set<std::string> decay, no_decay;
  for (auto& [n, t] : groups[0].params) decay.insert(n);
  for (auto& [n, t] : groups[1].params) no_decay.insert(n);
  CHECK(decay.size() + no_decay.size() == named.size());
  for (auto& [n, t] : named) {
    INFO(n);
    CHECK(decay.count(n) + no_decay.count(n) == 1);
    const bool is_bias = n.size() > 5 && n.substr(n.size() - 5) == ".bias";
    const bool is_ln = n.find("ln_") != std::string::npos;
    CHECK(decay.count(n) == size_t(!is_bias && !is_ln));
  }
  CHECK(decay == std::set<std::string>{"wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.0.attn.c_proj.weight",
                                       "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight", "h.1.attn.c_attn.weight",
                                       "h.1.attn.c_proj.weight", "h.1.mlp.c_fc.weight", "h.1.mlp.c_proj.weight"});
  m.set_requires_grad(true);
  AdamW opt(groups);  // valid as built
  const std::string table = opt.describe();
  for (auto& [n, t] : named) {
    size_t hits = 0;
    for (size_t pos = table.find(" " + n + " "); pos != std::string::npos; pos = table.find(" " + n + " ", pos + 1))
      ++hits;
    for (size_t pos = table.find(" " + n + "\n"); pos != std::string::npos; pos = table.find(" " + n + "\n", pos + 1))
      ++hits;
    CHECK_MESSAGE(hits == 1, n, " listed ", hits, " times");
  }
}

TEST_CASE("adamw: invalid groups are rejected naming group and parameter") {
  Tensor a = param({1, 2}, {2}), b = param({3}, {1});
  auto make = [](std::string name, std::vector<std::pair<std::string, Tensor>> ps, double lr) {
    return ParamGroup{std::move(name), std::move(ps), lr};
  };
  CHECK_THROWS_WITH_AS(AdamW({make("g1", {{"a", a}}, 0.1), make("g2", {{"a", b}}, 0.1)}),
                       doctest::Contains("parameter 'a' is in group 'g1' and in group 'g2'"), aria::Error);
  CHECK_THROWS_WITH_AS(AdamW({make("g1", {{"a", a}}, 0.1), make("g2", {{"a2", a}}, 0.1)}),
                       doctest::Contains("one tensor is in group 'g1' as 'a' and in group 'g2' as 'a2'"), aria::Error);
  CHECK_THROWS_WITH_AS(AdamW({make("g1", {{"a", a}}, -0.1)}), doctest::Contains("group 'g1': learning rate"),
                       aria::Error);
  ParamGroup wd = make("wd", {{"a", a}}, 0.1);
  wd.weight_decay = -1;
  CHECK_THROWS_WITH_AS(AdamW({wd}), doctest::Contains("group 'wd': weight decay"), aria::Error);
  ParamGroup b1 = make("b1", {{"a", a}}, 0.1);
  b1.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(AdamW({b1}), doctest::Contains("group 'b1': beta1 must be in [0, 1)"), aria::Error);
  ParamGroup b2 = make("b2", {{"a", a}}, 0.1);
  b2.beta2 = -0.1;
  CHECK_THROWS_WITH_AS(AdamW({b2}), doctest::Contains("group 'b2': beta2"), aria::Error);
  Tensor ids = Tensor::from_ints({1, 2}, {2});
  CHECK_THROWS_WITH_AS(AdamW({make("ints", {{"ids", ids}}, 0.1)}),
                       doctest::Contains("group 'ints': parameter 'ids' is int32"), aria::Error);
  Tensor view = a.reshape({2, 1});  // recorded: not a leaf
  CHECK_THROWS_WITH_AS(AdamW({make("views", {{"view", view}}, 0.1)}),
                       doctest::Contains("group 'views': parameter 'view' is not a leaf"), aria::Error);
}
