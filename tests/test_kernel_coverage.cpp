// Every row of kernels/kernel_list.h is exercised by named op cases (tests/support/kernel_cases.cpp)
// or carries a documented exemption; every named case exists; and every op case runs on the CPU in
// float32 and float64 with the same result (the cases without a gradient are otherwise run only by
// test_cuda_vs_cpu, on a GPU).
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/kernel_cases.h"
#include "tests/support/op_cases.h"

using namespace aria;
using namespace aria::testing;

namespace {

std::vector<std::string> registered_names() {
  std::vector<std::string> names;
  for (const OpCase& c : op_case_registry()) names.push_back(c.name);
  return names;
}

bool contains(const std::vector<std::string>& problems, const std::string& text) {
  for (const std::string& p : problems)
    if (p.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("the kernel rows are read from kernel_list.h: the X-macro gives every ARIA_KERNEL row of the file") {
  std::ifstream in(std::string(ARIA_SOURCE_DIR) + "/kernels/kernel_list.h");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  std::vector<std::string> in_file;
  const std::regex row(R"((^|\n)ARIA_KERNEL\(\s*([A-Za-z_0-9]+))");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), row); it != std::sregex_iterator(); ++it)
    in_file.push_back((*it)[2].str());
  CHECK(in_file.size() >= 40);
  CHECK(kernel_rows() == in_file);
}

TEST_CASE("every kernel row names the op cases that exercise it, or a documented exemption") {
  REQUIRE(!op_case_registry().empty());
  const auto problems = kernel_coverage_problems(kernel_rows(), kernel_case_table(), registered_names());
  std::string all;
  for (const std::string& p : problems) all += p + "\n";
  CHECK_MESSAGE(problems.empty(), all);
  // Exemptions stay few and say where the row is tested instead.
  int exempt = 0;
  for (const KernelRowCases& e : kernel_case_table()) {
    if (e.exemption.empty()) continue;
    ++exempt;
    CAPTURE(e.row);
    CHECK(e.exemption.find("test_") != std::string::npos);
  }
  CHECK(exempt <= 2);
}

TEST_CASE("the coverage check reports each kind of inconsistency") {
  const std::vector<std::string> rows = {"alpha", "beta", "gamma", "delta"};
  const std::vector<std::string> names = {"alpha [3]", "alpha [4,5]", "beta x", "beta x"};
  const std::vector<KernelRowCases> table = {
      {"alpha", {"alpha *"}},                       // fine: a prefix matching two cases
      {"beta", {"beta x", "beta y"}},               // "beta y" matches nothing
      {"gamma", {}},                                // neither cases nor an exemption
      {"gamma", {"alpha [3]"}},                     // a second entry
      {"epsilon", {"alpha [3]"}},                   // not a row
      {"alpha", {"alpha [3]"}, "runtime only"},     // both cases and an exemption (and a repeat)
  };
  const auto p = kernel_coverage_problems(rows, table, names);
  CHECK(contains(p, "no registered op case matches 'beta y'"));
  CHECK(contains(p, "row gamma names no op case and no exemption"));
  CHECK(contains(p, "row gamma has more than one entry"));
  CHECK(contains(p, "entry epsilon is not a row"));
  CHECK(contains(p, "row alpha names op cases and an exemption"));
  CHECK(contains(p, "row delta has no entry"));
  CHECK(contains(p, "op case 'beta x' is registered twice"));
  CHECK(!contains(p, "'alpha *'"));
  CHECK(p.size() == 8);  // the seven above and alpha's repeated entry
  // A consistent table gives no problem.
  CHECK(kernel_coverage_problems({"alpha"}, {{"alpha", {"alpha *"}}}, {"alpha [3]"}).empty());
  CHECK(kernel_coverage_problems({"alpha"}, {{"alpha", {}, "runtime only"}}, {}).empty());
}

TEST_CASE("a case pattern is an exact name or a prefix ending in '*'") {
  CHECK(case_pattern_matches("layernorm *", "layernorm [3,7]"));
  CHECK(!case_pattern_matches("layernorm *", "add_layernorm [4,5] y only"));
  CHECK(!case_pattern_matches("layernorm *", "layernorm"));
  CHECK(case_pattern_matches("softmax [4,9]", "softmax [4,9]"));
  CHECK(!case_pattern_matches("softmax [4,9]", "softmax [4,9] "));
  CHECK(!case_pattern_matches("softmax", "softmax [4,9]"));
}

TEST_CASE("every op case runs on the CPU: float32 agrees with float64 within the case's f32_tol") {
  for (const OpCase& c : op_case_registry()) {
    for (uint64_t seed : {3ull, 5ull}) {
      CAPTURE(c.name);
      CAPTURE(seed);
      auto in32 = make_inputs(c, DType::F32, Device::cpu(), seed);
      CaseRun a = run_case(c, in32, seed);
      CaseRun b = run_case(c, make_inputs(c, DType::F64, Device::cpu(), seed), seed);
      REQUIRE(a.output.defined());
      REQUIRE(b.output.defined());
      CHECK(a.output.numel() > 0);
      bool finite = true;
      for (double v : a.output.to_doubles()) finite = finite && std::isfinite(v);
      CHECK(finite);
      CHECK(relative_l2(a.output, b.output) <= c.f32_tol);
      for (size_t k = 0; k < in32.size(); ++k) {
        if (!in32[k].requires_grad()) continue;
        CAPTURE(k);
        REQUIRE(a.grads[k].defined());
        REQUIRE(b.grads[k].defined());
        CHECK(relative_l2(a.grads[k], b.grads[k]) <= c.f32_tol);
      }
    }
  }
}
