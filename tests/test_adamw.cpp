// AdamW with parameter groups: one step and three steps against a host computation in double,
// grad_scale, skipped parameters, the group table, GPT-2's decay rule, state round trip, errors;
// clipping on the device (step_clipped) against step() with the host-measured clip scale, the skipped
// update of a non-finite norm, and (skipped without a GPU) the same on CUDA against the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/model/gpt2.h"
#include "aria/train/optim/adamw.h"
#include "aria/train/optim/grad_clip.h"
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

TEST_CASE("adamw: adopt_masters carries float32 masters of bfloat16 parameters into a new optimizer") {
  // CPU-runnable: the masters enter through load_state (a master may come without moments); no step.
  Tensor w = Tensor::zeros({3}, DType::BF16), b = Tensor::zeros({2}, DType::BF16), f = param({1.0}, {1});
  for (Tensor* t : {&w, &b}) t->set_requires_grad(true);
  const Tensor mw = Tensor::from_vector({0.1, 0.2, 0.3}, {3}, DType::F32);
  const Tensor mb = Tensor::from_vector({-1.0, 2.0}, {2}, DType::F32);
  AdamW first({ParamGroup{"all", {{"w", w}, {"b", b}, {"f", f}}, 0.1}});
  first.load_state({{"master.w", mw}, {"master.b", mb}}, 0);
  REQUIRE(first.master("w").defined());
  CHECK(first.master("w").to_doubles() == mw.to_doubles());
  CHECK_FALSE(first.master("f").defined());  // float32 parameters have none

  // The next phase: w stays, b leaves (a frozen head keeps its rounded value), a new b of the same
  // name is a different tensor and starts from its own value.
  Tensor b2 = Tensor::zeros({2}, DType::BF16);
  b2.set_requires_grad(true);
  AdamW second({ParamGroup{"all", {{"w", w}, {"b", b2}, {"f", f}}, 0.1}});
  second.adopt_masters(first);
  REQUIRE(second.master("w").defined());
  CHECK(second.master("w").to_doubles() == mw.to_doubles());
  CHECK_FALSE(second.master("b").defined());
  CHECK_FALSE(second.master("f").defined());

  // An adopted master is state before any update: saved alone and restored alone.
  std::map<std::string, Tensor> saved;
  for (auto& [k, t] : second.state_tensors()) saved[k] = t.clone();
  CHECK(saved.size() == 1);
  REQUIRE(saved.count("master.w"));
  AdamW third({ParamGroup{"all", {{"w", w}, {"b", b2}, {"f", f}}, 0.1}});
  third.load_state(saved, 0);
  REQUIRE(third.master("w").defined());
  CHECK(third.master("w").to_doubles() == mw.to_doubles());
  CHECK(third.state_tensors().size() == 1);
  // A master of a float32 parameter is ignored, one of the wrong shape refused.
  CHECK_THROWS_WITH_AS(third.load_state({{"master.w", Tensor::zeros({4})}}, 0),
                       doctest::Contains("'master.w' has shape [4]"), aria::Error);
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

// ---- clipping on the device ------------------------------------------------------------------------

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

// Parameters a [2, 3], b [3], c [4] (two_groups' names) of normal values in dtype dt on dev, leaves.
Named three_params(uint64_t seed, DType dt = DType::F64, Device dev = Device::cpu()) {
  Named out;
  const std::pair<const char*, Shape> specs[] = {{"a", {2, 3}}, {"b", {3}}, {"c", {4}}};
  for (const auto& [name, shape] : specs) {
    Tensor t = testing::randn(shape, ++seed, 1.0, dt).to(dev);
    t.set_requires_grad(true);
    out.emplace_back(name, t);
  }
  return out;
}

// The same values as `named`, in dtype dt on dev (fresh leaves).
Named copy_params(const Named& named, DType dt, Device dev) {
  Named out;
  for (const auto& [name, p] : named) {
    Tensor t = p.detach().to(dt).to(dev);
    t.set_requires_grad(true);
    out.emplace_back(name, t);
  }
  return out;
}

AdamW optimizer_of(const Named& n) { return AdamW(two_groups(n[0].second, n[1].second, n[2].second)); }

// Fresh normal gradients of scale `scale` (float64 values) for each parameter of every list, the
// same values everywhere (converted to each parameter's dtype and device); bf16: values rounded to
// bfloat16 first, so that float32 and bfloat16 parameters see identical gradients.
void set_same_grads(const std::vector<Named*>& lists, uint64_t seed, double scale, bool bf16_values = false) {
  for (size_t i = 0; i < lists[0]->size(); ++i) {
    Tensor g = testing::randn((*lists[0])[i].second.shape(), seed + i, scale, DType::F64);
    if (bf16_values) g = testing::round_bf16(g);
    for (Named* l : lists) {
      const Tensor& p = (*l)[i].second;
      p.set_grad(g.to(p.dtype()).to(p.device()));
    }
  }
}

std::vector<double> values_of(const Named& n) {
  std::vector<double> out;
  for (const auto& [name, p] : n)
    for (double x : p.to_doubles()) out.push_back(x);
  return out;
}

// Every optimizer state tensor's values (moments, masters), by key.
std::map<std::string, std::vector<double>> state_values(const AdamW& opt) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [k, t] : opt.state_tensors()) out[k] = t.to_doubles();
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("adamw: step_clipped equals step with the host-measured clip scale, norm above and below max_norm") {
  for (double max_norm : {1.0, 0.0}) {  // 0: no clipping
    CAPTURE(max_norm);
    Named host = three_params(10), dev = copy_params(host, DType::F64, Device::cpu());
    AdamW oh = optimizer_of(host), od = optimizer_of(dev);
    int above = 0, below = 0;
    const double scales[] = {1.0, 0.05, 2.0, 0.1};  // norms about 3.6, 0.18, 7, 0.36 (13 normal values)
    for (int s = 0; s < 4; ++s) {
      set_same_grads({&host, &dev}, 100 + 10 * s, scales[s]);
      const double norm = global_grad_norm(host);
      (norm > 1.0 ? above : below)++;
      oh.step(0.5, clip_scale(norm, max_norm));
      const Tensor sumsq = grad_sum_squares_on_device(dev);
      CHECK(sumsq.dtype() == DType::F64);
      CHECK(sumsq.numel() == 1);
      od.step_clipped(0.5, sumsq, max_norm);
      CHECK(grad_norm_from(sumsq, dev) == norm);
    }
    CHECK(above >= 2);
    CHECK(below >= 2);
    // The same float multiplier reaches the kernel both ways: equal bit for bit.
    CHECK(values_of(dev) == values_of(host));
    CHECK(state_values(od) == state_values(oh));
    CHECK(od.steps() == oh.steps());
  }
}

