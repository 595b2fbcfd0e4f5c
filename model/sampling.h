// Drawing the next token from a vocabulary's logits (aria generate and the Python module's
// aria.generate share it, so the same seed gives the same text from both).
#pragma once
#include <cstdint>
#include <vector>

#include "aria/core/rng.h"

namespace aria {

// One token from logits with temperature and top-k (0 = all tokens); temperature 0 is greedy (the
// first maximum). One rng.uniform() per sampled token.
int32_t sample_token(std::vector<float> logits, double temperature, int64_t top_k, Rng& rng);

}  // namespace aria
