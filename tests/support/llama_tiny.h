// Tiny Llama-family configs and random models shared by the Llama model tests.
#pragma once
#include <cstdint>

#include "aria/model/llama.h"

namespace aria::testing {

// vocab 37, width 16, 2 layers, 4 heads of 4 with 2 k/v heads, SwiGLU 24, 16 positions. Llama: rope
// theta 500000 with llama3 scaling (original 8 positions), untied head. Mistral: sliding window 3,
// untied. Qwen2: q/k/v biases, tied head, theta 1e6.
LlamaConfig tiny_llama(LlamaFamily f);
// A random float32 model whose norm weights (N(1, 0.2)) and biases (N(0, 0.3)) are random too, so
// that a wrong bias or norm shows; other weights N(0, 0.3).
LlamaModel random_llama(const LlamaConfig& c, uint64_t seed);
// "llama", "mistral", "qwen2".
const char* llama_family_name(LlamaFamily f);
constexpr LlamaFamily kLlamaFamilies[] = {LlamaFamily::Llama, LlamaFamily::Mistral, LlamaFamily::Qwen2};

}  // namespace aria::testing
