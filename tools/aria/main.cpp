// aria command-line entry point: one subcommand per file in tools/aria/ (cmd_<name>.cpp).
// Every failure the user can cause ends as "aria: error: <message>" and exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/error.h"
#include "tools/aria/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

const Command kCommands[] = {
    {"run", "the main job: the default experiment (or --config) on real tasks, every method, report.html",
     aria::cli::cmd_run},
    {"score", "mean next-token cross-entropy of a text under a GPT-2 checkpoint (JSON)", aria::cli::cmd_score},
    {"tokenize", "GPT-2 BPE token ids of a text file", aria::cli::cmd_tokenize},
    {"generate", "sample text from a GPT-2 checkpoint", aria::cli::cmd_generate},
    {"pretrain", "train a GPT-2 language model on a text corpus and save it in Hugging Face format",
     aria::cli::cmd_pretrain},
    {"continual", "run a task sequence with aria and the baselines; write report.json and print the tables",
     aria::cli::cmd_continual},
};

void print_help() {
  std::printf("aria: continual fine-tuning of GPT-2 without catastrophic forgetting (C++/CUDA)\n\n");
  std::printf("usage: aria <command> [flags]    (aria <command> --help for its flags)\n\ncommands:\n");
  for (const Command& c : kCommands) std::printf("  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const aria::Error& e) {
      std::fprintf(stderr, "aria: error: %s\n", e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "aria: error: out of host memory\n");
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "aria: internal error: %s\n", e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "aria: unknown command '%s' (aria --help lists them)\n", argv[1]);
  return 2;
}
