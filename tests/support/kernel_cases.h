// Which op cases exercise each row of kernels/kernel_list.h: the way from a kernel to its tests.
// The table (tests/support/kernel_cases.cpp) is keyed by the row names, which are read from
// kernel_list.h itself through its X-macro (kernel_rows()), so a new row without an entry, an entry
// for a row that is gone, and a case name that no longer exists all fail tests/test_kernel_coverage.cpp.
// The cases themselves (tests/support/cases_*.cpp, op_cases.h) drive the float64 gradient check
// (test_gradcheck), CUDA vs CPU in float32 and bfloat16 vs float32 (test_cuda_vs_cpu).
#pragma once
#include <string>
#include <vector>

namespace aria::testing {

struct KernelRowCases {
  std::string row;
  // Op-case names: exact, or a prefix ending in '*' ("layernorm *" is every case whose name starts
  // with "layernorm "). Each must match at least one registered case.
  std::vector<std::string> cases;
  // Non-empty for a row that no op case can exercise: why, and which test checks it instead. A row
  // has cases or an exemption, not both.
  std::string exemption;
};

// Every ARIA_KERNEL row's name, in kernel_list.h's order.
const std::vector<std::string>& kernel_rows();

// The declared mapping, one entry per row.
const std::vector<KernelRowCases>& kernel_case_table();

// True when `pattern` (exact, or a prefix ending in '*') names `case_name`.
bool case_pattern_matches(const std::string& pattern, const std::string& case_name);

// Every problem of `table` against `rows` and the registered case names `case_names` (empty when
// consistent): rows without an entry, entries for unknown rows or repeated, entries with neither
// cases nor an exemption (or both), patterns that match no case, and repeated case names.
std::vector<std::string> kernel_coverage_problems(const std::vector<std::string>& rows,
                                                  const std::vector<KernelRowCases>& table,
                                                  const std::vector<std::string>& case_names);

}  // namespace aria::testing
