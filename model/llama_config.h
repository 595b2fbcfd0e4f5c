// Hyper-parameters of the Llama family of decoders (Hugging Face's LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM), read from and written to config.json.
// Only what aria implements is accepted: silu MLP without biases, rope_type default or llama3, no
// partial rotary. A config asking for anything else is an error naming the field, never a model that
// silently computes something else.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aria/core/ops_llama.h"

namespace aria {

enum class LlamaFamily { Llama, Mistral, Qwen2 };

struct LlamaConfig {
  LlamaFamily family = LlamaFamily::Llama;
  int vocab_size = 32000;
  int hidden_size = 4096;
  int intermediate_size = 11008;
  int num_hidden_layers = 32;
  int num_attention_heads = 32;
  int num_key_value_heads = 32;
  int head_dim = 128;  // config.json's head_dim, else hidden_size / num_attention_heads
  int max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  ops::RopeScaling rope_scaling;  // type "default" or "llama3"
  // Sliding-window attention: a layer marked sliding sees keys i - sliding_window < j <= i.
  // Mistral: every layer when sliding_window is set. Qwen2: layers >= max_window_layers when
  // use_sliding_window (as transformers' Qwen2Config derives its layer_types). config.json's
  // layer_types, when present, decides per layer.
  int sliding_window = 0;  // 0: none
  bool use_sliding_window = false;  // Qwen2 only
  int max_window_layers = 0;        // Qwen2 only
  std::vector<bool> layer_sliding;  // empty: derived as above; else one entry per layer
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 (always), Llama's attention_bias
  bool o_bias = false;    // Llama's attention_bias
  std::string torch_dtype = "float32";
  int bos_token_id = -1, eos_token_id = -1;  // -1: absent (kept for save)

  const char* architecture() const;  // "LlamaForCausalLM", ...
  const char* model_type() const;    // "llama", "mistral", "qwen2"
  // The attention window of layer l (0: full causal attention).
  int window_of_layer(int l) const;
  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t num_parameters() const;
};

// Throws aria::Error naming the field unless cfg is a model aria can build.
void validate_llama_config(const LlamaConfig& cfg);

// Reads a Hugging Face config.json of one of the three families (architectures[0] or model_type
// decides). rope_theta / rope_scaling as transformers 4.x writes them, or rope_parameters as 5.x does;
// torch_dtype or dtype. Wrong types, out-of-range values and unsupported settings are errors naming
// the key and the file; keys that do not change the computation are ignored.
LlamaConfig load_llama_config(const std::string& config_json_path);

// True when the config.json at `path` names one of the three families (model_type, else
// architectures[0]); false for anything else, an unreadable or missing file included (a caller then
// tries another loader, whose errors explain).
bool is_llama_config(const std::string& config_json_path);

// Writes a config.json that transformers' <Family>ForCausalLM.from_pretrained accepts (atomic write).
void save_llama_config(const LlamaConfig& cfg, const std::string& path);

}  // namespace aria
