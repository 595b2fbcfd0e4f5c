#include "tests/support/llama_tiny.h"

#include <string>

#include "aria/core/rng.h"

namespace aria::testing {

LlamaConfig tiny_llama(LlamaFamily f) {
  LlamaConfig c;
  c.family = f;
  c.vocab_size = 37;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 16;
  c.rms_norm_eps = 1e-5;
  if (f == LlamaFamily::Llama) {
    c.rope_theta = 500000;
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8;
    c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position_embeddings = 8;
  }
  if (f == LlamaFamily::Mistral) c.sliding_window = 3;
  if (f == LlamaFamily::Qwen2) {
    c.qkv_bias = true;
    c.tie_word_embeddings = true;
    c.rope_theta = 1e6;
  }
  return c;
}

LlamaModel random_llama(const LlamaConfig& c, uint64_t seed) {
  LlamaModel m = llama_random(c, seed);
  Rng rng(seed + 1);
  for (auto& [name, t] : m.named_parameters()) {
    const bool norm = name.find("norm") != std::string::npos;
    rng.fill_normal(t, norm ? 1.0 : 0.0, norm ? 0.2 : 0.3);
  }
  return m;
}

const char* llama_family_name(LlamaFamily f) {
  return f == LlamaFamily::Llama ? "llama" : f == LlamaFamily::Mistral ? "mistral" : "qwen2";
}

}  // namespace aria::testing
