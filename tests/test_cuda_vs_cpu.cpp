// Every registered op case on the GPU against the CPU, fresh random inputs per seed: float32 on both,
// and bfloat16 on the GPU against float32 on the CPU over the same bf16-representable inputs; outputs
// and every input gradient within the case's relative L2 tolerance. And every case rerun on the GPU
// on the same inputs gives the same bits (float32 and bfloat16).
#include <doctest/doctest.h>

#include <string>

#include "aria/core/autograd.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

using namespace aria;
using namespace aria::testing;

TEST_CASE("every op on CUDA matches the CPU (float32)") {
  if (!gpu_or_skip(std::to_string(op_case_registry().size()) + " CUDA-vs-CPU op cases")) return;
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

// The same inputs on both sides: drawn in bfloat16 (so exactly representable), the CPU copy widened
// to float32 (the CPU computes in float32/float64 only).
static std::vector<Tensor> widened(const std::vector<Tensor>& xs) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) {
    if (x.dtype() != DType::BF16) {
      out.push_back(x);
      continue;
    }
    Tensor w = x.detach().to(DType::F32);
    w.set_requires_grad(x.requires_grad());
    out.push_back(w);
  }
  return out;
}

TEST_CASE("every op on CUDA in bfloat16 matches the CPU in float32") {
  if (!gpu_or_skip(std::to_string(op_case_registry().size()) + " bfloat16 CUDA-vs-CPU op cases")) return;
  for (const OpCase& c : op_case_registry()) {
    for (uint64_t seed : {21ull, 22ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      auto gpu_in = make_inputs(c, DType::BF16, Device::cuda(0), seed);
      auto cpu_in = widened(make_inputs(c, DType::BF16, Device::cpu(), seed));
      CaseRun a = run_case(c, cpu_in, seed);
      CaseRun b = run_case(c, gpu_in, seed);
      CHECK(relative_l2(b.output, a.output) <= c.bf16_tol);
      for (size_t k = 0; k < a.grads.size(); ++k) {
        if (!a.grads[k].defined()) continue;
        CAPTURE(k);
        REQUIRE(b.grads[k].defined());
        CHECK(b.grads[k].dtype() == gpu_in[k].dtype());
        CHECK(relative_l2(b.grads[k], a.grads[k]) <= c.bf16_tol);
      }
    }
  }
}

TEST_CASE("every op on CUDA gives the same bits when rerun on the same inputs (float32 and bfloat16)") {
  if (!gpu_or_skip(std::to_string(op_case_registry().size()) + " CUDA determinism op cases")) return;
  for (const OpCase& c : op_case_registry()) {
    if (!c.deterministic) continue;
    for (DType dt : {DType::F32, DType::BF16}) {
      CAPTURE(c.name);
      CAPTURE(dtype_name(dt));
      CaseRun a = run_case(c, make_inputs(c, dt, Device::cuda(0), 31), 31);
      CaseRun b = run_case(c, make_inputs(c, dt, Device::cuda(0), 31), 31);
      CHECK(bit_equal(a.output, b.output));
      for (size_t k = 0; k < a.grads.size(); ++k) {
        if (!a.grads[k].defined()) continue;
        CAPTURE(k);
        REQUIRE(b.grads[k].defined());
        CHECK(bit_equal(a.grads[k], b.grads[k]));
      }
    }
  }
}
