// GPT-2 against Hugging Face transformers: logits, loss and gradients of a tiny random model saved
// by transformers (tests/fixtures/hf_tiny, made by tools/hf_reference/make_gpt2_fixtures.py), in
// float32 and float64; float16/bfloat16 checkpoints; save/load round trip; bad checkpoints.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/gpt2.h"
#include "aria/model/safetensors.h"
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
  GateValues gates;
  auto after = gpt2_hidden(m, ids, ForwardOptions{&gates});
  CHECK(testing::relative_l2(after, Tensor::from_floats(before, after.shape())) <= 1e-6);
  REQUIRE(gates.pi.size() == 2);
  CHECK(gates.pi[0].shape() == Shape{2, 3, 1});
  GateValues none;  // a plain GPT-2 hands back no gate values (one undefined entry per block)
  gpt2_hidden(gpt2_random(tiny_config(), 3), ids, ForwardOptions{&none});
  REQUIRE(none.pi.size() == 2);
  CHECK_FALSE(none.pi[0].defined());
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

// ---- non-finite weights (issue 19, item 2) ----

// Saves m's tensors in `dt` with element `index` of tensor `name` set to `value`.
static void save_with_value(const Gpt2Model& m, const fs::path& dir, DType dt, const std::string& name, int64_t index,
                            double value) {
  gpt2_save(m, dir.string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [n, t] : m.named_parameters()) {
    Tensor c = t.to(DType::F64).contiguous();
    if (n == name) static_cast<double*>(c.raw_data())[index] = value;
    tensors.emplace_back("transformer." + n, c.to(dt));
  }
  save_safetensors((dir / "model.safetensors").string(), tensors);
}

TEST_CASE("a checkpoint holding NaN or Inf is refused, naming the tensor and the first bad index") {
  Gpt2Model m = gpt2_random(tiny_config(), 5);
  fs::path dir = temp_dir("nonfinite");
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
    CAPTURE(dtype_name(dt));
    // h.1.attn.c_attn.weight is [12, 36]: flat index 40 is [1, 4].
    save_with_value(m, dir, dt, "h.1.attn.c_attn.weight", 40, std::nan(""));
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()),
                         doctest::Contains("tensor 'transformer.h.1.attn.c_attn.weight' holds a non-finite value "
                                           "(nan) at index 40 ([1, 4] of [12, 36])"),
                         Error);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("--allow-nonfinite"), Error);
    save_with_value(m, dir, dt, "wte.weight", 3, -INFINITY);
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("'transformer.wte.weight' holds a non-finite "
                                                                     "value (-inf) at index 3 ([0, 3] of [50, 12])"),
                         Error);
    // The explicit opt-in loads it, value and all.
    Gpt2Model back = gpt2_load(dir.string(), Device::cpu(), Gpt2LoadOptions{.allow_nonfinite = true});
    CHECK(std::isinf(back.wte.to_floats()[3]));
    CHECK(back.wte.to_floats()[4] == doctest::Approx(m.wte.to_floats()[4]).epsilon(1e-2));
  }
  // A float64 value beyond float32's range loads as Inf: refused too, and the message says why.
  save_with_value(m, dir, DType::F64, "ln_f.bias", 11, 1e300);
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()),
                       doctest::Contains("'transformer.ln_f.bias' holds a non-finite value (inf: the float64 value "
                                         "1e+300 is beyond float32's range) at index 11"),
                       Error);
  // A finite checkpoint in every dtype still loads.
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
    save_with_value(m, dir, dt, "wte.weight", 0, 0.5);
    CHECK_NOTHROW(gpt2_load(dir.string()));
  }
}

TEST_CASE("first_nonfinite finds the first NaN or Inf in every float dtype") {
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
    CAPTURE(dtype_name(dt));
    std::vector<double> v(10000, 1.5);
    CHECK(first_nonfinite(Tensor::from_vector(v, {10000}, dt)) == -1);
    v[9000] = INFINITY;  // a later block
    v[5000] = std::nan("");
    CHECK(first_nonfinite(Tensor::from_vector(v, {10000}, dt)) == 5000);
    v[0] = -INFINITY;
    CHECK(first_nonfinite(Tensor::from_vector(v, {100, 100}, dt)) == 0);
  }
  CHECK(first_nonfinite(Tensor::from_ints({1, 2, 3}, {3})) == -1);  // integers are always finite
}

