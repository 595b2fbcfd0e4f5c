#include "aria/model/llama_config.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/json_file.h"

namespace aria {

namespace {

using json = nlohmann::json;

constexpr int64_t kMaxSize = 10'000'000;  // any single size beyond this is a typo or a corrupt file
constexpr double kMaxParameters = 1e12;   // 4 TB as float32: refused before any allocation

struct Reader {
  const json& j;
  std::string ctx;

  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
  int size(const char* key, const json& v, int64_t lo = 1) const {
    ARIA_CHECK(v.is_number_integer(), ctx, "'", key, "' must be an integer, got ", v.dump());
    const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMaxSize) ? kMaxSize + 1 : v.get<int64_t>();
    ARIA_CHECK(x >= lo && x <= kMaxSize, ctx, "'", key, "' = ", v.dump(), " is out of range [", lo, ", ", kMaxSize, "]");
    return int(x);
  }
  int size(const char* key) const {
    ARIA_CHECK(has(key), ctx, "missing '", key, "'");
    return size(key, j.at(key));
  }
  double number(const char* key, const json& v) const {
    ARIA_CHECK(v.is_number(), ctx, "'", key, "' must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key) const {
    const json& v = j.at(key);
    ARIA_CHECK(v.is_boolean(), ctx, "'", key, "' must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const json& v) const {
    ARIA_CHECK(v.is_string(), ctx, "'", key, "' must be a string, got ", v.dump());
    return v.get<std::string>();
  }
};

struct FamilyName {
  LlamaFamily family;
  const char* arch;
  const char* type;
};
constexpr FamilyName kFamilies[] = {{LlamaFamily::Llama, "LlamaForCausalLM", "llama"},
                                    {LlamaFamily::Mistral, "MistralForCausalLM", "mistral"},
                                    {LlamaFamily::Qwen2, "Qwen2ForCausalLM", "qwen2"}};

const FamilyName& names_of(LlamaFamily f) {
  for (const auto& n : kFamilies)
    if (n.family == f) return n;
  return kFamilies[0];
}

LlamaFamily read_family(const Reader& r) {
  const FamilyName* by_arch = nullptr;
  if (r.has("architectures")) {
    const json& a = r.j.at("architectures");
    ARIA_CHECK(a.is_array() && a.size() == 1 && a[0].is_string(), r.ctx,
               "'architectures' must be a list of one string, got ", a.dump());
    const std::string s = a[0].get<std::string>();
    for (const auto& n : kFamilies)
      if (s == n.arch) by_arch = &n;
    ARIA_CHECK(by_arch, r.ctx, "'architectures' = ", a.dump(),
               " is not supported (Llama-family models: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }
  if (r.has("model_type")) {
    const std::string s = r.string("model_type", r.j.at("model_type"));
    const FamilyName* by_type = nullptr;
    for (const auto& n : kFamilies)
      if (s == n.type) by_type = &n;
    ARIA_CHECK(by_type, r.ctx, "'model_type' = \"", s, "\" is not supported (llama, mistral, qwen2)");
    ARIA_CHECK(!by_arch || by_arch == by_type, r.ctx, "'model_type' = \"", s, "\" does not match 'architectures' = ",
               by_arch->arch);
    return by_type->family;
  }
  ARIA_CHECK(by_arch, r.ctx, "neither 'architectures' nor 'model_type' says which model this is");
  return by_arch->family;
}

// rope_theta and rope_scaling from transformers 4.x keys or 5.x's rope_parameters.
void read_rope(const Reader& r, LlamaConfig& c) {
  if (r.has("rope_theta")) c.rope_theta = r.number("rope_theta", r.j.at("rope_theta"));
  const char* key = r.has("rope_parameters") ? "rope_parameters" : r.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (!key) return;
  const json& s = r.j.at(key);
  ARIA_CHECK(s.is_object(), r.ctx, "'", key, "' must be an object or null, got ", s.dump());
  const std::string field = std::string(key) + ".";
  auto num = [&](const char* k) { return r.number((field + k).c_str(), s.at(k)); };
  if (s.contains("rope_theta")) c.rope_theta = num("rope_theta");
  std::string type = "default";
  if (s.contains("rope_type")) type = r.string((field + "rope_type").c_str(), s.at("rope_type"));
  else if (s.contains("type")) type = r.string((field + "type").c_str(), s.at("type"));
  ARIA_CHECK(type == "default" || type == "llama3", r.ctx, "'", field, "rope_type' = \"", type,
             "\" is not supported (default or llama3)");
  if (s.contains("partial_rotary_factor"))
    ARIA_CHECK(num("partial_rotary_factor") == 1.0, r.ctx, "'", field, "partial_rotary_factor' must be 1");
  c.rope_scaling.type = type;
  if (type != "llama3") return;
  for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
    ARIA_CHECK(s.contains(k), r.ctx, "'", field, k, "' is missing (rope_type llama3 needs it)");
  c.rope_scaling.factor = num("factor");
  c.rope_scaling.low_freq_factor = num("low_freq_factor");
  c.rope_scaling.high_freq_factor = num("high_freq_factor");
  c.rope_scaling.original_max_position_embeddings = num("original_max_position_embeddings");
}

void read_windows(const Reader& r, LlamaConfig& c) {
  if (r.has("sliding_window")) c.sliding_window = r.size("sliding_window", r.j.at("sliding_window"), 0);
  if (c.family == LlamaFamily::Qwen2) {
    if (r.has("use_sliding_window")) c.use_sliding_window = r.boolean("use_sliding_window");
    if (r.has("max_window_layers")) c.max_window_layers = r.size("max_window_layers", r.j.at("max_window_layers"), 0);
  } else if (r.has("use_sliding_window")) {
    ARIA_FAIL(r.ctx, "'use_sliding_window' belongs to Qwen2, not to ", c.model_type());
  }
  if (!r.has("layer_types")) return;
  const json& lt = r.j.at("layer_types");
  ARIA_CHECK(lt.is_array() && lt.size() == size_t(c.num_hidden_layers), r.ctx,
             "'layer_types' must list one type per layer (", c.num_hidden_layers, "), got ", lt.dump());
  for (const json& t : lt) {
    const std::string s = t.is_string() ? t.get<std::string>() : "";
    ARIA_CHECK(s == "full_attention" || s == "sliding_attention", r.ctx, "'layer_types' entry ", t.dump(),
               " is not supported (full_attention or sliding_attention)");
    c.layer_sliding.push_back(s == "sliding_attention");
  }
}

}  // namespace

const char* LlamaConfig::architecture() const { return names_of(family).arch; }
const char* LlamaConfig::model_type() const { return names_of(family).type; }

int LlamaConfig::window_of_layer(int l) const {
  if (sliding_window <= 0) return 0;
  if (!layer_sliding.empty()) return layer_sliding.at(size_t(l)) ? sliding_window : 0;
  if (family == LlamaFamily::Mistral) return sliding_window;
  if (family == LlamaFamily::Qwen2) return use_sliding_window && l >= max_window_layers ? sliding_window : 0;
  return 0;
}

int64_t LlamaConfig::num_parameters() const {
  const int64_t C = hidden_size, I = intermediate_size;
  const int64_t attn = C * q_dim() + 2 * C * kv_dim() + int64_t(q_dim()) * C + (qkv_bias ? q_dim() + 2 * kv_dim() : 0) +
                       (o_bias ? C : 0);
  const int64_t layer = attn + 3 * C * I + 2 * C;
  return int64_t(vocab_size) * C * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + C;
}

void validate_llama_config(const LlamaConfig& c) {
  const char* ctx = "llama config: ";
  auto size_ok = [&](const char* key, int v) {
    ARIA_CHECK(v >= 1 && v <= kMaxSize, ctx, "'", key, "' = ", v, " is out of range [1, ", kMaxSize, "]");
  };
  size_ok("vocab_size", c.vocab_size);
  size_ok("hidden_size", c.hidden_size);
  size_ok("intermediate_size", c.intermediate_size);
  size_ok("num_hidden_layers", c.num_hidden_layers);
  size_ok("num_attention_heads", c.num_attention_heads);
  size_ok("num_key_value_heads", c.num_key_value_heads);
  size_ok("head_dim", c.head_dim);
  size_ok("max_position_embeddings", c.max_position_embeddings);
  ARIA_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, ctx, "'num_attention_heads' = ",
             c.num_attention_heads, " is not a multiple of 'num_key_value_heads' = ", c.num_key_value_heads);
  ARIA_CHECK(c.head_dim % 2 == 0, ctx, "'head_dim' = ", c.head_dim, " must be even (rotary embeddings)");
  ARIA_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0 && c.rms_norm_eps < 1, ctx, "'rms_norm_eps' = ",
             c.rms_norm_eps, " must be in (0, 1)");
  ARIA_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0, ctx, "'rope_theta' = ", c.rope_theta, " must be > 0");
  ARIA_CHECK(c.sliding_window >= 0, ctx, "'sliding_window' = ", c.sliding_window, " must be >= 0");
  ARIA_CHECK(c.layer_sliding.empty() || c.layer_sliding.size() == size_t(c.num_hidden_layers), ctx,
             "'layer_types' has ", c.layer_sliding.size(), " entries for ", c.num_hidden_layers, " layers");
  ARIA_CHECK(c.torch_dtype == "float32" || c.torch_dtype == "float16" || c.torch_dtype == "bfloat16", ctx,
             "'torch_dtype' = \"", c.torch_dtype, "\" is not supported (float32, float16, bfloat16)");
  ops::rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling);  // refuses bad scaling values by name
  const double C = c.hidden_size, I = c.intermediate_size, q = double(c.num_attention_heads) * c.head_dim,
               kv = double(c.num_key_value_heads) * c.head_dim;
  const double params = double(c.vocab_size) * C * 2 + double(c.num_hidden_layers) * (2 * C * q + 2 * C * kv + 3 * C * I);
  if (params > kMaxParameters) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3g", params);
    ARIA_FAIL(ctx, "the sizes imply ", buf, " parameters, more than the 1e12 aria accepts (a typo or a corrupt config?)");
  }
}

