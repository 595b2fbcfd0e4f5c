// Llama-family decoders (model/llama.h, model/llama_config.h) on tiny random configs
// (tests/support/llama_tiny.h): config.json reading and its refusals, the forward equal to a plain
// float64 reference written out in this file (GQA, llama3 rope scaling, Qwen2 biases, Mistral's
// sliding window), tied and untied heads, float64 gradient checks of the loss, scoring windows, and
// CUDA against the CPU (skipped without a GPU). Checkpoints: test_llama_checkpoint.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "aria/model/llama.h"
#include "aria/model/lm_score.h"
#include "tests/support/llama_tiny.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

using namespace aria;
using json = nlohmann::json;
namespace fs = std::filesystem;
using testing::TempDir;
using testing::llama_family_name;
using testing::random_llama;
using testing::tiny_llama;

namespace {

// ---- a float64 reference forward, written with loops ---------------------------------------------

using Mat = std::vector<double>;  // row-major

Mat vals(const Tensor& t) {
  const Tensor d = t.detach().to(DType::F64).contiguous();
  const double* p = static_cast<const double*>(d.raw_data());
  return Mat(p, p + d.numel());
}

// y[r, o] = sum_i x[r, i] w[o, i] (+ b[o])
Mat lin(const Mat& x, int64_t rows, const Tensor& w, const Tensor& b) {
  const Mat W = vals(w);
  const int64_t out = w.size(0), in = w.size(1);
  const Mat B = b.defined() ? vals(b) : Mat(size_t(out), 0.0);
  Mat y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = B[size_t(o)];
      for (int64_t i = 0; i < in; ++i) s += x[size_t(r * in + i)] * W[size_t(o * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

Mat rms(const Mat& x, int64_t rows, const Tensor& w, double eps) {
  const Mat W = vals(w);
  const int64_t C = w.size(0);
  Mat y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < C; ++i) ss += x[size_t(r * C + i)] * x[size_t(r * C + i)];
    const double s = 1 / std::sqrt(ss / double(C) + eps);
    for (int64_t i = 0; i < C; ++i) y[size_t(r * C + i)] = x[size_t(r * C + i)] * s * W[size_t(i)];
  }
  return y;
}

// rotate_half RoPE on `heads` heads of width hd in rows of `width` columns, row t at position t.
void rope_rows(Mat& x, int64_t T, int64_t width, int heads, int hd, const std::vector<float>& inv) {
  for (int64_t t = 0; t < T; ++t)
    for (int h = 0; h < heads; ++h) {
      double* v = &x[size_t(t * width + h * hd)];
      for (int i = 0; i < hd / 2; ++i) {
        const double a = double(t) * double(inv[size_t(i)]), c = std::cos(a), s = std::sin(a);
        const double x1 = v[i], x2 = v[i + hd / 2];
        v[i] = x1 * c - x2 * s;
        v[i + hd / 2] = x2 * c + x1 * s;
      }
    }
}

// Logits [T, V] of one sequence, every step in float64 with an explicit causal / sliding-window mask.
Mat reference_logits(const LlamaModel& m, const std::vector<int32_t>& ids) {
  const LlamaConfig& c = m.config;
  const int64_t T = int64_t(ids.size()), C = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads,
                hd = c.head_dim;
  const Mat E = vals(m.embed);
  Mat x(size_t(T * C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) x[size_t(t * C + i)] = E[size_t(ids[size_t(t)] * C + i)];
  const auto inv = ops::rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LlamaLayer& L = m.layers[l];
    const int window = c.window_of_layer(int(l));
    const Mat a = rms(x, T, L.input_norm_w, c.rms_norm_eps);
    Mat q = lin(a, T, L.q_w, L.q_b), k = lin(a, T, L.k_w, L.k_b), v = lin(a, T, L.v_w, L.v_b);
    rope_rows(q, T, H * hd, int(H), int(hd), inv);
    rope_rows(k, T, KV * hd, int(KV), int(hd), inv);
    Mat att(size_t(T * H * hd), 0.0);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / KV);
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(size_t(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          if (window > 0 && j <= i - window) continue;  // the mask: keys i - window < j <= i
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += q[size_t(i * H * hd + h * hd + e)] * k[size_t(j * KV * hd + g * hd + e)];
          s[size_t(j)] = d / std::sqrt(double(hd));
          mx = std::max(mx, s[size_t(j)]);
        }
        double z = 0;
        for (int64_t j = 0; j <= i; ++j) z += std::isinf(s[size_t(j)]) ? 0 : std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j <= i; ++j) {
          if (std::isinf(s[size_t(j)])) continue;
          const double p = std::exp(s[size_t(j)] - mx) / z;
          for (int64_t e = 0; e < hd; ++e)
            att[size_t(i * H * hd + h * hd + e)] += p * v[size_t(j * KV * hd + g * hd + e)];
        }
      }
    }
    const Mat o = lin(att, T, L.o_w, L.o_b);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    const Mat b = rms(x, T, L.post_norm_w, c.rms_norm_eps);
    const Mat gate = lin(b, T, L.gate_w, Tensor()), up = lin(b, T, L.up_w, Tensor());
    Mat hmid(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) hmid[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
    const Mat d = lin(hmid, T, L.down_w, Tensor());
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  return lin(rms(x, T, m.norm_w, c.rms_norm_eps), T, m.head(), Tensor());
}

double max_diff(const Mat& a, const Tensor& b) {
  const Mat bv = vals(b);
  REQUIRE(a.size() == bv.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - bv[i]));
  return d;
}

