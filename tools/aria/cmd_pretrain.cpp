// aria pretrain: train a GPT-2 language model (from scratch or from a checkpoint) on a text
// corpus and save it as a Hugging Face directory (config.json, model.safetensors, vocab files).
// --checkpoint-every N / --resume DIR continue a stopped run bit for bit (train/optim/lm_checkpoint.h);
// --curve FILE.json writes the learning curve (train/report/lm_curve.h); --cache NAME builds (or finds)
// the cached model cache:NAME (train/experiment/model_cache.h) and prints its folder.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "aria/core/cpu_threads.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "aria/train/experiment/default_experiment.h"
#include "aria/train/optim/lm_checkpoint.h"
#include "aria/train/report/lm_curve.h"
#include "aria/train/optim/lm_trainer.h"
#include "aria/train/experiment/model_cache.h"
#include "aria/train/report/progress.h"
#include "aria/train/data/token_shards.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/environment.h"
#include "tools/aria/run_folder.h"
#include "tools/aria/run_state.h"

namespace aria::cli {

namespace fs = std::filesystem;

namespace {

// aria pretrain --cache NAME: the cached model cache:NAME, built now when missing (a stopped build
// continues from its checkpoint). Its folder on stdout.
int build_cached(const std::string& name, Device dev) {
  // Only a recipe trained on the small corpus text needs the task data folder (its corpus/).
  const bool shards = pretrain_recipe(name).uses_shards;
  ModelCacheRequest req = cached_model_request(name, shards ? "" : find_data_dir("third_party/data"));
  const StopSignals signals;  // SIGINT/SIGTERM: checkpoint (recipes that checkpoint) and stop
  req.recipe.train.stop_requested = [] { return StopSignals::requested(); };
  const CachedModel cm = ensure_cached_model(req, dev, std::cerr);
  if (cm.stopped) {
    std::fprintf(stderr, "aria pretrain: cache:%s stopped by %s before it was complete; run the same command "
                 "again to continue\n", name.c_str(), StopSignals::signal_name().c_str());
    return StopSignals::exit_code();
  }
  if (!cm.built)
    std::fprintf(stderr, "aria pretrain: cache:%s was already built (in %s)\n", name.c_str(),
                 format_duration(cm.build_seconds).c_str());
  std::printf("%s\n", cm.dir.c_str());
  return 0;
}

// FILE.json and FILE.svg of the curve.
void write_curve(const std::string& json_path, const LmTrainResult& r, const std::string& title) {
  const nlohmann::ordered_json curve = lm_curve_json(r, title);
  io::write_file_atomic(json_path, curve.dump(1) + "\n");
  io::write_file_atomic(fs::path(json_path).replace_extension(".svg").string(), lm_curve_svg(curve));
}

}  // namespace

int cmd_pretrain(int argc, char** argv) {
  Args args("pretrain",
            "Trains a GPT-2 on a UTF-8 text corpus (--corpus) or on token shards (--shards DIR, written by\n"
            "`aria tokenize --shards`; validation from DIR's validation shards) on random windows of --seq\n"
            "tokens (a seeded sampler) with AdamW, warmup +\n"
            "cosine schedule and gradient clipping, then writes --out as a Hugging Face GPT-2 directory\n"
            "that transformers' GPT2LMHeadModel.from_pretrained loads.\n"
            "--checkpoint-every N writes OUT/checkpoint/ every N steps (and on SIGINT/SIGTERM, then exit 130/143);\n"
            "--resume OUT continues that run with the same flags and ends bit for bit where an uninterrupted\n"
            "run would. --cache NAME builds (or finds) the cached model cache:NAME (e.g. base124m, on a GPU).");
  args.option("corpus", "UTF-8 training text (or --shards)", "")
      .option("shards", "directory of token shards (train_*.bin, validation_*.bin) instead of --corpus", "")
      .option("out", "output directory", "")
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
      .option("eval-every", "validation loss every N steps (0: at the end only)", "0")
      .option("eval-batches", "validation batches per evaluation (the same windows each time)", "8")
      .option("checkpoint-every", "write OUT/checkpoint/ every N steps (0: never)", "0")
      .option("resume", "continue the run whose --out was DIR from DIR/checkpoint/ (same flags)", "")
      .option("curve", "write the learning curve as FILE.json (numbers) and FILE.svg (plot)", "")
      .option("cache", "build (or find) the cached model cache:NAME (default, quick, base124m) and print its folder", "")
      .toggle("bf16", "mixed precision on CUDA: bfloat16 weights/activations/gradients, float32 master weights "
                      "(the saved checkpoint holds the float32 masters)");
  if (!args.parse(argc, argv)) return 0;
  if (args.given("cache")) {
    for (const char* f : {"corpus", "shards", "out", "model", "preset", "val", "steps", "batch", "seq", "grad-accum",
                          "lr", "warmup", "weight-decay", "seed", "eval-every", "eval-batches", "checkpoint-every",
                          "resume", "curve"})
      ARIA_USAGE_CHECK(!args.given(f), "aria pretrain: --cache takes its recipe from aria (only --device applies), "
                       "so --", f, " cannot be combined with it");
    ARIA_USAGE_CHECK(!args.on("bf16"), "aria pretrain: --cache takes its precision from the recipe; drop --bf16");
    const std::string name = args.str("cache");
    ARIA_USAGE_CHECK(!name.empty(), "aria pretrain: --cache needs a name (default, quick, base124m)");
    try {
      (void)pretrain_recipe(name);
    } catch (const Error& e) {
      throw UsageError(std::string("aria pretrain: ") + e.what());
    }
    return build_cached(name, parse_device(args.str("device")));
  }
  const std::string resume = args.str("resume");
  ARIA_USAGE_CHECK(!args.str("out").empty() || !resume.empty(), "aria pretrain: --out DIR is required");
  ARIA_USAGE_CHECK(resume.empty() || args.str("out").empty() || fs::path(args.str("out")) == fs::path(resume),
                   "aria pretrain: --resume DIR continues the run whose output folder was DIR: drop --out or give the same folder");
  const std::string out = resume.empty() ? args.str("out") : resume;
  const std::string curve = args.str("curve");
  ARIA_USAGE_CHECK(curve.empty() || fs::path(curve).extension() == ".json",
                   "aria pretrain: --curve takes a FILE.json (the plot goes to FILE.svg beside it), got '", curve, "'");
  const std::string shard_dir = args.str("shards");
  ARIA_USAGE_CHECK(args.str("corpus").empty() != shard_dir.empty(),
             "aria pretrain: give exactly one of --corpus FILE and --shards DIR");
  ARIA_USAGE_CHECK(shard_dir.empty() || args.str("val").empty(),
             "aria pretrain: --val cannot be combined with --shards (validation comes from DIR's validation_*.bin)");
  ARIA_USAGE_CHECK(args.integer("steps", 0, 10000000) != 0, "aria pretrain: --steps 0 trains nothing (no loss, an "
                   "untrained model); give --steps >= 1");
  // Every flag is checked before anything is loaded or created.
  LmTrainConfig cfg;
  cfg.steps = int(args.integer("steps", 1, 10000000));
  cfg.batch_size = int(args.integer("batch", 1, 100000));
  cfg.grad_accum = int(args.integer("grad-accum", 1, 100000));
  cfg.lr = args.number("lr", 0, 10);
  ARIA_USAGE_CHECK(cfg.lr > 0, "aria pretrain: --lr 0 trains nothing; give a learning rate > 0");
  cfg.warmup_steps = int(args.integer("warmup", 0, 10000000));
  cfg.weight_decay = args.number("weight-decay", 0, 10);
  // --seq is bounded by the model's n_positions (checked once it is loaded); 0 or a non-number is a
  // usage error now, before the output folder is created.
  (void)args.integer("seq", 1, 1 << 30);
  cfg.bf16 = args.on("bf16");
  cfg.eval_every = int(args.integer("eval-every", 0, 10000000));
  cfg.eval_batches = int(args.integer("eval-batches", 1, 100000));
  cfg.checkpoint_every = int(args.integer("checkpoint-every", 0, 10000000));
  if (cfg.checkpoint_every > 0 || !resume.empty()) cfg.checkpoint_dir = (fs::path(out) / "checkpoint").string();
  cfg.resume = !resume.empty();
  if (cfg.resume)
    ARIA_CHECK(is_lm_checkpoint(cfg.checkpoint_dir), "aria pretrain: --resume ", resume, ": no checkpoint in '",
               cfg.checkpoint_dir, "' (it is written by a run with --checkpoint-every N and --out ", resume, ")");
  const uint64_t seed = uint64_t(args.integer("seed", 0, INT64_MAX));
  cfg.seed = seed;
  Device dev = parse_device(args.str("device"));
  ARIA_CHECK(!args.on("bf16") || dev.is_cuda(), "--bf16 needs a CUDA device (got --device ", dev.str(), ")");
  // The output folder must take the model before hours of training, not after: created and probed now.
  check_writable_dir(out, "output directory");
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
  // Progress (this line, the training log) on stderr; the result ("saved ...") on stdout.
  std::fprintf(stderr, "aria pretrain: %lld parameters (%d layers, d=%d), %zu training tokens, device %s\n",
              (long long)model.num_parameters(), model.config.n_layer, model.config.n_embd, size_t(train.size()),
              dev.str().c_str());
  if (!dev.is_cuda())
    std::fprintf(stderr, "aria pretrain: CPU %s%s\n", cpu_threads::describe().c_str(), openmp_description().c_str());
  // With checkpoints, SIGINT/SIGTERM stop after the current step with a checkpoint (exit 130/143).
  std::optional<StopSignals> signals;
  if (!cfg.checkpoint_dir.empty()) {
    signals.emplace();
    cfg.stop_requested = [] { return StopSignals::requested(); };
  }
  LmTrainResult r = train_lm(model, train, val.empty() ? nullptr : &val, cfg, std::cerr);
  if (r.stopped) {
    std::fprintf(stderr, "aria pretrain: stopped by %s after step %zu; checkpoint in %s; continue with the same "
                 "flags and --resume %s\n", StopSignals::signal_name().c_str(), r.losses.size(),
                 cfg.checkpoint_dir.c_str(), out.c_str());
    return StopSignals::exit_code();
  }
  gpt2_save(model, out);
  // Ship the vocabulary with the model so the directory is self-contained.
  for (const char* f : {"vocab.json", "merges.txt"})
    io::write_file_atomic((fs::path(out) / f).string(),
                          io::read_file((fs::path(vdir) / f).string(), "vocabulary file"));
  ARIA_CHECK(!r.losses.empty(), "aria pretrain: training ran no step");
  // The sampler's state (seed, windows drawn): a later run can continue the same window sequence.
  if (!curve.empty()) write_curve(curve, r, "aria pretrain " + fs::path(out).filename().string());
  io::write_file_atomic((fs::path(out) / "pretrain_state.json").string(),
                        "{\"data\": \"" + std::string(shard_dir.empty() ? "corpus" : "shards") +
                            "\", \"steps\": " + std::to_string(r.losses.size()) + ", \"sampler\": {\"seed\": " +
                            std::to_string(r.sampler_state.seed) + ", \"counter\": " +
                            std::to_string(r.sampler_state.counter) + "}, \"final_val_loss\": " +
                            (std::isfinite(r.final_val_loss) ? std::to_string(r.final_val_loss) : "null") + "}\n");
  // The run is complete: its checkpoint (which holds the optimizer, 3x the model's size) is not needed.
  if (!cfg.checkpoint_dir.empty()) {
    std::error_code ec;
    fs::remove_all(cfg.checkpoint_dir, ec);
  }
  std::printf("saved %s  (final train loss %.4f, %.0f tokens/s)\n", out.c_str(), r.losses.back(),
              r.tokens_per_second);
  return 0;
}

}  // namespace aria::cli
