// Op-case rows for the kernel rows that no differentiable op reaches on its own: copies and casts
// (Tensor::contiguous / to), fill, and the non-differentiable in-place ops of core/ops_inplace.h
// (AdamW, sum of squares, Fisher accumulation, SPC's penalty gradient, axpy, scale_by) and
// ops::count_correct_into. Cases whose inputs are all constant have no gradient to check: the
// float64 finite differences skip them, and tests/test_cuda_vs_cpu.cpp compares their outputs on
// CUDA (float32 and bfloat16) with the CPU's. Each function clones before writing in place.
#include <cmath>

#include "aria/core/ops.h"
#include "aria/core/ops_inplace.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using In = InputSpec;
using Ins = std::vector<Tensor>;

In constant(Shape s, In::Kind kind = In::Normal) {
  In in{std::move(s), kind};
  in.grad = false;
  return in;
}

Tensor flat(const Tensor& t) { return t.reshape({t.numel()}); }

// A statistic's accumulator on t's values: float32 for bfloat16 data (kernel_list.h), else t's dtype.
Tensor fisher_acc(const Tensor& t) { return t.to(t.dtype() == DType::BF16 ? DType::F32 : t.dtype()).clone(); }

std::vector<OpCase> copy_cases() {
  std::vector<OpCase> c;
  c.push_back({"contiguous of a transposed view [4,3]^T", {{{4, 3}}},
               [](const Ins& x) { return x[0].transpose(0, 1).contiguous(); }});
  c.push_back({"contiguous of a sliced view [5,8][:, 1:6]", {{{5, 8}}},
               [](const Ins& x) { return x[0].slice(1, 1, 6).contiguous(); }});
  c.push_back({"2x cast to float64 and back [3,5]", {{{3, 5}}},
               [](const Ins& x) { return ops::scale(x[0], 2.0).to(DType::F64).to(x[0].dtype()); }});
  c.push_back({"cast int32 ids [2,9] to float", {ids_input({2, 9}, 1000)},
               [](const Ins& x) { return x[0].to(DType::F32); }});
  c.push_back({"fill: x + full(0.25) [3,7]", {{{3, 7}}}, [](const Ins& x) {
                 return ops::add(x[0], Tensor::full(x[0].shape(), 0.25, x[0].dtype(), x[0].device()));
               }});
  return c;
}

std::vector<OpCase> inplace_cases() {
  std::vector<OpCase> c;
  c.push_back({"add_scaled_ y += 0.7 x [4,6]", {constant({4, 6}), constant({4, 6})}, [](const Ins& x) {
                 Tensor y = x[0].clone();
                 ops::add_scaled_(y, x[1], 0.7);
                 return y;
               }});
  c.push_back({"scale_by_ x *= s[0] [3,11]", {constant({3, 11})}, [](const Ins& x) {
                 Tensor y = x[0].clone();
                 ops::scale_by_(y, Tensor::full({1}, -1.75, DType::F32, y.device()));
                 return y;
               }});
  c.push_back({"add_squares_ acc += 0.5 g^2 [5,3]", {constant({5, 3}, In::Positive), constant({5, 3})},
               [](const Ins& x) {
                 Tensor acc = fisher_acc(x[0]);
                 ops::add_squares_(acc, x[1], 0.5);
                 return acc;
               }});
  c.push_back({"add_squares_ acc += 0.25 sum_s g[s]^2 acc [4,5] g [3,4,5]",
               {constant({4, 5}, In::Positive), constant({3, 4, 5})}, [](const Ins& x) {
                 Tensor acc = fisher_acc(x[0]);
                 ops::add_squares_(acc, x[1], 0.25);
                 return acc;
               }});
  c.push_back({"add_sum_squares_ of [3,7] and [130] into 1.5", {constant({3, 7}), constant({130})},
               [](const Ins& x) {
                 Tensor out = Tensor::full({1}, 1.5, DType::F32, x[0].device());
                 ops::add_sum_squares_({x[0], x[1]}, out);
                 return out;
               }});
  c.push_back({"add_spc_penalty_grad_ lambda 0.3 over [3,4] and [9]",
               {constant({3, 4}), constant({3, 4}, In::Positive), constant({3, 4}), constant({3, 4}), constant({9}),
                constant({9}, In::Positive), constant({9}), constant({9})},
               [](const Ins& x) {
                 Tensor g0 = x[0].clone(), g1 = x[4].clone();
                 ops::add_spc_penalty_grad_({g0, g1}, {x[1], x[5]}, {x[2], x[6]}, {x[3], x[7]}, 0.3);
                 return ops::concat({flat(g0), g1}, 0);
               }});
  c.push_back({"count_correct_into logits [40,7] labels [40] from 2", {constant({40, 7}), ids_input({40}, 7)},
               [](const Ins& x) {
                 Tensor out = Tensor::full({1}, 2.0, DType::F64, x[0].device());
                 ops::count_correct_into(x[0], x[1], out);
                 return out;
               }});
  return c;
}

