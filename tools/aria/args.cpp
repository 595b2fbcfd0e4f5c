#include "tools/aria/args.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/train/continual/aria_config.h"

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

Args& Args::repeated(const std::string& name, const std::string& help) {
  order_.push_back(name);
  Flag f{help, "", false, false};
  f.is_repeated = true;
  flags_[name] = f;
  return *this;
}

Args& Args::alias(const std::string& name, const std::string& target) {
  aliases_[name] = target;
  return *this;
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    ARIA_USAGE_CHECK(a.rfind("--", 0) == 0, program_, ": unexpected argument '", a, "' (see --help)");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const std::string typed = name;
    if (auto al = aliases_.find(name); al != aliases_.end()) name = al->second;
    auto it = flags_.find(name);
    ARIA_USAGE_CHECK(it != flags_.end(), program_, ": unknown flag --", name, " (see --help)");
    // Given twice: refused, naming the flag as typed, unless it is one that repeats (--set). An alias and
    // its target (--seeds, --num-seeds) are one flag.
    if (!it->second.is_repeated && values_.count(name)) {
      const std::string before = typed_.count(name) ? typed_.at(name) : name;
      ARIA_USAGE_CHECK(before != typed, program_, ": --", typed, " is given twice; give it once",
                       it->second.is_toggle ? "" : " (with the value you mean)");
      throw UsageError(detail::concat(program_, ": --", typed, " and --", before, " are the same flag (--",
                                      before == name ? typed : before, " is another name for --", name,
                                      "): give one of them"));
    }
    if (typed != name) typed_[name] = typed;
    if (it->second.is_toggle) {
      ARIA_USAGE_CHECK(!has_value, program_, ": --", name, " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!has_value) {
      // A word starting with "--" is the next flag, never this one's value (`--out --quick` must not
      // make a folder named "--quick"); a value that really starts with "--" goes after '='.
      const bool next_is_flag = i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) == 0;
      ARIA_USAGE_CHECK(i + 1 < argc && !next_is_flag, program_, ": flag --", name, " needs a value",
                 next_is_flag ? std::string(" (got the flag '") + argv[i + 1] + "'; write --" + name +
                                    "=VALUE for a value that starts with --)"
                              : std::string());
      value = argv[++i];
    }
    if (it->second.is_repeated) {
      repeated_values_[name].push_back(value);
      values_[name] = value;
      continue;
    }
    values_[name] = value;
  }
  for (auto& [name, f] : flags_)
    ARIA_USAGE_CHECK(!f.required || values_.count(name), program_, ": --", name, " is required (see --help)");
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

std::vector<std::string> Args::values(const std::string& name) const {
  auto v = repeated_values_.find(name);
  return v == repeated_values_.end() ? std::vector<std::string>{} : v->second;
}

int64_t Args::integer(const std::string& name, int64_t min_value, int64_t max_value) const {
  std::string s = str(name);
  const std::string shown = typed_.count(name) ? typed_.at(name) : name;
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  // std::stoll skips leading blanks: " 5" is refused here like "5x".
  ARIA_USAGE_CHECK(used == s.size() && !s.empty() && !std::isspace((unsigned char)s[0]), program_, ": --", shown,
                   " must be an integer, got '", s, "'");
  ARIA_USAGE_CHECK(v >= min_value && v <= max_value, program_, ": --", shown, " must be in [", min_value, ", ",
             max_value, "], got ", v);
  return v;
}

double Args::number(const std::string& name, double min_value, double max_value) const {
  std::string s = str(name);
  const std::string shown = typed_.count(name) ? typed_.at(name) : name;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  ARIA_USAGE_CHECK(used == s.size() && !s.empty() && !std::isspace((unsigned char)s[0]) && std::isfinite(v), program_, ": --", shown,
             " must be a number, got '", s, "'");
  ARIA_USAGE_CHECK(v >= min_value && v <= max_value, program_, ": --", shown, " must be in [", min_value, ", ",
             max_value, "], got ", v);
  return v;
}

