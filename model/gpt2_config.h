// GPT-2 hyper-parameters, read from and written to HF's config.json.
// Only the GPT-2 aria implements is accepted: tanh GELU, tied lm head, d_ff = 4 * n_embd, standard
// attention scaling. A config asking for something else is rejected rather than silently run as a
// different model.
#pragma once
#include <cstdint>
#include <string>

namespace aria {

struct Gpt2Config {
  int vocab_size = 50257;
  int n_positions = 1024;
  int n_embd = 768;
  int n_layer = 12;
  int n_head = 12;
  double layer_norm_epsilon = 1e-5;
  bool tie_word_embeddings = true;
  std::string activation_function = "gelu_new";

  // Parameters of GPT2LMHeadModel with the lm head tied to wte (124,439,808 for the default).
  int64_t num_parameters() const;
  int head_dim() const { return n_embd / n_head; }
};

// Throws aria::Error naming the field unless cfg is a GPT-2 aria can build.
void validate_gpt2_config(const Gpt2Config& cfg);

// Reads HF's keys (n_ctx when n_positions is absent); ignores keys aria has no use for; rejects wrong
// types, out-of-range values and settings aria does not implement, naming the key and the file.
Gpt2Config load_gpt2_config(const std::string& config_json_path);

// Writes a config.json that transformers' GPT2LMHeadModel.from_pretrained accepts (temp file + rename).
void save_gpt2_config(const Gpt2Config& cfg, const std::string& path);

// "d12" (124M), "d24" (350M), "d36" (774M), "d48" (1558M), "tiny", "small-cpu".
Gpt2Config gpt2_preset(const std::string& name);

}  // namespace aria
