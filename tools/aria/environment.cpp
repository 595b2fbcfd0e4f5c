#include "tools/aria/environment.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace aria::cli {

namespace {

bool is_one(const char* name) {
  const char* e = std::getenv(name);
  return e != nullptr && std::strcmp(e, "1") == 0;
}

}  // namespace

void read_environment(Context& c) {
  if (is_one("ARIA_TF32")) c.tf32 = true;
  if (is_one("ARIA_GEMM_AUTOTUNE")) c.gemm_autotune = true;
  if (is_one("ARIA_GEMM_VERBOSE")) c.gemm_verbose = true;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 4096) c.cpu_threads = int(n);
  }
  auto value = [](const char* name) -> std::string {
    const char* e = std::getenv(name);
    return e ? e : "";
  };
  if (const std::string h = value("ARIA_HOME"); !h.empty()) c.home = h;
  if (const std::string a = value("ARIA_CACHE"), x = value("XDG_CACHE_HOME"), h = value("HOME"); !a.empty())
    c.cache_dir = a;
  else if (!x.empty())
    c.cache_dir = x + "/aria";
  else if (!h.empty())
    c.cache_dir = h + "/.cache/aria";
}

const char* const kSpinCount = "10000";

void set_openmp_wait_policy(char** argv) {
  const bool user_policy = std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT");
  if (user_policy || std::getenv("ARIA_CPU_THREADS_SET") || !argv || !argv[0]) return;
  setenv("GOMP_SPINCOUNT", kSpinCount, 1);
  setenv("ARIA_CPU_THREADS_SET", "1", 1);
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  // Still here: no /proc (or no exec permission). Run with libgomp's default policy.
  unsetenv("GOMP_SPINCOUNT");
}

std::string openmp_description() {
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::string s = std::getenv("OMP_NUM_THREADS") ? ", OMP_NUM_THREADS set" : "";
  if (policy) s += std::string(", OMP_WAIT_POLICY=") + policy;
  if (spin) s += std::string(", GOMP_SPINCOUNT=") + spin;
  if (!policy && !spin) s += ", libgomp's default wait policy";
  return s;
}

}  // namespace aria::cli
