// GPT-2 against Hugging Face transformers: logits, loss and gradients of a tiny random model saved
// by transformers (tests/fixtures/hf_tiny, made by tools/hf_reference/make_gpt2_fixtures.py), in
// float32 and float64; float16/bfloat16 checkpoints; save/load round trip; bad checkpoints.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "model/gated_mlp.h"
#include "model/gpt2.h"
#include "model/safetensors.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

static const std::string kFixture = std::string(ARIA_SOURCE_DIR) + "/tests/fixtures/hf_tiny";

struct Reference {
  Tensor ids, targets;  // int32 [B, T]; targets are labels shifted left (HF's loss), -100 at the end
  SafeTensorsFile file;
};

static Reference load_reference() {
  Reference r{Tensor(), Tensor(), SafeTensorsFile::open(kFixture + "/reference.safetensors")};
  r.ids = r.file.load("input_ids", DType::I32);
  auto labels = r.file.load("labels", DType::I32).to_ints();
  const int64_t B = r.ids.size(0), T = r.ids.size(1);
  std::vector<int32_t> tg(size_t(B * T), -100);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) tg[size_t(b * T + t)] = labels[size_t(b * T + t + 1)];
  r.targets = Tensor::from_ints(tg, {B, T});
  return r;
}

static void check_model_against_reference(const Gpt2Model& m, const Reference& ref, double tol_logits,
                                          double tol_loss, double tol_grad) {
  for (auto& [n, p] : m.named_parameters()) p.zero_grad();
  Tensor logits = gpt2_logits(m, gpt2_hidden(m, ref.ids));
  CHECK(testing::relative_l2(logits, ref.file.load("logits", DType::F64)) <= tol_logits);
  Tensor loss = ops::cross_entropy(logits, ref.targets, -100);
  double want = ref.file.load("loss", DType::F64).item();
  CHECK(std::abs(loss.item() - want) / want <= tol_loss);
  loss.backward();
  for (auto& [name, p] : m.named_parameters()) {
    if (!ref.file.find("grad." + name)) continue;
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    CHECK(testing::relative_l2(p.grad(), ref.file.load("grad." + name, DType::F64)) <= tol_grad);
  }
}

TEST_CASE("tiny GPT-2 matches transformers: logits, loss and gradients") {
  REQUIRE_MESSAGE(fs::exists(kFixture + "/model.safetensors"),
                  "missing fixture; run tools/hf_reference/make_gpt2_fixtures.py on a machine with transformers");
  Reference ref = load_reference();
  Gpt2Model m = gpt2_load(kFixture);
  CHECK(m.config.n_layer == 2);
  SUBCASE("float32") {
    m.set_requires_grad(true);
    check_model_against_reference(m, ref, 1e-5, 1e-5, 1e-4);
  }
  SUBCASE("float64 agrees to rounding") {
    Gpt2Model m64 = m.to(DType::F64);
    m64.set_requires_grad(true);
    check_model_against_reference(m64, ref, 1e-10, 1e-10, 1e-9);
  }
}

TEST_CASE("bfloat16 and float16 checkpoints load and match transformers") {
  Reference ref = load_reference();
  for (const char* tag : {"bf16", "f16"}) {
    CAPTURE(tag);
    Gpt2Model m = gpt2_load(kFixture + "/" + tag);
    NoGradGuard ng;
    Tensor logits = gpt2_logits(m, gpt2_hidden(m, ref.ids));
    CHECK(testing::relative_l2(logits, ref.file.load(std::string("logits_") + tag, DType::F64)) <= 1e-5);
  }
}

static fs::path temp_dir(const std::string& name) { return testing::fresh_temp_dir("aria_test_gpt2_" + name); }

static Gpt2Config tiny_config() {
  return testing::tiny_gpt2_config(/*vocab_size=*/50, /*n_positions=*/16, /*n_embd=*/12, /*n_layer=*/2, /*n_head=*/3);
}

TEST_CASE("save then load gives the same model and outputs") {
  Gpt2Model m = gpt2_random(tiny_config(), 7);
  fs::path dir = temp_dir("roundtrip");
  gpt2_save(m, dir.string());
  Gpt2Model back = gpt2_load(dir.string());
  auto a = m.named_parameters(), b = back.named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.to_floats() == b[i].second.to_floats());
  }
  CHECK(m.num_parameters() == back.num_parameters());
}

TEST_CASE("injecting the gated MLP leaves the output unchanged") {
  Gpt2Model m = gpt2_random(tiny_config(), 3);
  Tensor ids = Tensor::from_ints({1, 5, 9, 3, 7, 2}, {2, 3});
  NoGradGuard ng;
  auto before = gpt2_hidden(m, ids).to_floats();
  inject_gated_mlp(m, 11, 0.5);  // a large gate init: pi far from 0.5 must not matter either
  auto after = gpt2_hidden(m, ids);
  CHECK(testing::relative_l2(after, Tensor::from_floats(before, after.shape())) <= 1e-6);
  CHECK(m.blocks[0].gated->last_pi.shape() == Shape{2, 3, 1});
}

TEST_CASE("bad checkpoints give clear errors") {
  Gpt2Model m = gpt2_random(tiny_config(), 1);
  fs::path dir = temp_dir("bad");
  CHECK_THROWS_WITH_AS(gpt2_load((dir / "nope").string()), doctest::Contains("does not exist"), Error);
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("config.json"), Error);
  gpt2_save(m, dir.string());
  fs::path st = dir / "model.safetensors";

  SUBCASE("missing tensor") {
    auto params = m.named_parameters();
    std::vector<std::pair<std::string, Tensor>> some(params.begin() + 1, params.end());
    save_safetensors(st.string(), some);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("missing tensor 'wte.weight'"), Error);
  }
  SUBCASE("wrong shape") {
    auto params = m.named_parameters();
    params[1].second = Tensor::zeros({3, 12});
    save_safetensors(st.string(), params);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("has shape [3, 12]"), Error);
  }
  SUBCASE("unexpected tensor") {
    auto params = m.named_parameters();
    params.emplace_back("h.7.mlp.c_fc.weight", Tensor::zeros({2}));
    save_safetensors(st.string(), params);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("unexpected tensor"), Error);
  }
  SUBCASE("no safetensors file") {
    fs::remove(st);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("model.safetensors"), Error);
  }
  SUBCASE("truncated safetensors file") {
    fs::resize_file(st, fs::file_size(st) / 2);
    CHECK_THROWS_AS(gpt2_load(dir.string()), Error);
  }
  SUBCASE("sequence longer than the context") {
    std::vector<int32_t> ids(17, 1);
    CHECK_THROWS_WITH_AS(gpt2_hidden(m, Tensor::from_ints(ids, {1, 17})), doctest::Contains("n_positions"), Error);
  }
}
