// Every registered op case: backward against central finite differences in float64 on the CPU.
#include <doctest/doctest.h>

#include "tests/support/op_cases.h"

using namespace aria;
using namespace aria::testing;

TEST_CASE("every op's backward matches finite differences (float64, CPU)") {
  auto& cases = op_case_registry();
  REQUIRE(cases.size() > 0);
  for (const OpCase& c : cases) {
    bool has_grad_input = false;
    for (auto& s : c.inputs) has_grad_input |= (s.kind != InputSpec::Ids && s.grad);
    if (!has_grad_input) continue;
    for (uint64_t seed : {1ull, 2ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      GradCheckResult r = gradcheck(c, seed);
      INFO(r.where);
      CHECK(r.worst_ratio <= 1.0);
    }
  }
}
