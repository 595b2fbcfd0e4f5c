// tests/consumer/examples/bf16_adamw.cpp: mixed precision on a GPU. The model trains in bfloat16; AdamW
// keeps a float32 master and float32 moments for every bfloat16 parameter and writes the rounded value
// back after each step. Exits 77 (nothing to do) without a CUDA GPU.
#include <aria/aria.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (!aria::cuda_available()) {
    std::puts("no CUDA GPU: bfloat16 training runs on CUDA only");
    return 77;
  }
  const std::string model_dir = argc > 1 ? argv[1] : "path/to/gpt2";
  aria::Gpt2Model m16 = aria::gpt2_load(model_dir, aria::Device::cuda(0)).to(aria::DType::BF16);
  m16.set_requires_grad(true);
  aria::AdamW opt(aria::default_decay_groups(m16.named_parameters(), 6e-4, 0.1));
  aria::context().recompute_activations = true;  // one more GELU pass per layer instead of keeping its output
  std::vector<int32_t> tokens = {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13};
  aria::Tensor x = aria::Tensor::from_ints({tokens.begin(), tokens.end() - 1}, {1, 9}, aria::Device::cuda(0));
  aria::Tensor y = aria::Tensor::from_ints({tokens.begin() + 1, tokens.end()}, {1, 9}, aria::Device::cuda(0));
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    aria::Tensor loss = aria::gpt2_lm_loss(m16, x, y);  // a float32 scalar
    loss.backward();
    opt.step();
    opt.zero_grad();
    (step == 0 ? first : last) = loss.item();
  }
  aria::Tensor w = opt.master("h.0.mlp.c_fc.weight");  // float32 weights, for saving
  std::printf("loss %.4f -> %.4f, master %s\n", first, last, aria::dtype_name(w.dtype()));
  return last < first ? 0 : 1;
}
