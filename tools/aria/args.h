// A small command-line flag parser shared by every aria subcommand and aria-bench: declared flags
// only (unknown ones are errors), --flag value or --flag=value, --help prints the usage. A flag given
// twice is a usage error naming it (only repeated() flags such as --set may repeat): the second value
// silently winning hides typos in long command lines and scripts.
//
// Exit codes (every subcommand, aria-bench too): 0 success, 1 a runtime error (aria::Error: a bad
// file, a failed write, a bad model), 2 a usage error (cli::UsageError: an unknown flag, a missing
// or malformed value, a bad combination of flags), 3 an internal error; 130/143 after SIGINT/SIGTERM.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "aria/core/error.h"

namespace aria {
struct ExperimentConfig;
}

namespace aria::cli {

// A command line that cannot be run as written: main() prints it and exits with code 2.
struct UsageError : Error {
  using Error::Error;
};

// ARIA_USAGE_CHECK(cond, "message parts", ...): throws UsageError (exit code 2).
#define ARIA_USAGE_CHECK(cond, ...)                                                        \
  do {                                                                                     \
    if (!(cond)) throw ::aria::cli::UsageError(::aria::detail::concat(__VA_ARGS__));      \
  } while (0)

// Applies `--set key=value` settings to an experiment config: the key is dotted ("train.lr",
// "aria.spc_lambda", "data.text_field", "tasks"), the value JSON ("1e-4", "true", "[\"a\",\"b\"]")
// or, when it is not valid JSON, a string ("cuda:0"). The result is validated like a config file;
// a bad key or value is a UsageError naming the key. `who` prefixes messages ("aria run").
ExperimentConfig apply_config_sets(const ExperimentConfig& c, const std::vector<std::string>& sets,
                                   const std::string& who);

class Args;

// The flags that change an experiment config, shared by aria run and aria continual:
// --seed S (train.seed), --num-seeds N (seeds; --seeds is a documented alias), --text-field,
// --label-field (data.text_field / data.label_field), --set KEY=VALUE (repeatable, any key).
void add_experiment_flags(Args& a);
// Applies them to c: --set first, then the named flags. Does not validate the result.
void apply_experiment_flags(const Args& a, ExperimentConfig& c, const std::string& who);
// The names of those flags, for refusing them with --resume.
const std::vector<std::string>& experiment_flag_names();

class Args {
 public:
  Args(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)), program_("aria " + command_) {}
  // The name messages and the usage line start with ("aria run" by default; "aria-bench").
  Args& program(const std::string& name) {
    program_ = name;
    return *this;
  }
  // A flag taking a value; an empty default with required=true makes it mandatory.
  Args& option(const std::string& name, const std::string& help, const std::string& default_value = "",
               bool required = false);
  Args& toggle(const std::string& name, const std::string& help);  // a boolean flag without a value
  // A flag that may be given several times (--set a=1 --set b=2); values() returns them in order.
  Args& repeated(const std::string& name, const std::string& help);
  // Another name for a declared flag (--seeds for --num-seeds): given() / str() of the target see it.
  Args& alias(const std::string& name, const std::string& target);
  // Returns false when --help was given (usage already printed). Throws UsageError on bad input.
  bool parse(int argc, char** argv);

  std::string str(const std::string& name) const;
  bool given(const std::string& name) const;  // set on the command line (not just defaulted)
  bool on(const std::string& name) const;     // toggles
  std::vector<std::string> values(const std::string& name) const;  // repeated flags
  int64_t integer(const std::string& name, int64_t min_value, int64_t max_value) const;
  double number(const std::string& name, double min_value, double max_value) const;
  std::string usage() const;

 private:
  struct Flag {
    std::string help, default_value;
    bool required = false, is_toggle = false, is_repeated = false;
  };
  std::string command_, summary_, program_;
  std::vector<std::string> order_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_values_;
  std::map<std::string, std::string> aliases_;  // alias -> target
  std::map<std::string, std::string> typed_;    // target -> the alias typed, for messages
};

}  // namespace aria::cli
