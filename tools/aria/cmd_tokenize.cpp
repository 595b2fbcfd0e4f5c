// aria tokenize: GPT-2 BPE ids of a text, as a JSON array on one line, or (--shards DIR) written
// once as binary token shards for `aria pretrain --shards` (train/data/token_shards.h).
#include <chrono>
#include <cstdio>
#include <thread>

#include "aria/core/cpu_threads.h"
#include "aria/model/tokenizer.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/text_file.h"
#include "aria/train/data/token_shards.h"

namespace aria::cli {

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize",
            "Prints the token ids of a UTF-8 text file as a JSON array (no special tokens added: no BOS).\n"
            "With --shards DIR: tokenizes the file with --threads threads and writes the ids as binary\n"
            "token shards DIR/<split>_NNNNNN.bin (uint16 ids, header with vocabulary size and checksum),\n"
            "replacing that split's old shards; `aria pretrain --shards DIR` trains on them. E.g.\n"
            "  aria tokenize --text third_party/corpus/train.txt --shards third_party/shards\n"
            "  aria tokenize --text third_party/corpus/validation.txt --shards third_party/shards --split validation");
  args.option("text", "UTF-8 text file", "", true)
      .option("vocab", "model folder with tokenizer.json or vocab.json + merges.txt (default: setup's GPT-2 vocabulary)", "")
      .toggle("decode", "also print the text decoded back from the ids, on a second line")
      .option("shards", "write token shards into this directory instead of printing the ids", "")
      .option("split", "with --shards: the split the text is (train or validation)", "train")
      .option("threads", "with --shards: tokenizer threads (0: the CPUs this process may use)", "0")
      .option("shard-tokens", "with --shards: tokens per shard file", "50000000");
  if (!args.parse(argc, argv)) return 0;
  const std::string shard_dir = args.str("shards");
  if (shard_dir.empty()) {
    ARIA_USAGE_CHECK(args.str("split") == "train" && args.str("threads") == "0" && args.str("shard-tokens") == "50000000",
               "aria tokenize: --split, --threads and --shard-tokens need --shards DIR");
  }
  if (!shard_dir.empty()) {
    ARIA_USAGE_CHECK(!args.on("decode"), "aria tokenize: --decode cannot be combined with --shards");
    const std::string split = args.str("split");
    ARIA_USAGE_CHECK(split == "train" || split == "validation", "aria tokenize: --split must be train or validation, got '",
               split, "'");
    int threads = int(args.integer("threads", 0, 1024));
    if (threads == 0) threads = cpu_threads::usable_cpus();  // affinity and cgroup quota, not the core count
    const size_t per_shard = size_t(args.integer("shard-tokens", 1024, int64_t(1) << 40));
    Gpt2Tokenizer tok = load_tokenizer_for(args.str("vocab"));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string text = read_text_file(args.str("text"));
    const auto t1 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tokenize_parallel(tok, text, threads);
    const auto t2 = std::chrono::steady_clock::now();
    const auto paths = write_split_shards(shard_dir, split, ids, uint32_t(tok.vocab_size()), per_shard);
    const auto t3 = std::chrono::steady_clock::now();
    auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("aria tokenize: %zu bytes -> %zu tokens (%.2f bytes/token) in %.1f s with %d threads "
                "(%.2f MB/s); read %.1f s, wrote %zu %s shard(s) to %s in %.1f s\n",
                text.size(), ids.size(), double(text.size()) / double(std::max<size_t>(ids.size(), 1)), sec(t1, t2),
                threads, double(text.size()) / 1e6 / std::max(sec(t1, t2), 1e-9), sec(t0, t1), paths.size(),
                split.c_str(), shard_dir.c_str(), sec(t2, t3));
    return 0;
  }
  Gpt2Tokenizer tok = load_tokenizer_for(args.str("vocab"));
  std::vector<int32_t> ids = tok.encode(read_text_file(args.str("text")));
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  out += "]\n";
  std::fputs(out.c_str(), stdout);
  if (args.on("decode")) std::printf("%s\n", tok.decode(ids).c_str());
  return 0;
}

}  // namespace aria::cli
