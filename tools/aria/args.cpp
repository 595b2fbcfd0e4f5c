#include "tools/aria/args.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace aria::cli {

Args& Args::option(const std::string& name, const std::string& help, const std::string& default_value, bool required) {
  order_.push_back(name);
  flags_[name] = Flag{help, default_value, required, false};
  return *this;
}

Args& Args::toggle(const std::string& name, const std::string& help) {
  order_.push_back(name);
  flags_[name] = Flag{help, "", false, true};
  return *this;
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    ARIA_CHECK(a.rfind("--", 0) == 0, "aria ", command_, ": unexpected argument '", a, "' (see --help)");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags_.find(name);
    ARIA_CHECK(it != flags_.end(), "aria ", command_, ": unknown flag --", name, " (see --help)");
    if (it->second.is_toggle) {
      ARIA_CHECK(!has_value, "aria ", command_, ": --", name, " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!has_value) {
      // A word starting with "--" is the next flag, never this one's value (`--out --quick` must not
      // make a folder named "--quick"); a value that really starts with "--" goes after '='.
      const bool next_is_flag = i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) == 0;
      ARIA_CHECK(i + 1 < argc && !next_is_flag, "aria ", command_, ": flag --", name, " needs a value",
                 next_is_flag ? std::string(" (got the flag '") + argv[i + 1] + "'; write --" + name +
                                    "=VALUE for a value that starts with --)"
                              : std::string());
      value = argv[++i];
    }
    values_[name] = value;
  }
  for (auto& [name, f] : flags_)
    ARIA_CHECK(!f.required || values_.count(name), "aria ", command_, ": --", name, " is required (see --help)");
  return true;
}

std::string Args::str(const std::string& name) const {
  auto v = values_.find(name);
  if (v != values_.end()) return v->second;
  auto f = flags_.find(name);
  ARIA_CHECK(f != flags_.end(), "internal: flag --", name, " was not declared");
  return f->second.default_value;
}

bool Args::given(const std::string& name) const { return values_.count(name) > 0; }
bool Args::on(const std::string& name) const { return values_.count(name) > 0; }

int64_t Args::integer(const std::string& name, int64_t min_value, int64_t max_value) const {
  std::string s = str(name);
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  ARIA_CHECK(used == s.size() && !s.empty(), "aria ", command_, ": --", name, " must be an integer, got '", s, "'");
  ARIA_CHECK(v >= min_value && v <= max_value, "aria ", command_, ": --", name, " must be in [", min_value, ", ",
             max_value, "], got ", v);
  return v;
}

double Args::number(const std::string& name, double min_value, double max_value) const {
  std::string s = str(name);
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  ARIA_CHECK(used == s.size() && !s.empty() && std::isfinite(v), "aria ", command_, ": --", name,
             " must be a number, got '", s, "'");
  ARIA_CHECK(v >= min_value && v <= max_value, "aria ", command_, ": --", name, " must be in [", min_value, ", ",
             max_value, "], got ", v);
  return v;
}

std::string Args::usage() const {
  std::ostringstream os;
  os << "usage: aria " << command_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& name : order_) {
    const Flag& f = flags_.at(name);
    os << "  --" << name << (f.is_toggle ? "" : " VALUE") << "\n      " << f.help;
    if (f.required) os << " (required)";
    else if (!f.default_value.empty()) os << " (default: " << f.default_value << ")";
    os << "\n";
  }
  return os.str();
}

}  // namespace aria::cli
