// aria generate: sample a continuation of a prompt (temperature, top-k, seed).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "aria/core/autograd.h"
#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "aria/model/sampling.h"
#include "aria/model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"

namespace aria::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "Samples a continuation of --prompt from a GPT-2 checkpoint and prints prompt + continuation.");
  args.option("model", "Hugging Face GPT-2 directory", "", true)
      .option("prompt", "the text to continue", "", true)
      .option("max-new-tokens", "number of tokens to generate", "40")
      .option("temperature", "softmax temperature; 0 = greedy", "0.8")
      .option("top-k", "sample among the k most likely tokens; 0 = all", "40")
      .option("seed", "random seed", "0")
      .option("device", "cpu, cuda, cuda:N or auto", "auto")
      .toggle("allow-nonfinite",
              "load a checkpoint even if it holds NaN/Inf weights (non-finite logits stay an error)");
  if (!args.parse(argc, argv)) return 0;
  Device dev = parse_device(args.str("device"));
  const int64_t n_new = args.integer("max-new-tokens", 1, 100000);  // 0 would print the prompt back: a usage error
  const double temperature = args.number("temperature", 0, 100);
  const int64_t top_k = args.integer("top-k", 0, 1 << 30);
  Rng rng(uint64_t(args.integer("seed", 0, INT64_MAX)));
  Gpt2LoadOptions load;
  load.allow_nonfinite = args.on("allow-nonfinite");
  Gpt2Model model = gpt2_load(args.str("model"), dev, load);
  Gpt2Tokenizer tok = load_tokenizer_for(args.str("model"));
  // The prompt with the tokenizer's special tokens (Llama's BOS), as transformers' tokenizer(prompt).
  std::vector<int32_t> ids = tok.encode(args.str("prompt"), /*add_special_tokens=*/true);
  ARIA_CHECK(!ids.empty(), "--prompt is empty");
  NoGradGuard no_grad;
  std::fputs(args.str("prompt").c_str(), stdout);
  DecodeStream text(tok, ids);
  for (int64_t i = 0; i < n_new; ++i) {
    // The context is the last n_positions tokens (no KV cache: generation here is for inspection).
    size_t start = ids.size() > size_t(model.config.n_positions) ? ids.size() - size_t(model.config.n_positions) : 0;
    std::vector<int32_t> ctx(ids.begin() + long(start), ids.end());
    Tensor x = Tensor::from_ints(ctx, {1, int64_t(ctx.size())}, dev);
    Tensor h = gpt2_hidden(model, x).slice(1, int64_t(ctx.size()) - 1, int64_t(ctx.size()));
    std::vector<float> logits = gpt2_logits(model, h).to_floats();
    // NaN/Inf logits would make the draw meaningless (garbage text with exit 0): an error instead.
    for (size_t v = 0; v < logits.size(); ++v)
      ARIA_CHECK(std::isfinite(logits[v]), "generate: the logit of token ", v, " is ",
                 std::isnan(logits[v]) ? "nan" : logits[v] > 0 ? "inf" : "-inf", " at step ", i + 1,
                 ": the model's output is not finite",
                 load.allow_nonfinite ? " (--allow-nonfinite loaded a checkpoint that may hold NaN/Inf)" : "");
    int32_t next = sample_token(std::move(logits), temperature, top_k, rng);
    ids.push_back(next);
    std::fputs(text.step(next).c_str(), stdout);
    std::fflush(stdout);
  }
  std::fputs(text.finish().c_str(), stdout);
  std::printf("\n");
  return 0;
}

}  // namespace aria::cli
