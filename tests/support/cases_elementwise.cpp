// Op-case rows for the elementwise, reduction and shape ops (core/ops_elementwise.cpp,
// core/ops_reduce.cpp, core/ops_shape.cpp): small, awkward shapes, broadcasting, strided inputs.
#include "aria/core/ops.h"
#include "tests/support/op_cases.h"

namespace aria::testing {
namespace {

using In = InputSpec;
using Ins = std::vector<Tensor>;

In pos(Shape s) { return In{std::move(s), In::Positive}; }

std::vector<OpCase> binary_cases() {
  std::vector<OpCase> c;
  struct Op {
    const char* name;
    Tensor (*fn)(const Tensor&, const Tensor&);
  };
  const Op ops_[] = {{"add", ops::add}, {"sub", ops::sub}, {"mul", ops::mul}, {"div", ops::div}};
  struct Pair {
    const char* label;
    Shape a, b;
  };
  const Pair pairs[] = {{"[3,5] [3,5]", {3, 5}, {3, 5}},
                        {"[2,3,4] [1,3,1]", {2, 3, 4}, {1, 3, 1}},
                        {"[4] [2,3,4]", {4}, {2, 3, 4}},
                        {"[2,3,4] [1]", {2, 3, 4}, {1}},
                        {"[3,1] [1,5]", {3, 1}, {1, 5}},
                        {"[1] [1]", {1}, {1}}};
  for (const Op& op : ops_) {
    for (const Pair& p : pairs) {
      auto fn = op.fn;
      // div's denominator stays away from 0
      In b = std::string(op.name) == "div" ? pos(p.b) : In{p.b};
      c.push_back({std::string(op.name) + " " + p.label, {{p.a}, b},
                   [fn](const Ins& x) { return fn(x[0], x[1]); }});
    }
    auto fn = op.fn;
    In b = std::string(op.name) == "div" ? pos({4, 3}) : In{{4, 3}};
    c.push_back({std::string(op.name) + " transposed [4,3]^T [3,4]^T", {{{4, 3}}, b},
                 [fn](const Ins& x) { return fn(x[0].transpose(0, 1), x[1].transpose(0, 1)); }});
  }
  c.push_back({"mul same tensor x*x [3,5]", {{{3, 5}}}, [](const Ins& x) { return ops::mul(x[0], x[0]); }});
  c.push_back({"add with a constant [2,3]+[3]", {{{2, 3}}, In{{3}, In::Normal, 0, false, false}},
               [](const Ins& x) { return ops::add(x[0], x[1]); }});
  return c;
}

std::vector<OpCase> unary_cases() {
  std::vector<OpCase> c;
  c.push_back({"scale [3,5]", {{{3, 5}}}, [](const Ins& x) { return ops::scale(x[0], -2.5); }});
  c.push_back({"affine [2,3,4]", {{{2, 3, 4}}}, [](const Ins& x) { return ops::affine(x[0], 0.7, -1.3); }});
  c.push_back({"affine transposed [4,3]^T", {{{4, 3}}},
               [](const Ins& x) { return ops::affine(x[0].transpose(0, 1), 3.0, 0.5); }});
  struct U {
    const char* name;
    Tensor (*fn)(const Tensor&);
    bool positive;
  };
  const U us[] = {{"gelu", ops::gelu, false}, {"sigmoid", ops::sigmoid, false}, {"relu", ops::relu, false},
                  {"exp", ops::exp, false},   {"log", ops::log, true},          {"tanh", ops::tanh, false},
                  {"square", ops::square, false}};
  for (const U& u : us) {
    auto fn = u.fn;
    for (const Shape& s : {Shape{3, 5}, Shape{2, 3, 4}, Shape{1}}) {
      In in = u.positive ? pos(s) : In{s};
      c.push_back({std::string(u.name) + " " + shape_str(s), {in}, [fn](const Ins& x) { return fn(x[0]); }});
    }
    In in = u.positive ? pos({5, 3}) : In{{5, 3}};
    c.push_back({std::string(u.name) + " transposed [5,3]^T", {in},
                 [fn](const Ins& x) { return fn(x[0].transpose(0, 1)); }});
  }
  c.push_back({"broadcast_to [3,1] -> [2,3,4]", {{{3, 1}}},
               [](const Ins& x) { return ops::broadcast_to(x[0], {2, 3, 4}); }});
  return c;
}

std::vector<OpCase> reduce_cases() {
  std::vector<OpCase> c;
  c.push_back({"sum [3,5]", {{{3, 5}}}, [](const Ins& x) { return ops::sum(x[0]); }});
  c.push_back({"sum [1]", {{{1}}}, [](const Ins& x) { return ops::sum(x[0]); }});
  c.push_back({"mean [2,3,4]", {{{2, 3, 4}}}, [](const Ins& x) { return ops::mean(x[0]); }});
  c.push_back({"sum transposed [4,3]^T", {{{4, 3}}}, [](const Ins& x) { return ops::sum(x[0].transpose(0, 1)); }});
  for (int d : {0, 1, 2, -1}) {
    for (bool keep : {false, true}) {
      const std::string tag = " [2,3,4] dim " + std::to_string(d) + (keep ? " keepdim" : "");
      c.push_back({"sum_dim" + tag, {{{2, 3, 4}}}, [d, keep](const Ins& x) { return ops::sum_dim(x[0], d, keep); }});
      c.push_back({"mean_dim" + tag, {{{2, 3, 4}}}, [d, keep](const Ins& x) { return ops::mean_dim(x[0], d, keep); }});
    }
  }
  c.push_back({"sum_dim [3,5] dim 1", {{{3, 5}}}, [](const Ins& x) { return ops::sum_dim(x[0], 1); }});
  for (const Shape& s : {Shape{1, 3, 1}, Shape{4}, Shape{3, 1}, Shape{2, 1, 4}, Shape{1}, Shape{}})
    c.push_back({"sum_to_shape [2,3,4] -> " + shape_str(s), {{{2, 3, 4}}},
                 [s](const Ins& x) { return ops::sum_to_shape(x[0], s); }});
  c.push_back({"sum_to_shape [2,3,4,5] -> [3,1,5]", {{{2, 3, 4, 5}}},
               [](const Ins& x) { return ops::sum_to_shape(x[0], {3, 1, 5}); }});
  return c;
}

std::vector<OpCase> shape_cases() {
  std::vector<OpCase> c;
  c.push_back({"concat dim 0 [2,3] [4,3]", {{{2, 3}}, {{4, 3}}},
               [](const Ins& x) { return ops::concat({x[0], x[1]}, 0); }});
  c.push_back({"concat dim -1 [2,3,1] [2,3,4] [2,3,2]", {{{2, 3, 1}}, {{2, 3, 4}}, {{2, 3, 2}}},
               [](const Ins& x) { return ops::concat({x[0], x[1], x[2]}, -1); }});
  c.push_back({"concat dim 1 transposed [3,2]^T [2,5]", {{{3, 2}}, {{2, 5}}},
               [](const Ins& x) { return ops::concat({x[0].transpose(0, 1), x[1]}, 1); }});
  c.push_back({"concat same tensor twice [2,3]", {{{2, 3}}},
               [](const Ins& x) { return ops::concat({x[0], x[0]}, 0); }});
  c.push_back({"split [2,7,3] dim 1 {2,4,1} recombined", {{{2, 7, 3}}}, [](const Ins& x) {
                 auto p = ops::split(x[0], {2, 4, 1}, 1);
                 return ops::concat({ops::scale(p[2], 3.0), ops::square(p[0]), p[1]}, 1);
               }});
  c.push_back({"split [6,4] dim 0 {3,3} one part used", {{{6, 4}}}, [](const Ins& x) {
                 return ops::split(x[0], {3, 3}, 0)[1];
               }});
  return c;
}

ARIA_OP_CASES(binary_cases);
ARIA_OP_CASES(unary_cases);
ARIA_OP_CASES(reduce_cases);
ARIA_OP_CASES(shape_cases);

}  // namespace
}  // namespace aria::testing
