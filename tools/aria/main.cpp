// aria command-line entry point: one subcommand per file in tools/aria/ (cmd_<name>.cpp).
// Every failure the user can cause ends as "aria: error: <message>": exit code 2 for a usage error
// (cli::UsageError: unknown flag, missing or malformed value, bad combination of flags; an unknown
// command), 1 for a runtime error (aria::Error), 3 for an internal error.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include "aria/core/cpu_threads.h"
#include "aria/core/error.h"
#include "tools/aria/args.h"
#include "tools/aria/commands.h"
#include "tools/aria/environment.h"
#include "tools/aria/run_state.h"

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
  std::printf("usage: aria <command> [flags]    (aria <command> --help for its flags; aria --version)\n\ncommands:\n");
  for (const Command& c : kCommands) std::printf("  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  // Before any OpenMP region: passive waits (may re-execute the program once to set libgomp's wait
  // policy), the switches from the environment, then the team size from them or from the CPUs this
  // process may use (core/cpu_threads.h).
  aria::cli::set_openmp_wait_policy(argv);
  aria::cli::read_environment(aria::context());
  aria::cpu_threads::init_cpu_threads();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version")) {
    if (argc > 2) {
      std::fprintf(stderr, "aria: error: %s takes no arguments\n", argv[1]);
      return 2;
    }
    std::printf("%s\n", aria::cli::aria_version_line().c_str());
    return 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      const int rc = c.run(argc - 2, argv + 2);
      // What was printed is the result: a failed write to standard output (a full disk behind a
      // redirection) is an error, not a silent exit 0.
      std::cout.flush();
      errno = 0;
      const bool flush_failed = std::fflush(stdout) != 0;
      const int err = errno;
      if (flush_failed || std::ferror(stdout) || std::cout.fail()) {
        // The reason is known only when the last flush failed (an earlier failed write's errno is gone).
        std::fprintf(stderr, "aria: error: cannot write standard output%s%s\n", flush_failed && err ? ": " : "",
                     flush_failed && err ? std::strerror(err) : "");
        return 1;
      }
      return rc;
    } catch (const aria::cli::UsageError& e) {
      std::fprintf(stderr, "aria: error: %s\n", e.what());
      return 2;
    } catch (const aria::Error& e) {
      std::fprintf(stderr, "aria: error: %s\n", e.what());
      return 1;
    } catch (const std::filesystem::filesystem_error& e) {
      // A path the user gave that the OS refused (read-only, not a folder, full disk): it names the path
      // and the OS's reason.
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
  std::fprintf(stderr, "aria: error: unknown command '%s' (aria --help lists them)\n", argv[1]);
  return 2;
}