json config_json(const LlamaConfig& c) {
  TempDir tmp("llama_cfg");
  save_llama_config(c, tmp.file("config.json"));
  return json::parse(testing::read_file(tmp.file("config.json")));
}

// load_llama_config of `j` written to a temporary file.
LlamaConfig load_json(const json& j) {
  TempDir tmp("llama_cfg");
  return load_llama_config(tmp.write(j.dump(), "config.json"));
}

}  // namespace

// ---- config.json ------------------------------------------------------------------------------------

TEST_CASE("llama config: the keys of each family are read, and save -> load gives the same config") {
  for (LlamaFamily f : testing::kLlamaFamilies) {
    CAPTURE(llama_family_name(f));
    const LlamaConfig c = tiny_llama(f);
    const json j = config_json(c);
    const LlamaConfig back = load_json(j);
    CHECK(back.family == f);
    CHECK(back.hidden_size == 16);
    CHECK(back.intermediate_size == 24);
    CHECK(back.num_key_value_heads == 2);
    CHECK(back.head_dim == 4);
    CHECK(back.rope_theta == c.rope_theta);
    CHECK(back.rope_scaling.type == c.rope_scaling.type);
    CHECK(back.rope_scaling.factor == c.rope_scaling.factor);
    CHECK(back.rope_scaling.original_max_position_embeddings == c.rope_scaling.original_max_position_embeddings);
    CHECK(back.qkv_bias == c.qkv_bias);
    CHECK(back.tie_word_embeddings == c.tie_word_embeddings);
    CHECK(back.window_of_layer(1) == c.window_of_layer(1));
  }
}

TEST_CASE("llama config: transformers' own key spellings") {
  // A config.json as transformers 4.4x writes a Llama 3.2: rope_scaling with rope_type llama3, no head_dim.
  json j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
            {"rope_theta", 500000.0}, {"hidden_act", "silu"}, {"mlp_bias", false}, {"attention_bias", false},
            {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"}, {"vocab_size", 1003}, {"pretraining_tp", 1},
            {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}};
  LlamaConfig c = load_json(j);
  CHECK(c.head_dim == 16);
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 32.0);
  CHECK(c.torch_dtype == "bfloat16");
  // transformers 5's rope_parameters and dtype.
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j.erase("torch_dtype");
  j["dtype"] = "float32";
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 123.0}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  c = load_json(j);
  CHECK(c.rope_theta == 123.0);
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.torch_dtype == "float32");
  // Llama's attention_bias: q/k/v and o biases.
  j["attention_bias"] = true;
  c = load_json(j);
  CHECK((c.qkv_bias && c.o_bias));
  // Qwen2: biases always; the window only from max_window_layers on, and only with use_sliding_window.
  json q = {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"hidden_size", 32},
            {"intermediate_size", 64}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"max_position_embeddings", 128}, {"sliding_window", 8},
            {"use_sliding_window", false}, {"max_window_layers", 2}, {"vocab_size", 50}, {"rope_scaling", nullptr}};
  c = load_json(q);
  CHECK((c.qkv_bias && !c.o_bias));
  CHECK(c.window_of_layer(3) == 0);
  q["use_sliding_window"] = true;
  c = load_json(q);
  CHECK(c.window_of_layer(1) == 0);
  CHECK(c.window_of_layer(2) == 8);
  q["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "full_attention"};
  c = load_json(q);
  CHECK(c.window_of_layer(0) == 8);
  CHECK(c.window_of_layer(2) == 0);
  // Mistral: every layer, or none when sliding_window is null.
  json mi = q;
  mi.erase("use_sliding_window");
  mi.erase("max_window_layers");
  mi.erase("layer_types");
  mi["architectures"] = {"MistralForCausalLM"};
  mi["model_type"] = "mistral";
  c = load_json(mi);
  CHECK((!c.qkv_bias && c.window_of_layer(0) == 8 && c.window_of_layer(3) == 8));
  mi["sliding_window"] = nullptr;
  CHECK(load_json(mi).window_of_layer(0) == 0);
}

