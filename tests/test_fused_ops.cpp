// The fused ops equal the plain compositions they replace, forward and backward, in float64 on the
// CPU (to rounding), where the op-case table cannot say it: activation recomputation, the classifier's
// chunk budgets and a scaled upstream gradient, the GPT-2 loss through the fused path vs the plain
// path. (gelu_mlp and add_layernorm against their compositions: the references of
// tests/support/cases_fused.cpp, checked by test_gradcheck.)
#include <doctest/doctest.h>

#include "aria/core/autograd.h"
#include "aria/core/context.h"
#include "aria/core/ops.h"
#include "aria/core/ops_capture.h"
#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

using namespace aria;
using namespace aria::testing;

namespace {

Tensor randn_grad(const Shape& s, uint64_t seed, double std = 1.0) {
  Tensor t = Tensor::empty(s, DType::F64);
  Rng(seed).fill_normal(t, 0.0, std);
  t.set_requires_grad(true);
  return t;
}

using testing::value_and_grads;

void check_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a[i].defined());
    REQUIRE(b[i].defined());
    CHECK(relative_l2(a[i], b[i]) <= 1e-12);
  }
}

}  // namespace

TEST_CASE("gelu_mlp with activation recomputation gives the same gradients") {
  Tensor x = randn_grad({7, 6}, 21), w1 = randn_grad({6, 12}, 22), b1 = randn_grad({12}, 23), w2 = randn_grad({12, 6}, 24), b2 = randn_grad({6}, 25);
  auto f = [&] { return ops::gelu_mlp(x, w1, b1, w2, b2); };
  auto kept = value_and_grads(f, {x, w1, b1, w2, b2});
  context().recompute_activations = true;
  auto recomputed = value_and_grads(f, {x, w1, b1, w2, b2});
  context().recompute_activations = false;
  check_equal(recomputed, kept);
}

TEST_CASE("lm_head_cross_entropy equals cross_entropy(matmul), with ignored targets and a scaled upstream") {
  Tensor h = randn_grad({2, 7, 6}, 10), w = randn_grad({13, 6}, 11);
  std::vector<int32_t> t = {1, 5, -100, 12, 0, 3, 3, -100, 7, 8, 2, 11, 4, 6};
  Tensor targets = Tensor::from_ints(t, {2, 7});
  auto run = [&](bool fused) {
    h.zero_grad();
    w.zero_grad();
    Tensor loss = fused ? ops::lm_head_cross_entropy(h, w, targets) : ops::cross_entropy(ops::matmul(h, w, false, true), targets);
    ops::scale(loss, 2.5).backward();  // an upstream gradient other than 1 scales the precomputed grads
    return std::vector<Tensor>{loss.detach(), h.grad(), w.grad()};
  };
  const auto plain = run(false);
  // One chunk (the default budget), then logits budgets of 1, 3 and 5 rows of 13 float64 logits:
  // 14 rows in 14, 5 and 3 chunks, the last one short, dW accumulated across them.
  const int64_t saved = context().lm_head_chunk_bytes;
  for (int64_t rows : {int64_t(0), int64_t(1), int64_t(3), int64_t(5)}) {
    CAPTURE(rows);
    if (rows) context().lm_head_chunk_bytes = rows * 13 * 8;
    check_equal(run(true), plain);
  }
  context().lm_head_chunk_bytes = saved;
}

TEST_CASE("lm_head_cross_entropy: every target ignored gives loss 0 and zero gradients, bad targets are errors") {
  Tensor h = randn_grad({3, 4}, 12), w = randn_grad({5, 4}, 13);
  Tensor loss = ops::lm_head_cross_entropy(h, w, Tensor::from_ints({-100, -100, -100}, {3}));
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (double g : h.grad().to_doubles()) CHECK(g == 0.0);
  CHECK_THROWS_WITH_AS(ops::lm_head_cross_entropy(h, w, Tensor::from_ints({0, 5, 1}, {3})),
                       doctest::Contains("out of range"), Error);
  CHECK_THROWS_AS(ops::lm_head_cross_entropy(h, w, Tensor::from_ints({0, 1}, {2})), Error);
}

TEST_CASE("GPT-2 loss and gradients: fused path equals the plain path") {
  // The plain path is what runs when a forward is given a per-sample capture sink; a pass-through
  // sink selects it here.
  struct PassThrough : ops::CaptureSink {
    Tensor on_linear(const Tensor&, const Tensor&, const Tensor&, const Tensor& y) override { return y; }
    Tensor on_layernorm(const Tensor&, const Tensor&, const Tensor&, double, const Tensor& y) override { return y; }
    Tensor on_embedding(const Tensor&, const Tensor&, const Tensor& y) override { return y; }
  };
  Gpt2Config cfg = gpt2_preset("tiny");
  Gpt2Model m = gpt2_random(cfg, 5).to(DType::F64);
  m.set_requires_grad(true);
  Rng rng(6);
  std::vector<int32_t> ids(2 * 9), tg(ids.size());
  for (auto& v : ids) v = int32_t(rng.below(uint64_t(cfg.vocab_size)));
  for (auto& v : tg) v = int32_t(rng.below(uint64_t(cfg.vocab_size)));
  tg[4] = -100;
  const Tensor x = Tensor::from_ints(ids, {2, 9}), y = Tensor::from_ints(tg, {2, 9});
  auto run = [&](bool plain) {
    PassThrough obs;
    Tensor loss = gpt2_lm_loss(m, x, y, ForwardOptions{nullptr, plain ? &obs : nullptr});
    for (const auto& [name, p] : m.named_parameters()) p.zero_grad();
    loss.backward();
    std::vector<Tensor> r{loss.detach()};
    for (const auto& [name, p] : m.named_parameters()) r.push_back(p.grad().clone());
    return r;
  };
  check_equal(run(false), run(true));
}

TEST_CASE("bfloat16 compute is refused on the CPU with a clear error, bf16 meets float32 only by promotion") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}, DType::BF16), b = Tensor::from_vector({1, 2, 3}, {3}, DType::BF16);
  CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("bfloat16 compute runs on CUDA only"), Error);
  CHECK_THROWS_WITH_AS(ops::gelu(a), doctest::Contains("bfloat16 compute runs on CUDA only"), Error);
  CHECK_THROWS_WITH_AS(ops::matmul(a.reshape({1, 3}), b.reshape({3, 1})), doctest::Contains("CUDA only"), Error);
  // float32 with float64 stays an error (no silent widening outside mixed precision)
  CHECK_THROWS_WITH_AS(ops::add(Tensor::zeros({2}, DType::F32), Tensor::zeros({2}, DType::F64)),
                       doctest::Contains("dtypes differ"), Error);
}