LlamaConfig load_llama_config(const std::string& path) {
  const std::string ctx = "llama config '" + path + "': ";
  json j = read_json_file(path, "llama config", uint64_t(1) << 26);
  ARIA_CHECK(j.is_object(), ctx, "must be a JSON object, got ", j.type_name());
  const Reader r{j, ctx};
  LlamaConfig c;
  c.family = read_family(r);
  c.vocab_size = r.size("vocab_size");
  c.hidden_size = r.size("hidden_size");
  c.intermediate_size = r.size("intermediate_size");
  c.num_hidden_layers = r.size("num_hidden_layers");
  c.num_attention_heads = r.size("num_attention_heads");
  c.num_key_value_heads = r.has("num_key_value_heads") ? r.size("num_key_value_heads") : c.num_attention_heads;
  if (r.has("head_dim")) {
    c.head_dim = r.size("head_dim");
  } else {
    ARIA_CHECK(c.hidden_size % c.num_attention_heads == 0, ctx, "'hidden_size' = ", c.hidden_size,
               " is not divisible by 'num_attention_heads' = ", c.num_attention_heads, " (and there is no 'head_dim')");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = r.size("max_position_embeddings");
  if (r.has("rms_norm_eps")) c.rms_norm_eps = r.number("rms_norm_eps", j.at("rms_norm_eps"));
  read_rope(r, c);
  read_windows(r, c);
  if (r.has("tie_word_embeddings")) c.tie_word_embeddings = r.boolean("tie_word_embeddings");
  if (r.has("hidden_act")) {
    const std::string act = r.string("hidden_act", j.at("hidden_act"));
    ARIA_CHECK(act == "silu", ctx, "'hidden_act' = \"", act, "\" is not supported (silu only: the SwiGLU MLP)");
  }
  if (r.has("mlp_bias")) ARIA_CHECK(!r.boolean("mlp_bias"), ctx, "'mlp_bias' = true is not supported");
  if (r.has("attention_bias")) {
    const bool b = r.boolean("attention_bias");
    ARIA_CHECK(!b || c.family == LlamaFamily::Llama, ctx, "'attention_bias' = true is not supported for ",
               c.model_type());
    c.qkv_bias = c.o_bias = b;
  }
  if (c.family == LlamaFamily::Qwen2) c.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o without
  if (r.has("pretraining_tp")) {
    const int tp = r.size("pretraining_tp", j.at("pretraining_tp"));
    ARIA_CHECK(tp == 1, ctx, "'pretraining_tp' = ", tp, " is not supported (1 only)");
  }
  const char* dkey = r.has("torch_dtype") ? "torch_dtype" : r.has("dtype") ? "dtype" : nullptr;
  if (dkey) c.torch_dtype = r.string(dkey, j.at(dkey));
  if (r.has("bos_token_id") && j.at("bos_token_id").is_number_integer()) c.bos_token_id = j.at("bos_token_id").get<int>();
  if (r.has("eos_token_id") && j.at("eos_token_id").is_number_integer()) c.eos_token_id = j.at("eos_token_id").get<int>();
  try {
    validate_llama_config(c);
  } catch (const Error& e) {
    ARIA_FAIL(ctx, e.what());
  }
  return c;
}

bool is_llama_config(const std::string& path) {
  try {
    const json j = json::parse(io::read_file(path, "config", uint64_t(1) << 26));
    if (!j.is_object()) return false;
    std::string name;
    if (j.contains("model_type") && j["model_type"].is_string()) {
      name = j["model_type"].get<std::string>();
      for (const auto& n : kFamilies)
        if (name == n.type) return true;
      return false;
    }
    const json* a = j.contains("architectures") ? &j["architectures"] : nullptr;
    if (!a || !a->is_array() || a->empty() || !(*a)[0].is_string()) return false;
    name = (*a)[0].get<std::string>();
    for (const auto& n : kFamilies)
      if (name == n.arch) return true;
  } catch (const std::exception&) {
  }
  return false;
}

void save_llama_config(const LlamaConfig& c, const std::string& path) {
  validate_llama_config(c);
  nlohmann::ordered_json j = {
      {"architectures", {c.architecture()}},
      {"model_type", c.model_type()},
      {"attention_dropout", 0.0},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"num_attention_heads", c.num_attention_heads},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", c.torch_dtype},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
  if (c.rope_scaling.type == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (c.family == LlamaFamily::Llama) {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = false;
  }
  if (c.family != LlamaFamily::Llama) j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json();
  if (c.family == LlamaFamily::Qwen2) {
    j["use_sliding_window"] = c.use_sliding_window;
    j["max_window_layers"] = c.max_window_layers;
  }
  if (!c.layer_sliding.empty()) {
    json lt = json::array();
    for (bool s : c.layer_sliding) lt.push_back(s ? "sliding_attention" : "full_attention");
    j["layer_types"] = lt;
  }
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  try {
    io::write_file_atomic(path, j.dump(2) + "\n");
  } catch (const Error& e) {
    ARIA_FAIL("llama config '", path, "': ", e.what());
  }
}

}  // namespace aria
