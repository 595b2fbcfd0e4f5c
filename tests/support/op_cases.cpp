#include "tests/support/op_cases.h"

#include <cmath>
#include <sstream>

#include "aria/core/autograd.h"
#include "aria/core/rng.h"

namespace aria::testing {

std::vector<OpCase>& op_case_registry() {
  static std::vector<OpCase> cases;
  return cases;
}

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed) {
  Rng rng(seed);
  std::vector<Tensor> out;
  for (const InputSpec& s : c.inputs) {
    int64_t n = shape_numel(s.shape);
    if (s.kind == InputSpec::Ids) {
      std::vector<int32_t> ids(static_cast<size_t>(n));
      for (auto& v : ids) v = int32_t(rng.below(uint64_t(s.id_range)));
      if (s.ignore && n > 1) ids[size_t(rng.below(uint64_t(n)))] = -100;
      out.push_back(Tensor::from_ints(ids, s.shape, device));
      continue;
    }
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) x = s.kind == InputSpec::Positive ? 0.5 + rng.uniform() : rng.normal();
    Tensor t = Tensor::from_vector(v, s.shape, dtype, device);
    if (s.grad) t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

CaseRun run_case(const OpCase& c, const std::vector<Tensor>& inputs, uint64_t seed) {
  CaseRun r;
  r.output = c.fn(inputs);
  if (r.output.requires_grad()) {
    Rng rng(seed ^ 0x5eedull);
    Tensor g = Tensor::empty(r.output.shape(), r.output.dtype(), r.output.device());
    rng.fill_normal(g, 0, 1);
    r.output.set_grad(g);
    tape().backward(r.output, false);
  } else {
    tape().clear();
  }
  for (const Tensor& t : inputs) r.grads.push_back(t.requires_grad() ? t.grad() : Tensor());
  return r;
}

double relative_l2(const Tensor& a, const Tensor& b) {
  auto x = a.to_doubles(), y = b.to_doubles();
  ARIA_CHECK(x.size() == y.size(), "relative_l2: sizes differ");
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || std::isnan(y[i])) return INFINITY;
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

ReferenceResult check_reference(const OpCase& c, uint64_t seed) {
  ARIA_CHECK(bool(c.reference), c.name, ": no reference");
  ReferenceResult res;
  OpCase ref = c;
  ref.fn = c.reference;
  CaseRun a = run_case(c, make_inputs(c, DType::F64, Device::cpu(), seed), seed);
  CaseRun b = run_case(ref, make_inputs(c, DType::F64, Device::cpu(), seed), seed);
  auto note = [&](const Tensor& x, const Tensor& y, const std::string& what) {
    double e = x.defined() && y.defined() && x.shape() == y.shape() ? relative_l2(x, y) : INFINITY;
    if (!(e <= res.worst)) {
      res.worst = std::isnan(e) ? INFINITY : e;
      res.where = c.name + ": " + what;
    }
  };
  note(a.output, b.output, "output");
  for (size_t k = 0; k < a.grads.size(); ++k) {
    if (!a.grads[k].defined() && !b.grads[k].defined()) continue;
    note(a.grads[k], b.grads[k], "gradient of input " + std::to_string(k));
  }
  return res;
}

GradCheckResult gradcheck(const OpCase& c, uint64_t seed) {
  auto inputs = make_inputs(c, DType::F64, Device::cpu(), seed);
  CaseRun run = run_case(c, inputs, seed);
  // The scalar whose gradient backward computed: sum(out * g) with the same seeded g.
  Rng rng(seed ^ 0x5eedull);
  Tensor gw = Tensor::empty(run.output.shape(), DType::F64, Device::cpu());
  rng.fill_normal(gw, 0, 1);
  auto weights = gw.to_doubles();
  auto objective = [&]() {
    NoGradGuard ng;
    auto out = c.fn(inputs).to_doubles();
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * weights[i];
    return s;
  };
  GradCheckResult res;
  const double eps = 1e-6;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    Tensor analytic = run.grads[k];
    ARIA_CHECK(analytic.defined(), c.name, ": input ", k, " got no gradient");
    auto a = analytic.to_doubles();
    double* p = inputs[k].data<double>();
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      double saved = p[i];
      p[i] = saved + eps;
      double fp = objective();
      p[i] = saved - eps;
      double fm = objective();
      p[i] = saved;
      double numeric = (fp - fm) / (2 * eps);
      double ratio = std::abs(a[size_t(i)] - numeric) / (c.gradcheck_tol * (1 + std::abs(numeric)));
      if (!(ratio <= res.worst_ratio) ) {
        res.worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
        std::ostringstream os;
        os << c.name << ": input " << k << " element " << i << " analytic " << a[size_t(i)] << " numeric " << numeric;
        res.where = os.str();
      }
    }
  }
  return res;
}

}  // namespace aria::testing
