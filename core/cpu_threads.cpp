// CPU thread count from affinity and cgroup quota (the OpenMP wait policy: tools/aria/environment.cpp).
#include "aria/core/cpu_threads.h"

#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <Eigen/Core>
#include <omp.h>

#include "aria/core/context.h"

namespace aria::cpu_threads {

namespace {

namespace fs = std::filesystem;

// The first line of a small file, "" when it cannot be read (cgroup files vanish and differ by kernel).
std::string first_line(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

bool positive_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v) || v <= 0) return false;
  while (*end == ' ' || *end == '\n') ++end;
  if (*end) return false;
  out = v;
  return true;
}

// The tighter of two limits where 0 means none.
double tighter(double a, double b) { return a <= 0 ? b : b <= 0 ? a : std::min(a, b); }

// dir, its parents, up to and including root (dir is below root, or root itself when it is not).
std::vector<fs::path> levels(const fs::path& root, const std::string& cgroup_path) {
  std::vector<fs::path> out;
  fs::path rel = fs::path(cgroup_path).relative_path();
  for (;;) {
    out.push_back(root / rel);
    if (rel.empty()) break;
    rel = rel.parent_path();
  }
  return out;
}

}  // namespace

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? int(n) : 1;
  }
  return std::max(1, CPU_COUNT(&set));
}

double parse_cgroup_v2_cpu_max(const std::string& text) {
  std::istringstream in(text);
  std::string quota, period;
  if (!(in >> quota)) return 0;
  if (!(in >> period)) period = "100000";  // the kernel's default period when only the quota is written
  double q = 0, p = 0;
  if (quota == "max" || !positive_number(quota, q) || !positive_number(period, p)) return 0;
  return q / p;
}

double parse_cgroup_v1_quota(const std::string& quota_us, const std::string& period_us) {
  double q = 0, p = 0;
  if (!positive_number(quota_us, q) || !positive_number(period_us, p)) return 0;  // "-1": unlimited
  return q / p;
}

double cgroup_cpu_limit(const std::string& proc_cgroup, const std::string& root) {
  double limit = 0;
  std::istringstream lines(proc_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      for (const fs::path& dir : levels(root, path))
        limit = tighter(limit, parse_cgroup_v2_cpu_max(first_line(dir / "cpu.max")));
      continue;
    }
    bool has_cpu = false;
    std::istringstream names(controllers);
    for (std::string c; std::getline(names, c, ',');) has_cpu = has_cpu || c == "cpu";
    if (!has_cpu) continue;
    for (const std::string& mount : {controllers, std::string("cpu"), std::string("cpu,cpuacct")})
      for (const fs::path& dir : levels(fs::path(root) / mount, path))
        limit = tighter(limit, parse_cgroup_v1_quota(first_line(dir / "cpu.cfs_quota_us"),
                                                     first_line(dir / "cpu.cfs_period_us")));
  }
  return limit;
}

int threads_for(int affinity, double quota) {
  int n = std::max(1, affinity);
  if (quota > 0) n = std::min(n, std::max(1, int(std::floor(quota + 1e-9))));
  return n;
}

int usable_cpus() {
  std::ifstream f("/proc/self/cgroup");
  std::stringstream text;
  text << f.rdbuf();
  return threads_for(affinity_cpus(), cgroup_cpu_limit(text.str(), "/sys/fs/cgroup"));
}

int chosen_threads() {
  const int n = context().cpu_threads;
  return n > 0 ? n : usable_cpus();
}

void init_cpu_threads() { set_team_size(chosen_threads()); }

void set_team_size(int n) {
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}

TeamSizeTuner::TeamSizeTuner(int full_team, bool active, int probe_steps)
    : probe_steps_(std::max(1, probe_steps)), current_(std::max(1, full_team)) {
  if (!active || current_ <= 1) return;
  candidates_ = {current_, 1};
  if (current_ / 2 >= 2) candidates_.insert(candidates_.begin() + 1, current_ / 2);
  total_.assign(candidates_.size(), 0.0);
  decided_ = false;
}

TeamSizeTuner TeamSizeTuner::for_cpu_training() {
  return TeamSizeTuner(chosen_threads(), context().cpu_threads <= 0);
}

std::string TeamSizeTuner::record(double step_seconds) {
  if (decided_) return "";
  if (!skipped_first_) {  // the first step pays for allocations and cold caches
    skipped_first_ = true;
    return "";
  }
  total_[probing_] += step_seconds;
  if (++samples_ < probe_steps_) return "";
  samples_ = 0;
  if (++probing_ < candidates_.size()) {
    current_ = candidates_[probing_];
    return "";
  }
  size_t best = 0;
  for (size_t i = 1; i < candidates_.size(); ++i)
    if (total_[i] < total_[best]) best = i;
  current_ = candidates_[best];
  decided_ = true;
  std::string line = "CPU threads: timed";
  for (size_t i = 0; i < candidates_.size(); ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s %d: %.3f s/step", i ? "," : "", candidates_[i], total_[i] / probe_steps_);
    line += buf;
  }
  return line + "; training on with " + std::to_string(current_) + (current_ == 1 ? " thread" : " threads");
}

std::string describe() {
  std::ifstream f("/proc/self/cgroup");
  std::stringstream text;
  text << f.rdbuf();
  const double quota = cgroup_cpu_limit(text.str(), "/sys/fs/cgroup");
  char q[32] = "none";
  if (quota > 0) std::snprintf(q, sizeof q, "%.2f CPUs", quota);
  return std::to_string(omp_get_max_threads()) + " threads (affinity " + std::to_string(affinity_cpus()) +
         " CPUs, cgroup quota " + q + (context().cpu_threads > 0 ? ", fixed by the caller" : "") + ")";
}

}  // namespace aria::cpu_threads
