// tests/consumer/examples/new_model.cpp: a small GPT-2 with random weights, saved as a Hugging Face folder.
#include <aria/aria.h>

#include <cstdio>

int main(int argc, char** argv) {
  const std::string out = argc > 1 ? argv[1] : "tiny-gpt2";
  aria::Gpt2Config cfg;  // GPT-2's vocabulary (50257 tokens) in a model 64 wide, 2 layers deep
  cfg.n_embd = 64;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  cfg.n_positions = 128;
  aria::Gpt2Model m = aria::gpt2_random(cfg, /*seed=*/1);
  aria::gpt2_save(m, out);  // config.json + model.safetensors, as transformers writes them
  std::printf("aria %s: wrote %s (%lld parameters)\n", aria::kVersion, out.c_str(), (long long)cfg.num_parameters());
}
