#include "aria/model/gpt2_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/json_file.h"

namespace aria {

namespace {

using json = nlohmann::json;

// Anything larger is a typo or a corrupt file; no GPT-2 comes near it.
constexpr int64_t kMaxSize = 1'000'000;
// Each size can be in range while their product is absurd (n_layer = 1e6 at n_embd = 768 is 7e12
// parameters): a random init would try to allocate it. GPT-2 XL has 1.6e9; 1e11 leaves room for
// anything that fits a machine (400 GB as float32) and refuses the rest before any allocation.
constexpr double kMaxParameters = 1e11;

// The tanh approximation under its HF names. Plain "gelu" is the erf form: a different function,
// so a model trained with it would run subtly wrong here.
constexpr const char* kActivations[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"};

bool known_activation(const std::string& a) {
  for (const char* k : kActivations)
    if (a == k) return true;
  return false;
}

int get_size(const json& j, const char* key, const std::string& ctx) {
  const json& v = j.at(key);
  ARIA_CHECK(v.is_number_integer(), ctx, "'", key, "' must be an integer, got ", v.dump());
  int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMaxSize) ? kMaxSize + 1 : v.get<int64_t>();
  ARIA_CHECK(x >= 1 && x <= kMaxSize, ctx, "'", key, "' = ", v.dump(), " is out of range [1, ", kMaxSize, "]");
  return int(x);
}

bool get_bool(const json& j, const char* key, const std::string& ctx) {
  const json& v = j.at(key);
  ARIA_CHECK(v.is_boolean(), ctx, "'", key, "' must be true or false, got ", v.dump());
  return v.get<bool>();
}

}  // namespace

int64_t Gpt2Config::num_parameters() const {
  const int64_t d = n_embd;
  // per block: ln_1, ln_2 (2d each); c_attn d->3d; attn c_proj d->d; c_fc d->4d; mlp c_proj 4d->d.
  const int64_t block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d);
  // wte (shared with the lm head), wpe, blocks, ln_f.
  return int64_t(vocab_size) * d + int64_t(n_positions) * d + n_layer * block + 2 * d;
}

void validate_gpt2_config(const Gpt2Config& c) {
  auto size_ok = [](const char* key, int v) {
    ARIA_CHECK(v >= 1 && v <= kMaxSize, "gpt2 config: '", key, "' = ", v, " is out of range [1, ", kMaxSize, "]");
  };
  size_ok("vocab_size", c.vocab_size);
  size_ok("n_positions", c.n_positions);
  size_ok("n_embd", c.n_embd);
  size_ok("n_layer", c.n_layer);
  size_ok("n_head", c.n_head);
  ARIA_CHECK(c.n_embd % c.n_head == 0, "gpt2 config: 'n_embd' = ", c.n_embd, " is not divisible by 'n_head' = ",
             c.n_head);
  ARIA_CHECK(std::isfinite(c.layer_norm_epsilon) && c.layer_norm_epsilon > 0 && c.layer_norm_epsilon < 1,
             "gpt2 config: 'layer_norm_epsilon' = ", c.layer_norm_epsilon, " must be in (0, 1)");
  ARIA_CHECK(known_activation(c.activation_function), "gpt2 config: 'activation_function' = '", c.activation_function,
             "' is not supported: aria implements the tanh GELU only (gelu_new, gelu_pytorch_tanh, gelu_fast)");
  ARIA_CHECK(c.tie_word_embeddings, "gpt2 config: 'tie_word_embeddings' = false is not supported: GPT-2's lm head "
             "is tied to wte");
  // In double: the int64 count can overflow for sizes that are each in range.
  const double d = c.n_embd;
  const double params =
      double(c.vocab_size) * d + double(c.n_positions) * d + double(c.n_layer) * (12 * d * d + 13 * d) + 2 * d;
  if (params > kMaxParameters) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.3g parameters (%.3g GB as float32), more than the %.0e aria accepts", params,
                  params * 4 / 1e9, kMaxParameters);
    ARIA_FAIL("gpt2 config: n_layer = ", c.n_layer, ", n_embd = ", c.n_embd, ", vocab_size = ", c.vocab_size,
              ", n_positions = ", c.n_positions, " imply ", buf, " (a typo or a corrupt config?)");
  }
}

