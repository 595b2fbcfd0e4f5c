// Every registered op case: backward against central finite differences in float64 on the CPU, and
// output and gradients against the case's reference composition where it has one.
#include <doctest/doctest.h>

#include "aria/core/ops.h"
#include "tests/support/op_cases.h"

using namespace aria;
using namespace aria::testing;

TEST_CASE("every op's backward matches finite differences (float64, CPU)") {
  auto& cases = op_case_registry();
  REQUIRE(cases.size() > 0);
  for (const OpCase& c : cases) {
    bool has_grad_input = false;
    for (auto& s : c.inputs) has_grad_input |= (s.kind != InputSpec::Ids && s.grad);
    if (!has_grad_input || !c.finite_differences) continue;
    for (uint64_t seed : {1ull, 2ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      GradCheckResult r = gradcheck(c, seed);
      INFO(r.where);
      CHECK(r.worst_ratio <= 1.0);
    }
  }
}

TEST_CASE("every op with a reference equals it, output and gradients (float64, CPU)") {
  int checked = 0;
  for (const OpCase& c : op_case_registry()) {
    if (!c.reference) continue;
    ++checked;
    for (uint64_t seed : {1ull, 2ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      ReferenceResult r = check_reference(c, seed);
      INFO(r.where);
      CHECK(r.worst <= c.reference_tol);
    }
  }
  CHECK(checked > 0);
}

TEST_CASE("the reference check fails on a case whose reference differs") {
  OpCase c{"softmax [3,4] against a wrong reference", {{{3, 4}}}, [](const std::vector<Tensor>& x) {
             return ops::softmax(x[0]);
           }};
  c.reference = [](const std::vector<Tensor>& x) { return ops::sigmoid(x[0]); };
  CHECK(check_reference(c, 1).worst > 1e-3);
  c.reference = [](const std::vector<Tensor>& x) {
    Tensor e = ops::exp(x[0]);
    return ops::div(e, ops::sum_dim(e, -1, true));
  };
  CHECK(check_reference(c, 1).worst <= 1e-12);
}
