// Every registered op case on the GPU against the CPU, float32, fresh random inputs per seed:
// outputs and every input gradient within the case's relative L2 tolerance.
#include <doctest/doctest.h>

#include <cstdio>

#include "core/autograd.h"
#include "tests/support/op_cases.h"

using namespace aria;
using namespace aria::testing;

TEST_CASE("every op on CUDA matches the CPU (float32)") {
  if (!cuda_available()) {
    std::printf("SKIPPED (no CUDA GPU): %zu CUDA-vs-CPU op cases\n", op_case_registry().size());
    MESSAGE("no CUDA GPU: CUDA-vs-CPU op cases skipped");
    return;
  }
  for (const OpCase& c : op_case_registry()) {
    for (uint64_t seed : {11ull, 12ull, 13ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      auto cpu_in = make_inputs(c, DType::F32, Device::cpu(), seed);
      auto gpu_in = make_inputs(c, DType::F32, Device::cuda(0), seed);
      CaseRun a = run_case(c, cpu_in, seed);
      CaseRun b = run_case(c, gpu_in, seed);
      CHECK(b.output.device().is_cuda());
      CHECK(relative_l2(b.output, a.output) <= c.backend_tol);
      for (size_t k = 0; k < a.grads.size(); ++k) {
        if (!a.grads[k].defined()) continue;
        CAPTURE(k);
        REQUIRE(b.grads[k].defined());
        CHECK(relative_l2(b.grads[k], a.grads[k]) <= c.backend_tol);
      }
    }
  }
}