Gpt2Config load_gpt2_config(const std::string& path) {
  const std::string ctx = "gpt2 config '" + path + "': ";
  // read_file refuses a FIFO or a directory before opening it (open() on a FIFO blocks forever).
  json j = read_json_file(path, "gpt2 config", uint64_t(1) << 26);
  ARIA_CHECK(j.is_object(), ctx, "must be a JSON object, got ", j.type_name());

  if (j.contains("model_type")) {
    const json& m = j["model_type"];
    ARIA_CHECK(m.is_string() && m.get<std::string>() == "gpt2", ctx, "'model_type' must be \"gpt2\", got ", m.dump());
  }

  Gpt2Config c;
  if (j.contains("vocab_size")) c.vocab_size = get_size(j, "vocab_size", ctx);
  // n_ctx is the older name; the model's position table is sized by n_positions when both exist.
  if (j.contains("n_positions")) c.n_positions = get_size(j, "n_positions", ctx);
  else if (j.contains("n_ctx")) c.n_positions = get_size(j, "n_ctx", ctx);
  if (j.contains("n_embd")) c.n_embd = get_size(j, "n_embd", ctx);
  if (j.contains("n_layer")) c.n_layer = get_size(j, "n_layer", ctx);
  if (j.contains("n_head")) c.n_head = get_size(j, "n_head", ctx);
  if (j.contains("layer_norm_epsilon")) {
    const json& v = j["layer_norm_epsilon"];
    ARIA_CHECK(v.is_number(), ctx, "'layer_norm_epsilon' must be a number, got ", v.dump());
    c.layer_norm_epsilon = v.get<double>();
  }
  if (j.contains("activation_function")) {
    const json& v = j["activation_function"];
    ARIA_CHECK(v.is_string(), ctx, "'activation_function' must be a string, got ", v.dump());
    c.activation_function = v.get<std::string>();
  }
  if (j.contains("tie_word_embeddings")) c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", ctx);

  // HF keys that would change the computation. Everything else HF writes (dropouts, token ids,
  // summary_*, task_specific_params, ...) does not affect what aria builds and is ignored.
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    int inner = get_size(j, "n_inner", ctx);
    ARIA_CHECK(int64_t(inner) == 4 * int64_t(c.n_embd), ctx, "'n_inner' = ", inner,
               " is not supported: aria's MLP is 4 * n_embd = ", 4 * int64_t(c.n_embd));
  }
  if (j.contains("scale_attn_weights"))
    ARIA_CHECK(get_bool(j, "scale_attn_weights", ctx), ctx, "'scale_attn_weights' = false is not supported");
  if (j.contains("scale_attn_by_inverse_layer_idx"))
    ARIA_CHECK(!get_bool(j, "scale_attn_by_inverse_layer_idx", ctx), ctx,
               "'scale_attn_by_inverse_layer_idx' = true is not supported");
  if (j.contains("add_cross_attention"))
    ARIA_CHECK(!get_bool(j, "add_cross_attention", ctx), ctx, "'add_cross_attention' = true is not supported");

  try {
    validate_gpt2_config(c);
  } catch (const Error& e) {
    ARIA_FAIL(ctx, e.what());
  }
  return c;
}

void save_gpt2_config(const Gpt2Config& c, const std::string& path) {
  validate_gpt2_config(c);
  // Token 50256 is <|endoftext|> in the GPT-2 vocabulary; a smaller custom vocab gets its last id.
  const int eot = std::min(50256, c.vocab_size - 1);
  nlohmann::ordered_json j = {
      {"activation_function", c.activation_function},
      {"architectures", {"GPT2LMHeadModel"}},
      {"attn_pdrop", 0.1},
      {"bos_token_id", eot},
      {"embd_pdrop", 0.1},
      {"eos_token_id", eot},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", c.layer_norm_epsilon},
      {"model_type", "gpt2"},
      {"n_ctx", c.n_positions},
      {"n_embd", c.n_embd},
      {"n_head", c.n_head},
      {"n_inner", nullptr},
      {"n_layer", c.n_layer},
      {"n_positions", c.n_positions},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", 0.1},
      {"scale_attn_by_inverse_layer_idx", false},
      {"scale_attn_weights", true},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
  // Temporary beside `path`, fsync, rename, folder fsync: a crash leaves the old file or the new one.
  try {
    io::write_file_atomic(path, j.dump(2) + "\n");
  } catch (const Error& e) {
    ARIA_FAIL("gpt2 config '", path, "': ", e.what());
  }
}

Gpt2Config gpt2_preset(const std::string& name) {
  Gpt2Config c;  // defaults are GPT-2 small (d12)
  auto shape = [&](int layers, int embd, int heads) {
    c.n_layer = layers;
    c.n_embd = embd;
    c.n_head = heads;
  };
  if (name == "d12") shape(12, 768, 12);
  else if (name == "d24") shape(24, 1024, 16);
  else if (name == "d36") shape(36, 1280, 20);
  else if (name == "d48") shape(48, 1600, 25);
  else if (name == "tiny") shape(2, 64, 4), c.n_positions = 128;
  else if (name == "small-cpu") shape(4, 128, 4), c.n_positions = 256;
  else ARIA_FAIL("unknown GPT-2 preset '", name, "' (presets: d12, d24, d36, d48, tiny, small-cpu)");
  return c;
}

}  // namespace aria
