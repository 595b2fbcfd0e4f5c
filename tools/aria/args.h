// A small command-line flag parser shared by every aria subcommand: declared flags only
// (unknown ones are errors), --flag value or --flag=value, --help prints the usage.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace aria::cli {

class Args {
 public:
  Args(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}
  // A flag taking a value; an empty default with required=true makes it mandatory.
  Args& option(const std::string& name, const std::string& help, const std::string& default_value = "",
               bool required = false);
  Args& toggle(const std::string& name, const std::string& help);  // a boolean flag without a value
  // Returns false when --help was given (usage already printed). Throws aria::Error on bad input.
  bool parse(int argc, char** argv);

  std::string str(const std::string& name) const;
  bool given(const std::string& name) const;  // set on the command line (not just defaulted)
  bool on(const std::string& name) const;     // toggles
  int64_t integer(const std::string& name, int64_t min_value, int64_t max_value) const;
  double number(const std::string& name, double min_value, double max_value) const;
  std::string usage() const;

 private:
  struct Flag {
    std::string help, default_value;
    bool required = false, is_toggle = false;
  };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, std::string> values_;
};

}  // namespace aria::cli
