// tests/consumer/examples/lm_gradients.cpp: load a GPT-2 folder, tokenize a text, backpropagate its LM loss.
#include <aria/aria.h>

#include <cstdio>

int main(int argc, char** argv) {
  const std::string model_dir = argc > 1 ? argv[1] : "path/to/gpt2";  // config.json + model.safetensors
  const std::string vocab_dir = argc > 2 ? argv[2] : model_dir;       // vocab.json + merges.txt
  aria::Gpt2Model m = aria::gpt2_load(model_dir, aria::Device::cpu());
  auto tok = aria::Gpt2Tokenizer::load(vocab_dir + "/vocab.json", vocab_dir + "/merges.txt");
  std::vector<int32_t> ids = tok.encode("Hello world, hello aria");
  const int64_t n = int64_t(ids.size()) - 1;
  aria::Tensor x = aria::Tensor::from_ints({ids.begin(), ids.end() - 1}, {1, n});  // the inputs
  aria::Tensor y = aria::Tensor::from_ints({ids.begin() + 1, ids.end()}, {1, n});  // the next tokens
  m.set_requires_grad(true);
  aria::Tensor loss = aria::gpt2_lm_loss(m, x, y);
  loss.backward();  // gradients in m.wte.grad(), ...
  const double g = aria::ops::sum(aria::ops::mul(m.wte.grad(), m.wte.grad())).item();
  std::printf("loss %.4f over %lld tokens, |d loss / d wte|^2 = %.3g\n", loss.item(), (long long)n, g);
  return g > 0 ? 0 : 1;
}