TEST_CASE("llama config: unsupported or broken fields are refused, naming the field") {
  const json base = config_json(tiny_llama(LlamaFamily::Llama));
  auto refused = [&](const std::function<void(json&)>& edit, const std::string& msg) {
    json j = base;
    edit(j);
    CAPTURE(msg);
    CHECK_THROWS_WITH_AS(load_json(j), doctest::Contains(msg.c_str()), Error);
  };
  refused([](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, "'architectures' = [\"GPT2LMHeadModel\"] is not supported");
  refused([](json& j) { j["model_type"] = "gemma"; }, "'model_type' = \"gemma\" is not supported");
  refused([](json& j) { j["model_type"] = "qwen2"; }, "does not match 'architectures'");
  refused([](json& j) { j.erase("architectures"); j.erase("model_type"); }, "neither 'architectures' nor 'model_type'");
  refused([](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; }, "'rope_scaling.rope_type' = \"yarn\" is not supported");
  refused([](json& j) { j["rope_scaling"].erase("low_freq_factor"); }, "'rope_scaling.low_freq_factor' is missing");
  refused([](json& j) { j["rope_scaling"] = 3; }, "'rope_scaling' must be an object");
  refused([](json& j) { j["hidden_act"] = "gelu"; }, "'hidden_act' = \"gelu\" is not supported");
  refused([](json& j) { j["mlp_bias"] = true; }, "'mlp_bias' = true is not supported");
  refused([](json& j) { j.erase("hidden_size"); }, "missing 'hidden_size'");
  refused([](json& j) { j["hidden_size"] = "16"; }, "'hidden_size' must be an integer");
  refused([](json& j) { j["num_hidden_layers"] = 0; }, "'num_hidden_layers' = 0 is out of range");
  refused([](json& j) { j["vocab_size"] = 1e12; }, "'vocab_size' must be an integer");
  refused([](json& j) { j["num_key_value_heads"] = 3; }, "is not a multiple of 'num_key_value_heads' = 3");
  refused([](json& j) { j["head_dim"] = 5; }, "'head_dim' = 5 must be even");
  refused([](json& j) { j.erase("head_dim"); j["num_attention_heads"] = 3; j["num_key_value_heads"] = 3; },
          "is not divisible by 'num_attention_heads' = 3");
  refused([](json& j) { j["rms_norm_eps"] = -1; }, "'rms_norm_eps' = -1 must be in (0, 1)");
  refused([](json& j) { j["rope_theta"] = 0; }, "'rope_theta' = 0 must be > 0");
  refused([](json& j) { j["torch_dtype"] = "float8"; }, "'torch_dtype' = \"float8\" is not supported");
  refused([](json& j) { j["use_sliding_window"] = true; }, "'use_sliding_window' belongs to Qwen2");
  refused([](json& j) { j["layer_types"] = {"full_attention"}; }, "'layer_types' must list one type per layer");
  refused([](json& j) { j["layer_types"] = {"full_attention", "chunked_attention"}; }, "'layer_types' entry \"chunked_attention\"");
  refused([](json& j) { j["pretraining_tp"] = 2; }, "'pretraining_tp' = 2 is not supported");
  refused([](json& j) { j["tie_word_embeddings"] = 1; }, "'tie_word_embeddings' must be true or false");
  refused([](json& j) { j["hidden_size"] = 100000; j["intermediate_size"] = 1000000; j["num_hidden_layers"] = 100000; },
          "more than the 1e12 aria accepts");
  json mistral = config_json(tiny_llama(LlamaFamily::Mistral));
  mistral["attention_bias"] = true;
  CHECK_THROWS_WITH_AS(load_json(mistral), doctest::Contains("'attention_bias' = true is not supported for mistral"), Error);
  TempDir tmp("llama_cfg_bad");
  CHECK_THROWS_WITH_AS(load_llama_config(tmp.write("{not json", "config.json")), doctest::Contains("not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(load_llama_config(tmp.write("[1]", "c2.json")), doctest::Contains("must be a JSON object"), Error);
}

// ---- the forward ----------------------------------------------------------------------------------------

TEST_CASE("llama forward equals a float64 reference with loops: GQA, llama3 rope, Qwen2 biases, Mistral window") {
  const std::vector<int32_t> ids = {3, 17, 5, 36, 0, 9, 9, 21, 2, 30};
  const Tensor tids = Tensor::from_ints(ids, {1, int64_t(ids.size())});
  // The three families, and a Llama with attention_bias (q/k/v and o biases) and a tied head.
  LlamaConfig biased = tiny_llama(LlamaFamily::Llama);
  biased.qkv_bias = biased.o_bias = biased.tie_word_embeddings = true;
  for (const LlamaConfig& c : {tiny_llama(LlamaFamily::Llama), tiny_llama(LlamaFamily::Mistral),
                               tiny_llama(LlamaFamily::Qwen2), biased}) {
    CAPTURE(llama_family_name(c.family));
    CAPTURE(c.o_bias);
    const LlamaModel m = random_llama(c, 7).to(DType::F64);
    CHECK(m.num_parameters() == c.num_parameters());
    NoGradGuard ng;
    const Tensor logits = llama_logits(m, llama_hidden(m, tids));
    CHECK(logits.shape() == Shape{1, int64_t(ids.size()), 37});
    const Mat want = reference_logits(m, ids);
    CHECK(max_diff(want, logits) < 1e-10);
    // float32 agrees to rounding.
    const LlamaModel m32 = m.to(DType::F32);
    CHECK(max_diff(want, llama_logits(m32, llama_hidden(m32, tids))) < 1e-4);
  }
}

TEST_CASE("llama forward: the pieces each family adds change the logits (so the reference test can fail)") {
  const Tensor ids = Tensor::from_ints({3, 17, 5, 36, 0, 9, 9, 21, 2, 30}, {1, 10});
  NoGradGuard ng;
  auto logits = [&](const LlamaModel& m) { return llama_logits(m, llama_hidden(m, ids)); };
  // Mistral's window (3 < 10 tokens): the first 3 positions see everything anyway, the later ones do not.
  LlamaModel mi = random_llama(tiny_llama(LlamaFamily::Mistral), 3).to(DType::F64);
  LlamaModel full = mi;
  full.config.sliding_window = 0;
  const Tensor a = logits(mi), b = logits(full);
  CHECK(testing::max_abs_diff(a.slice(1, 0, 3), b.slice(1, 0, 3)) < 1e-12);
  CHECK(testing::max_abs_diff(a.slice(1, 3, 10), b.slice(1, 3, 10)) > 1e-3);
  // Qwen2's biases.
  LlamaModel q = random_llama(tiny_llama(LlamaFamily::Qwen2), 4);
  LlamaModel q0 = q.to(DType::F32);
  q0.layers[1].k_b.fill_(0.0);
  CHECK(testing::max_abs_diff(logits(q), logits(q0)) > 1e-3);
  // Untied head: lm_head, not the embedding, makes the logits.
  LlamaModel l = random_llama(tiny_llama(LlamaFamily::Llama), 5);
  const Tensor h = llama_hidden(l, ids);
  CHECK(testing::max_abs_diff(llama_logits(l, h), ops::matmul(h, l.lm_head, false, true)) == 0.0);
  CHECK(testing::max_abs_diff(llama_logits(l, h), ops::matmul(h, l.embed, false, true)) > 1e-3);
  // Tied: no lm_head tensor at all.
  for (auto& [name, t] : q.named_parameters()) CHECK(name != "lm_head.weight");
  CHECK(testing::max_abs_diff(llama_logits(q, llama_hidden(q, ids)), ops::matmul(llama_hidden(q, ids), q.embed, false, true)) == 0.0);
}

TEST_CASE("llama loss is transformers' shifted causal-LM loss, and gradients match finite differences in float64") {
  for (LlamaFamily f : testing::kLlamaFamilies) {
    CAPTURE(llama_family_name(f));
    LlamaModel m = random_llama(tiny_llama(f), 11).to(DType::F64);
    const std::vector<int32_t> ids = {1, 4, 9, 16, 25, 36, 12, 7};
    const Tensor tids = Tensor::from_ints(ids, {1, 8});
    std::vector<int32_t> lab = ids;
    lab[3] = -100;
    const Tensor labels = Tensor::from_ints(lab, {1, 8});
    {
      // The loss by hand from the logits: position t predicts labels[t + 1].
      NoGradGuard ng;
      const Tensor lg = llama_logits(m, llama_hidden(m, tids));
      const Mat v = vals(lg);
      double sum = 0;
      int n = 0;
      for (int t = 0; t + 1 < 8; ++t) {
        if (lab[size_t(t + 1)] < 0) continue;
        double mx = -INFINITY, z = 0;
        for (int k = 0; k < 37; ++k) mx = std::max(mx, v[size_t(t * 37 + k)]);
        for (int k = 0; k < 37; ++k) z += std::exp(v[size_t(t * 37 + k)] - mx);
        sum += mx + std::log(z) - v[size_t(t * 37 + lab[size_t(t + 1)])];
        ++n;
      }
      CHECK(std::abs(llama_causal_lm_loss(m, tids, labels).item() - sum / n) < 1e-12);
    }
    m.set_requires_grad(true);
    Tensor loss = llama_causal_lm_loss(m, tids, labels);
    loss.backward();
    // A few elements of several tensors, central differences.
    std::vector<std::pair<std::string, int64_t>> probes = {{"model.embed_tokens.weight", 16 * 4 + 3},
                                                           {"model.layers.0.self_attn.q_proj.weight", 5},
                                                           {"model.layers.1.self_attn.k_proj.weight", 17},
                                                           {"model.layers.0.self_attn.v_proj.weight", 40},
                                                           {"model.layers.1.self_attn.o_proj.weight", 33},
                                                           {"model.layers.0.mlp.gate_proj.weight", 50},
                                                           {"model.layers.1.mlp.up_proj.weight", 7},
                                                           {"model.layers.0.mlp.down_proj.weight", 90},
                                                           {"model.layers.1.input_layernorm.weight", 2},
                                                           {"model.layers.0.post_attention_layernorm.weight", 9},
                                                           {"model.norm.weight", 11}};
    if (f == LlamaFamily::Qwen2) probes.push_back({"model.layers.1.self_attn.k_proj.bias", 3});
    if (f != LlamaFamily::Qwen2) probes.push_back({"lm_head.weight", 100});
    for (auto& [name, idx] : probes) {
      CAPTURE(name);
      Tensor p;
      for (auto& [n, t] : m.named_parameters())
        if (n == name) p = t;
      REQUIRE(p.defined());
      const double analytic = vals(p.grad())[size_t(idx)];
      double* x = static_cast<double*>(p.raw_data()) + idx;
      const double x0 = *x, h = 1e-6;
      NoGradGuard ng;
      *x = x0 + h;
      const double lp = llama_causal_lm_loss(m, tids, labels).item();
      *x = x0 - h;
      const double lm = llama_causal_lm_loss(m, tids, labels).item();
      *x = x0;
      const double numeric = (lp - lm) / (2 * h);
      CHECK(std::abs(analytic - numeric) <= 1e-7 * std::max(1.0, std::abs(numeric)));
      CHECK(std::abs(numeric) > 1e-9);  // the probe reaches the loss
    }
  }
}

TEST_CASE("llama refuses a sequence longer than max_position_embeddings and bad ids") {
  LlamaModel m = random_llama(tiny_llama(LlamaFamily::Mistral), 1);
  CHECK_THROWS_WITH_AS(llama_hidden(m, testing::random_ids({1, 17}, 37, 1)),
                       doctest::Contains("sequence length 17 outside [1, max_position_embeddings = 16]"), Error);
  CHECK_THROWS_AS(llama_hidden(m, Tensor::from_ints({0, 37}, {1, 2})), Error);
  CHECK_THROWS_WITH_AS(llama_hidden(m, Tensor::zeros({1, 2})), doctest::Contains("ids must be int32 [B, T]"), Error);
  CHECK_NOTHROW(llama_hidden(m, testing::random_ids({2, 16}, 37, 1)));
}

TEST_CASE("llama_score_tokens: windows of max_position_embeddings overlapping by one, each transformers' loss") {
  const LlamaModel m = random_llama(tiny_llama(LlamaFamily::Qwen2), 61);  // 16 positions
  const Tensor all = testing::random_ids({1, 40}, 37, 3);
  const std::vector<int32_t> ids = all.to_ints();
  // Windows [0, 16), [15, 31), [30, 40): 15 + 15 + 9 predictions.
  double sum = 0;
  for (int64_t start : {0, 15, 30}) {
    const int64_t len = std::min<int64_t>(16, 40 - start);
    const Tensor w = all.slice(1, start, start + len).contiguous();
    NoGradGuard ng;
    sum += llama_causal_lm_loss(m, w, w).item() * double(len - 1);
  }
  for (int64_t batch : {1, 16}) {
    const LmScore r = llama_score_tokens(m, ids, LmScoreOptions{.max_batch = batch});
    CHECK(r.predicted == 39);
    CHECK(std::abs(r.mean() - sum / 39) <= 1e-6 * sum / 39);
  }
  CHECK_THROWS_WITH_AS(llama_score_tokens(m, {1, 37}), doctest::Contains("token 1 has id 37, outside the model's vocabulary of 37"), Error);
  CHECK_THROWS_WITH_AS(llama_score_tokens(m, {1}), doctest::Contains("at least 2 are needed"), Error);
}

// ---- CUDA ---------------------------------------------------------------------------------------------

TEST_CASE("llama forward and backward on CUDA equal the CPU's (float32), every family") {
  if (!testing::gpu_or_skip("llama model forward + backward, CUDA vs CPU")) return;
  const Tensor ids = testing::random_ids({2, 12}, 37, 9);
  for (LlamaFamily f : testing::kLlamaFamilies) {
    CAPTURE(llama_family_name(f));
    LlamaModel cpu = random_llama(tiny_llama(f), 51);
    LlamaModel gpu = cpu.to(Device::cuda(0));
    cpu.set_requires_grad(true);
    gpu.set_requires_grad(true);
    Tensor lc = llama_causal_lm_loss(cpu, ids, ids);
    Tensor lg = llama_causal_lm_loss(gpu, ids.to(Device::cuda(0)), ids);
    CHECK(std::abs(lc.item() - lg.item()) <= 1e-5 * std::abs(lc.item()));
    {
      NoGradGuard ng;
      testing::expect_close(llama_logits(gpu, llama_hidden(gpu, ids.to(Device::cuda(0)))).to(Device::cpu()),
                            llama_logits(cpu, llama_hidden(cpu, ids)), 1e-5, "logits");
    }
    lc.backward();
    lg.backward();
    const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i)
      testing::expect_close(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 1e-4, "grad " + pc[i].first);
  }
}

TEST_CASE("llama in bfloat16 on CUDA follows the float32 CPU model, and loads straight onto the GPU") {
  if (!testing::gpu_or_skip("llama model bf16 on CUDA vs float32 CPU")) return;
  const Tensor ids = testing::random_ids({2, 16}, 37, 10);
  for (LlamaFamily f : testing::kLlamaFamilies) {
    CAPTURE(llama_family_name(f));
    const LlamaModel cpu = random_llama(tiny_llama(f), 71);
    TempDir tmp("llama_gpu");
    llama_save(cpu, tmp.dir.string(), LlamaSaveOptions{.dtype = DType::BF16});
    LlamaModel gpu = llama_load(tmp.dir.string(), Device::cuda(0), LlamaLoadOptions{.dtype = DType::BF16});
    CHECK(gpu.device().is_cuda());
    const LlamaModel ref = cpu.to(DType::BF16).to(DType::F32);  // the same rounded weights in float32
    NoGradGuard ng;
    const Tensor want = llama_logits(ref, llama_hidden(ref, ids));
    const Tensor got = llama_logits(gpu, llama_hidden(gpu, ids.to(Device::cuda(0)))).to(Device::cpu()).to(DType::F32);
    testing::expect_close(got, want, 3e-2, "bf16 logits");
    const double lw = llama_causal_lm_loss(ref, ids, ids).item(), lg = llama_causal_lm_loss(gpu, ids.to(Device::cuda(0)), ids).item();
    CHECK(std::abs(lw - lg) <= 1e-2 * std::abs(lw));
  }
}
