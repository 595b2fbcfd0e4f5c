// aria score: the number transformers' GPT2LMHeadModel(ids, labels=ids).loss gives for a text (or
// LlamaForCausalLM's, MistralForCausalLM's, Qwen2ForCausalLM's for a folder of those).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include <filesystem>

#include "aria/model/gpt2.h"
#include "aria/model/llama.h"
#include "aria/model/lm_score.h"
#include "aria/model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/text_file.h"
#include "aria/train/report/progress.h"

namespace aria::cli {

int cmd_score(int argc, char** argv) {
  Args args("score",
            "Prints {\"loss\": mean next-token cross-entropy, \"tokens\": N} for a text tokenized exactly as\n"
            "the model's Hugging Face tokenizer does (with its special tokens: Llama's BOS; GPT-2 adds none).\n"
            "GPT-2, Llama, Mistral and Qwen2 folders (config.json decides). Texts longer than the model's context are\n"
            "scored in consecutive windows of n_positions tokens overlapping by one (each token after the\n"
            "first is predicted once, from its own window); the loss is the mean over all predictions.\n"
            "Windows are run several to a forward; progress goes to stderr when there is more than one batch.\n"
            "A checkpoint holding NaN/Inf weights is refused, and a non-finite loss is an error, never a result.");
  args.option("model", "Hugging Face GPT-2 or Llama-family directory (config.json + safetensors)", "", true)
      .option("text", "UTF-8 text file to score", "", true)
      .option("device", "cpu, cuda, cuda:N or auto", "auto")
      .option("batch", "windows per forward (at most; also bounded by 16384 tokens per forward)", "16")
      .toggle("allow-nonfinite", "load a checkpoint even if it holds NaN/Inf weights (the loss must still be finite)");
  if (!args.parse(argc, argv)) return 0;
  Device dev = parse_device(args.str("device"));
  LmScoreOptions opt;
  opt.max_batch = args.integer("batch", 1, 4096);
  std::string text = read_text_file(args.str("text"));
  Gpt2LoadOptions load;
  load.allow_nonfinite = args.on("allow-nonfinite");
  const bool llama = is_llama_config((std::filesystem::path(args.str("model")) / "config.json").string());
  Gpt2Model model;
  LlamaModel lmodel;
  if (llama) lmodel = llama_load(args.str("model"), dev, LlamaLoadOptions{.allow_nonfinite = load.allow_nonfinite});
  else model = gpt2_load(args.str("model"), dev, load);
  const int64_t n_positions = llama ? lmodel.config.max_position_embeddings : model.config.n_positions;
  Gpt2Tokenizer tok = load_tokenizer_for(args.str("model"));
  // Tokenizing takes seconds for tens of megabytes: say so before going quiet.
  if (text.size() >= (size_t(1) << 20)) std::cerr << "score: tokenizing " << text.size() / 1000000.0 << " MB\n";
  // With the tokenizer's special tokens, as transformers' tokenizer(text) gives them: Llama's BOS
  // (its TemplateProcessing post-processor); GPT-2's tokenizers add none.
  std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/true);
  ARIA_CHECK(ids.size() >= 2, "text '", args.str("text"), "' has ", ids.size(), " token(s); at least 2 are needed");

  // Progress only for texts that take more than one forward: a short text prints its result alone.
  const int64_t windows = lm_score_windows(int64_t(ids.size()), n_positions);
  const int64_t per_batch = std::max<int64_t>(1, std::min(opt.max_batch, opt.token_budget / (n_positions - 1)));
  std::unique_ptr<Progress> progress;
  if (windows > per_batch) {
    std::cerr << "score: " << ids.size() << " tokens in " << windows << " windows of " << n_positions
              << " tokens, up to " << per_batch << " per forward\n";
    // A pipe gets about 20 lines; a terminal redraws one. Updates come per forward (per_batch windows
    // at a time), so the printing interval is a multiple of per_batch.
    const int64_t forwards = (windows + per_batch - 1) / per_batch;
    progress = std::make_unique<Progress>(std::cerr, windows, "score windows",
                                          per_batch * std::max<int64_t>(1, forwards / 20));
  }
  auto report = [&](int64_t done, int64_t, const LmScore& so_far) {
    if (!progress) return;
    char fields[64];
    std::snprintf(fields, sizeof fields, "loss so far %.4f", so_far.mean());
    progress->update(done, fields);
  };
  LmScore r = llama ? llama_score_tokens(lmodel, ids, opt, report) : gpt2_score_tokens(model, ids, opt, report);
  if (progress) progress->finish();
  const double loss = r.mean();
  // "nan" is not JSON, and a non-finite loss is no measurement: an error, never a result.
  ARIA_CHECK(std::isfinite(loss), "the loss is not finite (", std::isnan(loss) ? "nan" : "inf", ") for '",
             args.str("text"), "' under '", args.str("model"), "': ",
             load.allow_nonfinite ? "--allow-nonfinite loaded a checkpoint that may hold NaN/Inf"
                                  : "the model overflows on this text");
  std::printf("{\"loss\": %.9g, \"tokens\": %zu}\n", loss, ids.size());
  return 0;
}

}  // namespace aria::cli
