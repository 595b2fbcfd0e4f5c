// libFuzzer harness: Hugging Face config.json for GPT-2 (model/gpt2_config.cpp). An accepted config
// must pass validate_gpt2_config, count its parameters without overflow, and read back unchanged
// after save_gpt2_config.
#include "aria/model/gpt2_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::string path = fuzz::write_file("config.json", {reinterpret_cast<const char*>(data), size});
  fuzz::refused_or_ok([&] {
    const Gpt2Config c = load_gpt2_config(path);
    validate_gpt2_config(c);
    if (c.num_parameters() <= 0 || c.n_embd % c.n_head != 0) std::abort();
    save_gpt2_config(c, path + ".again");
    const Gpt2Config d = load_gpt2_config(path + ".again");
    if (d.vocab_size != c.vocab_size || d.n_positions != c.n_positions || d.n_embd != c.n_embd ||
        d.n_layer != c.n_layer || d.n_head != c.n_head || d.layer_norm_epsilon != c.layer_norm_epsilon ||
        d.tie_word_embeddings != c.tie_word_embeddings || d.activation_function != c.activation_function)
      std::abort();
  });
  return 0;
}
