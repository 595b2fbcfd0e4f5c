// aria pretrain: train a GPT-2 language model (from scratch or from a checkpoint) on a text
// corpus and save it as a Hugging Face directory (config.json, model.safetensors, vocab files).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/file_io.h"
#include "model/gpt2.h"
#include "model/tokenizer.h"
#include "train/lm_trainer.h"
#include "train/token_shards.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/run_folder.h"

namespace aria::cli {

namespace fs = std::filesystem;

int cmd_pretrain(int argc, char** argv) {
  Args args("pretrain",
            "Trains a GPT-2 on a UTF-8 text corpus (--corpus) or on token shards (--shards DIR, written by\n"
            "`aria tokenize --shards`; validation from DIR's validation shards) on random windows of --seq\n"
            "tokens (a seeded sampler) with AdamW, warmup +\n"
            "cosine schedule and gradient clipping, then writes --out as a Hugging Face GPT-2 directory\n"
            "that transformers' GPT2LMHeadModel.from_pretrained loads.");
  args.option("corpus", "UTF-8 training text (or --shards)", "")
      .option("shards", "directory of token shards (train_*.bin, validation_*.bin) instead of --corpus", "")
      .option("out", "output directory", "", true)
      .option("model", "start from this Hugging Face GPT-2 directory (default: random init of --preset)", "")
      .option("preset", "architecture when starting from scratch: tiny, small-cpu, d12, d24, d36, d48", "small-cpu")
      .option("val", "validation text (default: none)", "")
      .option("steps", "optimizer steps", "200")
      .option("batch", "sequences per micro-batch", "8")
      .option("seq", "tokens per sequence (<= n_positions)", "128")
      .option("grad-accum", "micro-batches per optimizer step", "1")
      .option("lr", "peak learning rate", "6e-4")
      .option("warmup", "warmup steps", "20")
      .option("weight-decay", "AdamW weight decay of 2-D weights", "0.1")
      .option("seed", "random seed (init and batches)", "1337")
      .option("device", "cpu, cuda, cuda:N or auto", "auto")
      .toggle("bf16", "mixed precision on CUDA: bfloat16 weights/activations/gradients, float32 master weights "
                      "(the saved checkpoint holds the float32 masters)");
  if (!args.parse(argc, argv)) return 0;
  const std::string shard_dir = args.str("shards");
  ARIA_USAGE_CHECK(args.str("corpus").empty() != shard_dir.empty(),
             "aria pretrain: give exactly one of --corpus FILE and --shards DIR");
  ARIA_USAGE_CHECK(shard_dir.empty() || args.str("val").empty(),
             "aria pretrain: --val cannot be combined with --shards (validation comes from DIR's validation_*.bin)");
  ARIA_CHECK(args.str("steps") != "0", "aria pretrain: --steps 0 trains nothing (no loss, an untrained model); "
             "give --steps >= 1");
  // Every flag is checked before anything is loaded or created.
  LmTrainConfig cfg;
  cfg.steps = int(args.integer("steps", 1, 10000000));
  cfg.batch_size = int(args.integer("batch", 1, 100000));
  cfg.grad_accum = int(args.integer("grad-accum", 1, 100000));
  cfg.lr = args.number("lr", 0, 10);
  cfg.warmup_steps = int(args.integer("warmup", 0, 10000000));
  cfg.weight_decay = args.number("weight-decay", 0, 10);
  cfg.bf16 = args.on("bf16");
  const uint64_t seed = uint64_t(args.integer("seed", 0, INT64_MAX));
  cfg.seed = seed;
  Device dev = parse_device(args.str("device"));
  ARIA_CHECK(!args.on("bf16") || dev.is_cuda(), "--bf16 needs a CUDA device (got --device ", dev.str(), ")");
  // The output folder must take the model before hours of training, not after: created and probed now.
  check_writable_dir(args.str("out"), "output directory");
  Gpt2Model model = args.str("model").empty() ? gpt2_random(gpt2_preset(args.str("preset")), seed, dev)
                                              : gpt2_load(args.str("model"), dev);
  std::string vdir = find_vocab_dir(args.str("model"));
  Gpt2Tokenizer tok = Gpt2Tokenizer::load(vdir + "/vocab.json", vdir + "/merges.txt");
  auto tokenize = [&](const std::string& s) { return tok.encode(s); };
  TokenDataset train, val;
  if (!shard_dir.empty()) {
    const uint32_t vocab = uint32_t(tok.vocab_size());
    train = load_shard_dataset(shard_dir, "train", vocab);
    if (!list_shards(shard_dir, "validation").empty()) val = load_shard_dataset(shard_dir, "validation", vocab);
  } else {
    train = load_token_dataset(args.str("corpus"), tokenize);
    if (!args.str("val").empty()) val = load_token_dataset(args.str("val"), tokenize);
  }

  cfg.seq_len = int(args.integer("seq", 1, model.config.n_positions));
  std::printf("aria pretrain: %lld parameters (%d layers, d=%d), %zu training tokens, device %s\n",
              (long long)model.num_parameters(), model.config.n_layer, model.config.n_embd, size_t(train.size()),
              dev.str().c_str());
  LmTrainResult r = train_lm(model, train, val.empty() ? nullptr : &val, cfg, std::cout);
  gpt2_save(model, args.str("out"));
  // Ship the vocabulary with the model so the directory is self-contained.
  for (const char* f : {"vocab.json", "merges.txt"})
    io::write_file_atomic((fs::path(args.str("out")) / f).string(),
                          io::read_file((fs::path(vdir) / f).string(), "vocabulary file"));
  ARIA_CHECK(!r.losses.empty(), "aria pretrain: training ran no step");
  // The sampler's state (seed, windows drawn): a later run can continue the same window sequence.
  io::write_file_atomic((fs::path(args.str("out")) / "pretrain_state.json").string(),
                        "{\"data\": \"" + std::string(shard_dir.empty() ? "corpus" : "shards") +
                            "\", \"steps\": " + std::to_string(r.losses.size()) + ", \"sampler\": {\"seed\": " +
                            std::to_string(r.sampler_state.seed) + ", \"counter\": " +
                            std::to_string(r.sampler_state.counter) + "}, \"final_val_loss\": " +
                            (std::isfinite(r.final_val_loss) ? std::to_string(r.final_val_loss) : "null") + "}\n");
  std::printf("saved %s  (final train loss %.4f, %.0f tokens/s)\n", args.str("out").c_str(), r.losses.back(),
              r.tokens_per_second);
  return 0;
}

}  // namespace aria::cli
