// Op-case rows for the matrix products (core/ops_matmul.cpp): plain, batched, shared 2-D b, every
// transpose flag, transposed views, linear with and without bias, bias_add.
#include "aria/core/ops.h"
#include "tests/support/op_cases.h"

namespace aria::testing {
namespace {

using In = InputSpec;
using Ins = std::vector<Tensor>;

OpCase mm_case(const std::string& name, Shape a, Shape b, bool ta, bool tb) {
  return {name, {{std::move(a)}, {std::move(b)}}, [ta, tb](const Ins& x) { return ops::matmul(x[0], x[1], ta, tb); }};
}

std::vector<OpCase> matmul_cases() {
  std::vector<OpCase> c;
  c.push_back(mm_case("matmul [3,5]x[5,4]", {3, 5}, {5, 4}, false, false));
  c.push_back(mm_case("matmul [2,3,5]x[5,4] shared b", {2, 3, 5}, {5, 4}, false, false));
  c.push_back(mm_case("matmul [2,3,5]x[2,5,4]", {2, 3, 5}, {2, 5, 4}, false, false));
  c.push_back(mm_case("matmul [2,2,3,5]x[2,2,5,4] two batch dims", {2, 2, 3, 5}, {2, 2, 5, 4}, false, false));
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      if (!ta && !tb) continue;
      const Shape a = ta ? Shape{2, 5, 3} : Shape{2, 3, 5};
      const Shape b2 = tb ? Shape{4, 5} : Shape{5, 4};
      const Shape b3 = tb ? Shape{2, 4, 5} : Shape{2, 5, 4};
      const std::string flags = std::string(ta ? " trans_a" : "") + (tb ? " trans_b" : "");
      c.push_back(mm_case("matmul shared b" + flags, a, b2, ta, tb));
      c.push_back(mm_case("matmul batched b" + flags, a, b3, ta, tb));
      c.push_back(mm_case("matmul 2-D" + flags, ta ? Shape{5, 3} : Shape{3, 5}, b2, ta, tb));
    }
  }
  c.push_back({"matmul transposed views [5,3]^T x [4,5]^T", {{{5, 3}}, {{4, 5}}},
               [](const Ins& x) { return ops::matmul(x[0].transpose(0, 1), x[1].transpose(0, 1)); }});
  c.push_back({"matmul batched transposed view [2,5,3]^T x [5,4]", {{{2, 5, 3}}, {{5, 4}}},
               [](const Ins& x) { return ops::matmul(x[0].transpose(1, 2), x[1]); }});
  c.push_back({"matmul sliced (non-contiguous) [3,8][:, 2:7] x [5,4]", {{{3, 8}}, {{5, 4}}},
               [](const Ins& x) { return ops::matmul(x[0].slice(1, 2, 7), x[1]); }});
  c.push_back({"matmul a @ a^T [3,5]", {{{3, 5}}}, [](const Ins& x) { return ops::matmul(x[0], x[0], false, true); }});
  return c;
}

std::vector<OpCase> linear_cases() {
  std::vector<OpCase> c;
  c.push_back({"linear [2,3,7]->[5] with bias", {{{2, 3, 7}}, {{7, 5}}, {{5}}},
               [](const Ins& x) { return ops::linear(x[0], x[1], x[2]); }});
  c.push_back({"linear [2,3,7]->[5] no bias", {{{2, 3, 7}}, {{7, 5}}},
               [](const Ins& x) { return ops::linear(x[0], x[1], Tensor()); }});
  c.push_back({"linear [4,3]->[6] with bias", {{{4, 3}}, {{3, 6}}, {{6}}},
               [](const Ins& x) { return ops::linear(x[0], x[1], x[2]); }});
  c.push_back({"linear [7]->[2] 1-D x", {{{7}}, {{7, 2}}, {{2}}},
               [](const Ins& x) { return ops::linear(x[0], x[1], x[2]); }});
  c.push_back({"linear transposed x [7,3]^T->[5]", {{{7, 3}}, {{7, 5}}, {{5}}},
               [](const Ins& x) { return ops::linear(x[0].transpose(0, 1), x[1], x[2]); }});
  c.push_back({"linear frozen w [2,3,7]->[5]", {{{2, 3, 7}}, In{{7, 5}, In::Normal, 0, false, false}, {{5}}},
               [](const Ins& x) { return ops::linear(x[0], x[1], x[2]); }});
  c.push_back({"bias_add [2,3,4]+[4]", {{{2, 3, 4}}, {{4}}}, [](const Ins& x) { return ops::bias_add(x[0], x[1]); }});
  c.push_back({"bias_add transposed [4,3]^T+[4]", {{{4, 3}}, {{4}}},
               [](const Ins& x) { return ops::bias_add(x[0].transpose(0, 1), x[1]); }});
  return c;
}

ARIA_OP_CASES(matmul_cases);
ARIA_OP_CASES(linear_cases);

}  // namespace
}  // namespace aria::testing
