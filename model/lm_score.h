// Scoring a token stream with a GPT-2 (or a Llama-family model) as `aria score` reports it: the mean next-token cross-entropy
// over every token after the first, each predicted exactly once.
//
// The stream is cut into windows of n_positions tokens, consecutive windows overlapping by one
// token: window k covers ids[k*S, k*S + S + 1) with S = n_positions - 1, feeds its first S tokens
// and predicts its last S (the final window may be shorter). Each prediction therefore sees the
// context of its own window only, exactly as transformers' GPT2LMHeadModel(window, labels=window)
// computes each window's loss. Windows of full length are run several to a forward (a batch of up
// to max_batch windows, at most token_budget tokens), which gives the same loss up to float
// rounding and keeps a GPU busy; the short last window runs alone.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "aria/model/gpt2.h"
#include "aria/model/llama.h"

namespace aria {

struct LmScore {
  double loss_sum = 0;     // sum of the per-token cross-entropies (nats)
  int64_t predicted = 0;   // number of predicted tokens: ids.size() - 1
  double mean() const { return predicted > 0 ? loss_sum / double(predicted) : 0.0; }
};

struct LmScoreOptions {
  int64_t max_batch = 16;        // windows per forward
  int64_t token_budget = 16384;  // tokens per forward (at least one window always runs)
};

// Number of windows gpt2_score_tokens runs for n_tokens tokens (>= 2) and this n_positions (>= 2).
int64_t lm_score_windows(int64_t n_tokens, int64_t n_positions);

// Scores `ids` (>= 2 tokens, each < vocab_size) under no_grad. `progress(windows_done, windows_total,
// score_so_far)` is called after every forward. Throws aria::Error for too few tokens, an out-of-vocabulary id or a
// model with n_positions < 2 (a one-token window predicts nothing).
LmScore gpt2_score_tokens(const Gpt2Model& m, const std::vector<int32_t>& ids, const LmScoreOptions& options = {},
                          const std::function<void(int64_t, int64_t, const LmScore&)>& progress = {});
// The same for a Llama-family model (model/llama.h), windows of max_position_embeddings tokens: each
// window's loss is transformers' <Family>ForCausalLM(window, labels=window).loss.
LmScore llama_score_tokens(const LlamaModel& m, const std::vector<int32_t>& ids, const LmScoreOptions& options = {},
                           const std::function<void(int64_t, int64_t, const LmScore&)>& progress = {});

}  // namespace aria