TEST_CASE("adamw: step_clipped with grad_scale 1/k and max norm m k clips the mean of k accumulated grads") {
  // What the LM trainer does: the grads hold a sum over k micro-batches; the old host path clipped
  // their mean (norm / k) at m and scaled by 1/k.
  for (int k : {4, 3}) {
    CAPTURE(k);
    const double m = 0.5;
    Named host = three_params(20), dev = copy_params(host, DType::F64, Device::cpu());
    AdamW oh = optimizer_of(host), od = optimizer_of(dev);
    int clipped = 0;
    const double scales[] = {3.0, 0.02, 1.0};
    for (int s = 0; s < 3; ++s) {
      set_same_grads({&host, &dev}, 300 + 10 * s, scales[s]);
      const double mean_norm = global_grad_norm(host) / k;
      clipped += mean_norm > m;
      oh.step(1.0, clip_scale(mean_norm, m) / k);
      od.step_clipped(1.0, grad_sum_squares_on_device(dev), m * k, 1.0 / k);
    }
    CHECK(clipped >= 1);
    CHECK(clipped <= 2);
    // k = 4: every factor is exact in binary, equal bit for bit. k = 3: float(1/3) * clip and
    // float(clip / 3) may differ in the last bit of the float multiplier.
    if (k == 4) CHECK(values_of(dev) == values_of(host));
    check_close(values_of(dev), values_of(host), 1e-7, "mean-clipped params");
  }
}

TEST_CASE("adamw: a non-finite gradient norm makes step_clipped skip every update, and grad_norm_from names the tensor") {
  for (double bad : {double(NAN), double(INFINITY)}) {
    CAPTURE(bad);
    Named n = three_params(30);
    AdamW opt = optimizer_of(n);
    set_same_grads({&n}, 400, 1.0);
    opt.step_clipped(1.0, grad_sum_squares_on_device(n), 1.0);  // moments exist from here
    const auto params_before = values_of(n);
    const auto state_before = state_values(opt);
    set_same_grads({&n}, 500, 1.0);
    std::vector<double> gc = n[2].second.grad().to_doubles();
    gc[2] = bad;
    n[2].second.set_grad(Tensor::from_vector(gc, {4}, DType::F64));
    const Tensor sumsq = grad_sum_squares_on_device(n);
    opt.step_clipped(1.0, sumsq, 1.0);
    CHECK(values_of(n) == params_before);  // a and b have finite grads: skipped too
    CHECK(state_values(opt) == state_before);
    CHECK(opt.steps() == 2);  // documented: the host cannot know, the step still counts
    const std::string err = error_of([&] { grad_norm_from(sumsq, n); });
    CHECK(err.find("non-finite gradient norm") != std::string::npos);
    CHECK(err.find("NaN/inf in the gradients of 1 tensors: c") != std::string::npos);
    CHECK(err == error_of([&] { global_grad_norm(n); }));  // the message the trainers always gave
  }
}

