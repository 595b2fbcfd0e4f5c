// One table of op test cases drives every generic op test (in the spirit of ggml's
// test-backend-ops): tests/test_gradcheck.cpp checks each case's backward by central finite
// differences in float64 on the CPU, tests/test_cuda_vs_cpu.cpp runs each case on both backends in
// float32 and compares outputs and gradients; a row's optional reference (the plain composition a
// fused op replaces) is checked against it in float64. Adding an op adds rows (ARIA_OP_CASES in a
// tests/support/cases_<family>.cpp file), not a new test.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "aria/core/tensor.h"

namespace aria::testing {

struct InputSpec {
  enum Kind { Normal, Positive, Ids };
  Shape shape;
  Kind kind = Normal;
  int64_t id_range = 0;  // for Ids: values in [0, id_range); a value of -100 may be mixed in by `ignore`
  bool ignore = false;   // for Ids: set some entries to -100 (ignore_index)
  bool grad = true;      // for floats: differentiate with respect to it
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double gradcheck_tol = 1e-6;   // float64 finite differences: |analytic - numeric| <= tol * (1 + |numeric|)
  // Off for rows too large for finite differences (two forwards per input element); their gradients
  // are still checked against the reference and across backends.
  bool finite_differences = true;
  double backend_tol = 1e-4;     // float32 CUDA vs CPU: relative L2 error of outputs and grads
  double f32_tol = 1e-5;         // float32 CPU vs float64 CPU (tests/test_kernel_coverage.cpp): the same
  // bfloat16 CUDA vs float32 CPU on the same (bf16-representable) inputs: relative L2 error. Each
  // bf16 store rounds by up to 2^-9; a few chained ops stay well under the default.
  double bf16_tol = 3e-2;
  // Optional: the same function written with plainer ops (a fused op's unfused composition, a
  // definition by formula). tests/test_gradcheck.cpp checks in float64 on the CPU that the output and
  // every input gradient equal the reference's within reference_tol (relative L2).
  std::function<Tensor(const std::vector<Tensor>&)> reference;
  double reference_tol = 1e-12;
  // The rows it reaches promise the same bits on every run (no float atomics, fixed summation
  // orders): tests/test_cuda_vs_cpu.cpp runs the case twice on CUDA on the same inputs and compares
  // output and gradients bit for bit. Clear it only for a row documented as nondeterministic.
  bool deterministic = true;
};

std::vector<OpCase>& op_case_registry();

struct OpCaseRegistrar {
  explicit OpCaseRegistrar(std::vector<OpCase> (*make)()) {
    for (auto& c : make()) op_case_registry().push_back(std::move(c));
  }
};

// Fresh random inputs for a case (seeded), in the given float dtype, on the given device.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed);

// Runs the case forward, then backward with d(out) = `out_grad` (random, fixed by seed).
// Returns {output, grads of every input with grad=true (undefined otherwise)}.
struct CaseRun {
  Tensor output;
  std::vector<Tensor> grads;
};
CaseRun run_case(const OpCase& c, const std::vector<Tensor>& inputs, uint64_t seed);

// Largest violation of |analytic - numeric| <= tol * (1 + |numeric|), as ratio (<= 1 passes), with
// a description of where it happened.
struct GradCheckResult {
  double worst_ratio = 0;
  std::string where;
};
GradCheckResult gradcheck(const OpCase& c, uint64_t seed);

// Largest relative L2 error between c.fn and c.reference, over the output and every input gradient,
// on the same float64 CPU inputs (seeded), with a description of where it happened.
struct ReferenceResult {
  double worst = 0;
  std::string where;
};
ReferenceResult check_reference(const OpCase& c, uint64_t seed);

double relative_l2(const Tensor& a, const Tensor& b);  // ||a - b|| / max(||b||, 1e-30)

}  // namespace aria::testing

#define ARIA_OP_CASES_CAT2(a, b) a##b
#define ARIA_OP_CASES_CAT(a, b) ARIA_OP_CASES_CAT2(a, b)
// ARIA_OP_CASES(function returning std::vector<OpCase>)
#define ARIA_OP_CASES(fn) static ::aria::testing::OpCaseRegistrar ARIA_OP_CASES_CAT(op_cases_reg_, __LINE__)(fn)