std::string Args::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& name : order_) {
    const Flag& f = flags_.at(name);
    os << "  --" << name << (f.is_toggle ? "" : " VALUE") << (f.is_repeated ? " (repeatable)" : "");
    for (const auto& [al, target] : aliases_)
      if (target == name) os << ", --" << al;
    os << "\n      " << f.help;
    if (f.required) os << " (required)";
    else if (!f.default_value.empty()) os << " (default: " << f.default_value << ")";
    os << "\n";
  }
  return os.str();
}

void add_experiment_flags(Args& a) {
  a.option("seed", "base seed (train.seed): repeat r uses seed + r", "")
      .option("num-seeds", "repeats with seeds seed, seed+1, ...: mean and spread reported (config 'seeds')", "")
      .alias("seeds", "num-seeds")
      .option("orders", "task orders per seed: the listed order, then seeded random permutations; 0 = auto (3 on "
                        "CUDA, 1 on the CPU) (config 'orders')", "")
      .option("text-field", "the JSON key / CSV column holding the text (data.text_field; default text)", "")
      .option("label-field", "the JSON key / CSV column holding the label (data.label_field; default label)", "")
      .repeated("set", "KEY=VALUE: set any config key, dotted (train.lr=1e-4, aria.spc_lambda=50, "
                       "data.validation_fraction=0.2, tasks='[\"a\",\"b\"]'); VALUE is JSON, else a string");
}

void apply_experiment_flags(const Args& a, ExperimentConfig& c, const std::string& who) {
  c = apply_config_sets(c, a.values("set"), who);
  if (a.given("seed")) c.train.seed = uint64_t(a.integer("seed", 0, int64_t(1) << 53));
  if (a.given("num-seeds")) c.seeds = int(a.integer("num-seeds", 1, 1000));
  if (a.given("orders")) c.orders = int(a.integer("orders", 0, 100));
  if (a.given("text-field")) c.data.text_field = a.str("text-field");
  if (a.given("label-field")) c.data.label_field = a.str("label-field");
}

const std::vector<std::string>& experiment_flag_names() {
  static const std::vector<std::string> names = {"seed", "num-seeds", "orders", "text-field", "label-field", "set"};
  return names;
}

ExperimentConfig apply_config_sets(const ExperimentConfig& c, const std::vector<std::string>& sets,
                                   const std::string& who) {
  if (sets.empty()) return c;
  using json = nlohmann::json;
  json j = experiment_config_to_json(c);
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    ARIA_USAGE_CHECK(eq != std::string::npos && eq > 0, who, ": --set '", s, "' must be KEY=VALUE (a dotted config key "
                     "such as train.lr=1e-4; see --print-config for the keys)");
    const std::string key = s.substr(0, eq), text = s.substr(eq + 1);
    json value;
    try {
      value = json::parse(text);
    } catch (const json::exception&) {
      value = text;  // not JSON: a string (cuda:0, a path)
    }
    json* node = &j;
    std::string path;
    for (size_t start = 0;;) {
      const size_t dot = key.find('.', start);
      const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      ARIA_USAGE_CHECK(!part.empty(), who, ": --set '", s, "': the key '", key, "' has an empty part");
      path += (path.empty() ? "" : ".") + part;
      if (dot == std::string::npos) {
        ARIA_USAGE_CHECK(node->contains(part), who, ": --set '", s, "': unknown config key '", path, "'");
        (*node)[part] = value;
        break;
      }
      ARIA_USAGE_CHECK(node->contains(part) && (*node)[part].is_object(), who, ": --set '", s,
                       "': unknown config section '", path, "'");
      node = &(*node)[part];
      start = dot + 1;
    }
  }
  try {
    return parse_experiment_config(j, "--set");
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(who + ": " + e.what());
  }
}

}  // namespace aria::cli
