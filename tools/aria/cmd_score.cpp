// aria score: the number transformers' GPT2LMHeadModel(ids, labels=ids).loss gives for a text.
#include <cstdio>

#include "core/autograd.h"
#include "core/ops.h"
#include "model/gpt2.h"
#include "model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/text_file.h"

namespace aria::cli {

int cmd_score(int argc, char** argv) {
  Args args("score",
            "Prints {\"loss\": mean next-token cross-entropy, \"tokens\": N} for a text tokenized exactly as\n"
            "Hugging Face's GPT-2 tokenizer does (no BOS added). Texts longer than the model's context are\n"
            "scored in consecutive windows of n_positions tokens; the loss is the mean over all predictions.");
  args.option("model", "Hugging Face GPT-2 directory (config.json + model.safetensors)", "", true)
      .option("text", "UTF-8 text file to score", "", true)
      .option("device", "cpu, cuda, cuda:N or auto", "auto");
  if (!args.parse(argc, argv)) return 0;
  Device dev = parse_device(args.str("device"));
  std::string text = read_text_file(args.str("text"));
  Gpt2Model model = gpt2_load(args.str("model"), dev);
  Gpt2Tokenizer tok = load_tokenizer_for(args.str("model"));
  std::vector<int32_t> ids = tok.encode(text);
  ARIA_CHECK(ids.size() >= 2, "text '", args.str("text"), "' has ", ids.size(), " token(s); at least 2 are needed");
  for (int32_t id : ids)
    ARIA_CHECK(id < model.config.vocab_size, "token id ", id, " is outside the model's vocabulary of ",
               model.config.vocab_size);

  NoGradGuard no_grad;
  const int64_t window = model.config.n_positions;
  double total = 0;
  int64_t predicted = 0;
  // Windows overlap by one token so that every token after the first is predicted exactly once.
  for (size_t start = 0; start + 1 < ids.size(); start += size_t(window - 1)) {
    size_t end = std::min(ids.size(), start + size_t(window));
    std::vector<int32_t> in(ids.begin() + long(start), ids.begin() + long(end) - 1);
    std::vector<int32_t> tg(ids.begin() + long(start) + 1, ids.begin() + long(end));
    const int64_t n = int64_t(in.size());
    Tensor x = Tensor::from_ints(in, {1, n}, dev), y = Tensor::from_ints(tg, {1, n}, dev);
    total += gpt2_lm_loss(model, x, y).item() * double(n);
    predicted += n;
  }
  std::printf("{\"loss\": %.9g, \"tokens\": %zu}\n", total / double(predicted), ids.size());
  return 0;
}

}  // namespace aria::cli