// Three AdamW steps on two parameters (decayed and not) through ops::adamw_update_, optionally with
// the gradient clipped on the device by the sum of squares of both gradients (add_sum_squares_ into
// a float64 scalar). Bfloat16 parameters step through float32 masters (the mixed-precision path),
// float32 and float64 ones directly. Returns every parameter (as float32 for bfloat16), then every
// moment.
Tensor adamw_steps(const Ins& x, bool clip) {
  const Device dev = x[0].device();
  std::vector<AdamWItem> items;
  for (size_t k = 0; k < 2; ++k) {
    AdamWItem it;
    it.param = x[2 * k].clone();
    it.grad = x[2 * k + 1];
    if (it.param.dtype() == DType::BF16) it.master = it.param.to(DType::F32);
    const DType state = it.param.dtype() == DType::F64 ? DType::F64 : DType::F32;  // the moments
    it.m = Tensor::zeros(it.param.shape(), state, dev);
    it.v = Tensor::zeros(it.param.shape(), state, dev);
    it.lr = 1e-2f;
    it.weight_decay = k == 0 ? 0.1f : 0.0f;
    it.grad_scale = 0.5f;
    items.push_back(it);
  }
  if (clip) {
    Tensor sumsq = Tensor::zeros({1}, DType::F64, dev);
    ops::add_sum_squares_({x[1], x[3]}, sumsq);
    for (AdamWItem& it : items) {
      it.clip_sumsq = sumsq;
      it.clip_max_norm = 0.5f;  // below the norm of ~26 standard normals: the clip acts
    }
  }
  for (int step = 1; step <= 3; ++step) {
    for (AdamWItem& it : items) {
      it.bias_correction1 = 1.0f - float(std::pow(double(it.beta1), step));
      it.bias_correction2 = 1.0f - float(std::pow(double(it.beta2), step));
    }
    ops::adamw_update_(items);
  }
  std::vector<Tensor> parts;
  for (const AdamWItem& it : items) parts.push_back(flat(it.param).to(it.m.dtype()));
  for (const AdamWItem& it : items) parts.push_back(ops::concat({flat(it.m), flat(it.v)}, 0));
  return ops::concat(parts, 0);
}

std::vector<OpCase> adamw_cases() {
  const std::vector<In> in = {constant({4, 5}), constant({4, 5}), constant({6}), constant({6})};
  std::vector<OpCase> c;
  c.push_back({"adamw_update_ 3 steps [4,5] decayed and [6] not", in,
               [](const Ins& x) { return adamw_steps(x, false); }});
  c.push_back({"adamw_update_ 3 steps clipped on the device by sum_squares", in,
               [](const Ins& x) { return adamw_steps(x, true); }});
  return c;
}

ARIA_OP_CASES(copy_cases);
ARIA_OP_CASES(inplace_cases);
ARIA_OP_CASES(adamw_cases);

}  // namespace
}  // namespace aria::testing