TEST_CASE("a NaN tied lm_head equal to a NaN wte loads with allow_nonfinite") {
  Gpt2Model m = gpt2_random(tiny_config(), 6);
  fs::path dir = temp_dir("nonfinite_head");
  gpt2_save(m, dir.string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  Tensor wte = m.wte.contiguous().to(DType::F32);
  static_cast<float*>(wte.raw_data())[7] = NAN;
  for (auto& [n, t] : m.named_parameters()) tensors.emplace_back(n, n == "wte.weight" ? wte : t);
  tensors.emplace_back("lm_head.weight", wte);
  save_safetensors((dir / "model.safetensors").string(), tensors);
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("'wte.weight' holds a non-finite value"), Error);
  Gpt2Model back = gpt2_load(dir.string(), Device::cpu(), Gpt2LoadOptions{.allow_nonfinite = true});
  CHECK(std::isnan(back.wte.to_floats()[7]));
}

// ---- sizes checked before allocation (issue 19, item 8) ----

TEST_CASE("a config claiming a million layers is refuted by the checkpoint's header before allocation") {
  // Before: 1e6 blocks and a 16e6-entry shape table were built (gigabytes, tens of seconds) before the
  // first missing tensor was noticed. Now nothing is allocated for the config's layers until the
  // header has every one of them, so this returns at once.
  Gpt2Model m = gpt2_random(tiny_config(), 1);
  fs::path dir = temp_dir("huge_config");
  gpt2_save(m, dir.string());
  std::ofstream(dir / "config.json")
      << R"({"model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 12, "n_head": 3,
            "n_layer": 1000000})";
  const std::string want = "missing tensor 'h.2.ln_1.weight' (config.json '" + (dir / "config.json").string() +
                           "' implies 12000004 tensors with n_layer = 1000000; the file holds 28)";
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains(want.c_str()), Error);
  // Larger sizes than the file: the first tensor's shape disagrees, named with the config's shape.
  std::ofstream(dir / "config.json")
      << R"({"model_type": "gpt2", "vocab_size": 1000000, "n_positions": 16, "n_embd": 12, "n_head": 3, "n_layer": 2})";
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("config.json implies [1000000, 12]"), Error);
  // Fewer layers than the file: the extra layer's tensors are unexpected.
  std::ofstream(dir / "config.json")
      << R"({"model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 12, "n_head": 3, "n_layer": 1})";
  CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains("unexpected tensor 'transformer.h.1."), Error);
}

TEST_CASE("tensor names must be GPT-2's exactly: no leading zeros, no layer beyond n_layer") {
  Gpt2Model m = gpt2_random(tiny_config(), 2);
  fs::path dir = temp_dir("names");
  gpt2_save(m, dir.string());
  for (const char* bad : {"h.01.ln_1.weight", "h.2.ln_1.weight", "h..ln_1.weight", "h.0.ln_3.weight", "h.0"}) {
    CAPTURE(bad);
    auto params = m.named_parameters();
    params.emplace_back(bad, Tensor::zeros({12}));
    save_safetensors((dir / "model.safetensors").string(), params);
    const std::string want = std::string("unexpected tensor '") + bad + "'";
    CHECK_THROWS_WITH_AS(gpt2_load(dir.string()), doctest::Contains(want.c_str()), Error);
  }
}

TEST_CASE("random init refuses a config whose parameter count is absurd, before allocating") {
  Gpt2Config c = tiny_config();
  c.n_layer = 1000000;
  c.n_embd = 768;
  c.n_head = 12;
  CHECK_THROWS_WITH_AS(gpt2_random(c, 1), doctest::Contains("n_layer = 1000000, n_embd = 768"), Error);
  CHECK_THROWS_WITH_AS(gpt2_random(c, 1), doctest::Contains("parameters"), Error);
  CHECK_THROWS_WITH_AS(gpt2_random(c, 1), doctest::Contains("more than the 1e+11 aria accepts"), Error);
}
