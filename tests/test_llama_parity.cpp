// Llama-family models against Hugging Face transformers: tiny random LlamaForCausalLM (Llama 3 style),
// MistralForCausalLM (sliding window shorter than the text, sharded checkpoint) and Qwen2ForCausalLM
// (q/k/v biases) saved by transformers with their tokenizer.json and expected.json in
// tests/fixtures/llama/<family>/ (tools/hf_reference/make_llama_fixtures.py). In float32 on the CPU:
// token ids equal, logits within a relative 1e-5, the loss within 1e-5 and every gradient within 1e-4
// of transformers' float64 values. A case is skipped while its fixture folder is absent.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "aria/core/autograd.h"
#include "aria/model/llama.h"
#include "aria/model/lm_score.h"
#include "aria/model/tokenizer.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

using namespace aria;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ARIA_LLAMA_FIXTURES points at another folder of fixtures (a fresh output of the script).
std::string fixtures_root() {
  const char* env = std::getenv("ARIA_LLAMA_FIXTURES");
  return env && *env ? std::string(env) + "/" : std::string(ARIA_SOURCE_DIR) + "/tests/fixtures/llama/";
}

// ||got - want|| / ||want|| over two value lists.
double rel_l2(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

std::vector<double> doubles(const json& j) { return j.get<std::vector<double>>(); }

void check_family(const std::string& family, LlamaFamily want_family) {
  const std::string dir = fixtures_root() + family;
  if (!fs::exists(dir + "/expected.json")) {
    testing::skip_case("fixture absent", dir + " (run python3 tools/hf_reference/make_llama_fixtures.py where "
                                               "torch and transformers are installed)");
    return;
  }
  const json ex = json::parse(testing::read_file(dir + "/expected.json"));
  INFO("transformers ", ex["transformers"].get<std::string>());
  LlamaModel m = llama_load(dir);
  CHECK(m.config.family == want_family);
  CHECK(m.dtype() == DType::F32);
  if (want_family == LlamaFamily::Mistral) CHECK(m.config.window_of_layer(0) > 0);
  if (want_family == LlamaFamily::Qwen2) CHECK(m.config.qkv_bias);

  // Token ids, with the BOS the tokenizer's template adds.
  const Tokenizer tok = load_tokenizer_for(dir);
  const std::vector<int32_t> ids = tok.encode(ex["text"].get<std::string>(), true);
  const std::vector<int32_t> want_ids = ex["ids"].get<std::vector<int32_t>>();
  REQUIRE(ids == want_ids);
  const int64_t T = int64_t(ids.size()), V = m.config.vocab_size;
  REQUIRE(ex["logits_shape"] == json::array({T, V}));
  if (want_family == LlamaFamily::Mistral) CHECK(m.config.window_of_layer(0) < T);

  const Tensor tids = Tensor::from_ints(ids, {1, T});
  m.set_requires_grad(true);
  const Tensor hidden = llama_hidden(m, tids);
  const Tensor logits = llama_logits(m, hidden);
  REQUIRE(logits.shape() == Shape{1, T, V});
  {
    const std::vector<float> lf = logits.detach().to_floats();
    auto at = [&](int64_t t, int64_t v) { return double(lf[size_t(t * V + v)]); };
    const int64_t cols = ex["logit_cols"].get<int64_t>();
    std::vector<double> got, want;
    for (int64_t t = 0; t < T; ++t) {
      const auto row = doubles(ex["logits_head"][size_t(t)]);
      for (int64_t v = 0; v < cols; ++v) got.push_back(at(t, v)), want.push_back(row[size_t(v)]);
    }
    CHECK(rel_l2(got, want) <= 1e-5);
    const auto pos = ex["logits_rows"]["positions"].get<std::vector<int64_t>>();
    for (size_t k = 0; k < pos.size(); ++k) {
      CAPTURE(pos[k]);
      std::vector<double> g;
      for (int64_t v = 0; v < V; ++v) g.push_back(at(pos[k], v));
      CHECK(rel_l2(g, doubles(ex["logits_rows"]["values"][k])) <= 1e-5);
    }
    double n2 = 0;
    for (float x : lf) n2 += double(x) * double(x);
    CHECK(std::abs(std::sqrt(n2) - ex["logits_norm"].get<double>()) <= 1e-5 * ex["logits_norm"].get<double>());
  }

  // `aria score`'s number: transformers' own float32 model(ids, labels=ids).loss.
  if (ex.contains("loss_transformers_f32")) {
    const double want = ex["loss_transformers_f32"].get<double>();
    CHECK(std::abs(llama_score_tokens(m, ids).mean() - want) <= 1e-5 * std::abs(want));
  }
  // transformers' shifted causal-LM loss (labels = ids) and the gradients of every parameter.
  Tensor loss = llama_causal_lm_loss(m, tids, tids);
  const double want_loss = ex["loss"].get<double>();
  CHECK(std::abs(loss.item() - want_loss) <= 1e-5 * std::abs(want_loss));
  loss.backward();
  size_t checked = 0;
  for (auto& [name, p] : m.named_parameters()) {
    CAPTURE(name);
    REQUIRE(ex["grads"].contains(name));
    const json& g = ex["grads"][name];
    REQUIRE(p.grad().defined());
    const std::vector<float> gv = p.grad().to_floats();
    double n2 = 0;
    for (float x : gv) n2 += double(x) * double(x);
    const double want_norm = g["norm"].get<double>();
    CHECK(std::abs(std::sqrt(n2) - want_norm) <= 1e-4 * want_norm);
    std::vector<double> got;
    for (int64_t i : g["indices"].get<std::vector<int64_t>>()) got.push_back(gv.at(size_t(i)));
    // Sampled values against the tensor's scale: a single value near zero has no relative precision.
    const std::vector<double> want = doubles(g["values"]);
    double num = 0;
    for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]);
    const double rms = want_norm / std::sqrt(double(gv.size()));
    CHECK(std::sqrt(num / double(got.size())) <= 1e-4 * std::max(rms, 1e-30));
    ++checked;
  }
  CHECK(checked == ex["grads"].size());  // every tensor transformers has, and no other
}

}  // namespace

TEST_CASE("llama fixture (Llama 3 style: GQA, llama3 rope, untied head) equals transformers") {
  check_family("llama", LlamaFamily::Llama);
}
TEST_CASE("mistral fixture (sliding window shorter than the text, sharded) equals transformers") {
  check_family("mistral", LlamaFamily::Mistral);
}
TEST_CASE("qwen2 fixture (q/k/v biases) equals transformers") { check_family("qwen2", LlamaFamily::Qwen2); }