TEST_CASE("adamw: device-side norm edge cases: no gradient, wrong sumsq") {
  Named n = three_params(40);
  AdamW opt = optimizer_of(n);
  const auto before = values_of(n);
  const Tensor none = grad_sum_squares_on_device(n);
  CHECK(!none.defined());
  CHECK(grad_norm_from(none, n) == 0.0);
  opt.step_clipped(1.0, none, 1.0);  // nothing has a grad: nothing moves
  CHECK(values_of(n) == before);
  set_same_grads({&n}, 600, 1.0);
  CHECK_THROWS_WITH_AS(opt.step_clipped(1.0, Tensor::zeros({1}, DType::F32), 1.0),
                       doctest::Contains("grad_sumsq must be a float64 [1] tensor"), Error);
  CHECK_THROWS_WITH_AS(opt.step_clipped(1.0, Tensor::zeros({1}, DType::F64), double(INFINITY)),
                       doctest::Contains("max norm is not finite"), Error);
}

TEST_CASE("CUDA adamw: step_clipped (float32, bfloat16 with float32 masters) matches the CPU, and a NaN skips") {
  if (!testing::gpu_or_skip("CUDA AdamW step_clipped")) return;
  const Device gpu = Device::cuda(0);
  for (DType dt : {DType::F32, DType::BF16}) {
    for (double max_norm : {1.0, 100.0}) {  // clipped at every step / never
      CAPTURE(dtype_name(dt));
      CAPTURE(max_norm);
      // bf16-representable starting values and gradients: the float32 CPU run sees what the GPU sees.
      Named base = three_params(50, DType::F32);
      for (auto& [name, p] : base) {
        p = testing::round_bf16(p.detach());
        p.set_requires_grad(true);
      }
      Named cpu = copy_params(base, DType::F32, Device::cpu()), dev = copy_params(base, dt, gpu);
      AdamW oc = optimizer_of(cpu), og = optimizer_of(dev);
      for (int s = 0; s < 3; ++s) {
        set_same_grads({&cpu, &dev}, 700 + 10 * s, 1.0, true);
        const Tensor sc = grad_sum_squares_on_device(cpu), sg = grad_sum_squares_on_device(dev);
        CHECK(sg.device() == gpu);
        oc.step_clipped(1.0, sc, max_norm);
        og.step_clipped(1.0, sg, max_norm);
        const double nc = grad_norm_from(sc, cpu), ng = grad_norm_from(sg, dev);
        CHECK(ng == doctest::Approx(nc).epsilon(1e-12));
        CHECK((nc > max_norm) == (max_norm == 1.0));
      }
      for (size_t i = 0; i < cpu.size(); ++i) {
        const std::string& name = cpu[i].first;
        CAPTURE(name);
        const Tensor full = dt == DType::BF16 ? og.master(name) : dev[i].second;
        check_close(full.to_doubles(), cpu[i].second.to_doubles(), 1e-5, "GPU vs CPU");
        if (dt == DType::BF16) CHECK(testing::bit_equal(dev[i].second, full.to(DType::BF16)));
      }
      // A NaN in one GPU gradient: nothing of the step moves (params, masters, moments).
      const auto params_before = values_of(dev);
      const auto state_before = state_values(og);
      set_same_grads({&dev}, 800, 1.0, true);
      std::vector<double> gb = dev[1].second.grad().to_doubles();
      gb[0] = NAN;
      dev[1].second.set_grad(Tensor::from_vector(gb, {3}, DType::F64).to(dt).to(gpu));
      const Tensor sg = grad_sum_squares_on_device(dev);
      og.step_clipped(1.0, sg, max_norm);
      CHECK(values_of(dev) == params_before);
      CHECK(state_values(og) == state_before);
      CHECK_THROWS_WITH_AS(grad_norm_from(sg, dev), doctest::Contains("NaN/inf in the gradients of 1 tensors: b"),
                           Error);
    }
  }
  // Gradients on two devices: no single device scalar to clip with.
  Named mixed = copy_params(three_params(60), DType::F32, Device::cpu());
  mixed[2].second = mixed[2].second.detach().to(gpu);
  mixed[2].second.set_requires_grad(true);
  set_same_grads({&mixed}, 900, 1.0);
  CHECK_THROWS_WITH_AS(grad_sum_squares_on_device(mixed), doctest::Contains("the gradients live on 2 devices"), Error);
}
