// The declared mapping from kernel rows (kernels/kernel_list.h) to the op cases that exercise them
// (tests/support/cases_*.cpp). Adding a row: add its entry here with the cases that reach it through
// an op; test_kernel_coverage fails until every row has one. See docs/ops.md ("Where is op X").
#include "tests/support/kernel_cases.h"

#include <map>
#include <set>

namespace aria::testing {

const std::vector<std::string>& kernel_rows() {
#define ARIA_KERNEL(name, params, args) #name,
  static const std::vector<std::string> rows = {
#include "aria/kernels/kernel_list.h"
  };
#undef ARIA_KERNEL
  return rows;
}

const std::vector<KernelRowCases>& kernel_case_table() {
  static const std::vector<KernelRowCases> table = {
      // ---- data movement ----
      {"copy_cast",
       {"contiguous of a transposed view [4,3]^T", "contiguous of a sliced view *", "2x cast to float64 and back [3,5]",
        "cast int32 ids [2,9] to float"}},
      {"fill", {"fill: x + full(0.25) [3,7]", "adamw_update_ *"}},
      {"axpy", {"add_scaled_ y += 0.7 x [4,6]", "mul same tensor x*x [3,5]", "concat same tensor twice [2,3]"}},
      // ---- elementwise ----
      {"binary", {"add *", "sub *", "mul *", "div *"}},
      {"scale_by", {"scale_by_ x *= s[0] [3,11]", "lm_head_cross_entropy *"}},
      {"unary", {"scale [3,5]", "affine *", "gelu *", "sigmoid *", "relu *", "exp *", "log *", "tanh *", "square *"}},
      {"unary_backward", {"gelu *", "sigmoid *", "relu *", "exp *", "log *", "tanh *", "square *"}},
      {"gelu_backward_bias_grad", {"gelu_mlp *", "gated_mlp *"}},
      {"sum_to",
       {"sum *", "mean *", "sum_dim *", "mean_dim *", "sum_to_shape *",
        "add [37,45] + [45] + [37,1] (both sum_to layouts)", "bias_add *", "linear *"}},
      {"add_bias", {"bias_add *"}},
      // ---- matrix products ----
      {"matmul", {"matmul *", "linear *", "gelu_mlp *", "lm_head_cross_entropy *"}},
      {"gemm_epilogue", {"linear *", "gelu_mlp *", "gated_mlp *"}},
      // ---- neural-network ops ----
      {"embedding_forward", {"embedding *"}},
      {"embedding_backward", {"embedding *"}},
      {"layernorm_forward", {"layernorm *"}},
      {"layernorm_backward", {"layernorm *"}},
      {"add_layernorm_forward", {"add_layernorm *"}},
      {"layernorm_backward_residual", {"add_layernorm *"}},
      {"rmsnorm_forward", {"rmsnorm *"}},
      {"add_rmsnorm_forward", {"add_rmsnorm *"}},
      {"rmsnorm_backward", {"rmsnorm *", "add_rmsnorm *"}},
      {"swiglu_forward", {"swiglu *", "swiglu_packed *"}},
      {"swiglu_backward", {"swiglu *", "swiglu_packed *"}},
      {"rope_apply", {"rope *"}},
      {"rope_table", {"rope *"}},
      {"softmax_forward", {"softmax *"}},
      {"softmax_backward", {"softmax *"}},
      {"attention_forward", {"attention *"}},
      {"attention_backward", {"attention *"}},
      {"attention_gqa_forward", {"gqa_attention *"}},
      {"attention_gqa_backward", {"gqa_attention *"}},
      {"cross_entropy_forward", {"cross_entropy *", "cross_entropy_rows *"}},
      {"cross_entropy_backward", {"cross_entropy *", "cross_entropy_rows *"}},
      {"cross_entropy_fused", {"lm_head_cross_entropy *"}},
      {"masked_mean",
       {},
       "no op calls it (the classifier divides by the count itself): tested directly against a hand loop in "
       "test_fused_rows_cpu.cpp and CUDA vs CPU in test_cuda_bf16_nn.cpp"},
      {"count_correct", {"count_correct_into *"}},
      // ---- optimizer and statistics ----
      {"adamw_update", {"adamw_update_ *"}},
      {"sum_squares", {"add_sum_squares_ *", "adamw_update_ 3 steps clipped on the device by sum_squares"}},
      {"square_accumulate", {"add_squares_ *"}},
      // ---- gated MLP and SPC ----
      {"gate_mix_forward", {"gate_mix *", "gated_mlp *"}},
      {"gate_mix_backward", {"gate_mix *", "gated_mlp *"}},
      {"gate_head_forward", {"gated_mlp *"}},
      {"gate_head_backward", {"gated_mlp *"}},
      {"spc_penalty_grad", {"add_spc_penalty_grad_ *"}},
  };
  return table;
}

bool case_pattern_matches(const std::string& pattern, const std::string& case_name) {
  if (!pattern.empty() && pattern.back() == '*')
    return case_name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return pattern == case_name;
}

std::vector<std::string> kernel_coverage_problems(const std::vector<std::string>& rows,
                                                  const std::vector<KernelRowCases>& table,
                                                  const std::vector<std::string>& case_names) {
  std::vector<std::string> problems;
  std::set<std::string> seen_cases;
  for (const std::string& n : case_names)
    if (!seen_cases.insert(n).second) problems.push_back("op case '" + n + "' is registered twice");
  const std::set<std::string> row_set(rows.begin(), rows.end());
  std::map<std::string, int> entries;
  for (const KernelRowCases& e : table) {
    if (++entries[e.row] == 2) problems.push_back("row " + e.row + " has more than one entry");
    if (!row_set.count(e.row)) problems.push_back("entry " + e.row + " is not a row of kernels/kernel_list.h");
    if (e.cases.empty() && e.exemption.empty())
      problems.push_back("row " + e.row + " names no op case and no exemption");
    if (!e.cases.empty() && !e.exemption.empty())
      problems.push_back("row " + e.row + " names op cases and an exemption: one or the other");
    for (const std::string& p : e.cases) {
      bool found = false;
      for (const std::string& n : case_names) found = found || case_pattern_matches(p, n);
      if (!found) problems.push_back("row " + e.row + ": no registered op case matches '" + p + "'");
    }
  }
  for (const std::string& r : rows)
    if (!entries.count(r)) problems.push_back("row " + r + " has no entry in tests/support/kernel_cases.cpp");
  return problems;
}

}  // namespace aria::testing
