// The environment variables the programs (and these test programs, tests/main.cpp) read into
// aria::context(): tools/aria/environment.cpp. The library itself reads none (tests/check_layers.py).
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "aria/core/context.h"
#include "tools/aria/environment.h"

using namespace aria;

namespace {

// Sets (or, for nullopt, unsets) environment variables for a scope and restores them after.
class EnvScope {
 public:
  explicit EnvScope(const std::map<std::string, std::optional<std::string>>& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }
  ~EnvScope() {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }
  EnvScope(const EnvScope&) = delete;
  EnvScope& operator=(const EnvScope&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

Context read(const std::map<std::string, std::optional<std::string>>& vars) {
  EnvScope scope(vars);
  Context c;
  cli::read_environment(c);
  return c;
}

}  // namespace

TEST_CASE("read_environment: ARIA_TF32, ARIA_GEMM_AUTOTUNE and ARIA_GEMM_VERBOSE switch on for 1 only") {
  const Context on = read({{"ARIA_TF32", "1"}, {"ARIA_GEMM_AUTOTUNE", "1"}, {"ARIA_GEMM_VERBOSE", "1"}});
  CHECK(on.tf32);
  CHECK(on.gemm_autotune);
  CHECK(on.gemm_verbose);
  const Context off = read({{"ARIA_TF32", "yes"}, {"ARIA_GEMM_AUTOTUNE", "0"}, {"ARIA_GEMM_VERBOSE", std::nullopt}});
  CHECK_FALSE(off.tf32);
  CHECK_FALSE(off.gemm_autotune);
  CHECK_FALSE(off.gemm_verbose);
}

TEST_CASE("read_environment: OMP_NUM_THREADS fixes the CPU team only as a positive integer") {
  CHECK(read({{"OMP_NUM_THREADS", "3"}}).cpu_threads == 3);
  for (const char* bad : {"", "0", "-2", "2x", "abc", "5000"}) {
    CAPTURE(bad);
    CHECK(read({{"OMP_NUM_THREADS", std::string(bad)}}).cpu_threads == 0);
  }
  CHECK(read({{"OMP_NUM_THREADS", std::nullopt}}).cpu_threads == 0);
}

TEST_CASE("read_environment: the cache folder is ARIA_CACHE, else XDG_CACHE_HOME/aria, else HOME/.cache/aria") {
  CHECK(read({{"ARIA_CACHE", "/tmp/somewhere"}, {"XDG_CACHE_HOME", "/tmp/xdg"}, {"HOME", "/home/u"}}).cache_dir ==
        "/tmp/somewhere");
  CHECK(read({{"ARIA_CACHE", std::nullopt}, {"XDG_CACHE_HOME", "/tmp/xdg"}, {"HOME", "/home/u"}}).cache_dir ==
        "/tmp/xdg/aria");
  CHECK(read({{"ARIA_CACHE", ""}, {"XDG_CACHE_HOME", ""}, {"HOME", "/home/u"}}).cache_dir == "/home/u/.cache/aria");
  CHECK(read({{"ARIA_CACHE", std::nullopt}, {"XDG_CACHE_HOME", std::nullopt}, {"HOME", std::nullopt}}).cache_dir.empty());
}

TEST_CASE("read_environment: ARIA_HOME is the root searched first for third_party/") {
  CHECK(read({{"ARIA_HOME", "/opt/aria"}}).home == "/opt/aria");
  CHECK(read({{"ARIA_HOME", std::nullopt}}).home.empty());
  CHECK(read({{"ARIA_HOME", ""}}).home.empty());
}
