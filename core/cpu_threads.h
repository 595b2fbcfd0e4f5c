// How many CPU threads aria computes with, and how they wait (docs/perf.md, "CPU threads").
//
// One pool: every parallel CPU kernel is an OpenMP loop, and Eigen's GEMM (built with OpenMP) runs on
// the same OpenMP threads, so there is one team of workers, never Eigen's threads and OpenMP's
// competing. Its size is the number of CPUs this process may really use: the affinity mask
// (taskset, cpuset) and the cgroup CPU quota (docker --cpus, Kubernetes limits, systemd CPUQuota),
// not the machine's core count. Its threads wait for work passively after a short spin, so that on a
// machine shared with other CPU-bound processes a worker that has finished its share gives its core
// away instead of burning the time slice the other workers need.
#pragma once
#include <string>
#include <vector>

namespace aria::cpu_threads {

// CPUs in this process's affinity mask (sched_getaffinity); at least 1.
int affinity_cpus();

// A cgroup v2 cpu.max ("max 100000" or "<quota> <period>") as a number of CPUs; 0 when unlimited or
// unreadable.
double parse_cgroup_v2_cpu_max(const std::string& text);
// cgroup v1 cpu.cfs_quota_us ("-1" = unlimited) and cpu.cfs_period_us as a number of CPUs; 0 when
// unlimited or unreadable.
double parse_cgroup_v1_quota(const std::string& quota_us, const std::string& period_us);

// The tightest CPU quota that applies to this process, in CPUs, 0 when none: `proc_cgroup` is the text
// of /proc/self/cgroup, `root` the cgroup mount (/sys/fs/cgroup). Every level from the process's cgroup
// up to the mount root is looked at (a parent's quota limits its children; inside a container the
// path may not exist below the root, which then is the container's own cgroup), for v2 (cpu.max) and
// v1 (cpu.cfs_quota_us under root/<controllers>, root/cpu or root/cpu,cpuacct).
double cgroup_cpu_limit(const std::string& proc_cgroup, const std::string& root);

// Threads for `affinity` CPUs under a quota of `quota` CPUs (0 = none): min(affinity, floor(quota)),
// at least 1. Rounded down: a thread more than the quota is throttled mid-region and holds every
// other thread at the next barrier.
int threads_for(int affinity, double quota);

// threads_for(affinity_cpus(), cgroup_cpu_limit(/proc/self/cgroup, /sys/fs/cgroup)).
int usable_cpus();

// The thread count in use: Context::cpu_threads when the caller set it (> 0), else usable_cpus().
int chosen_threads();

// Sets the team size to chosen_threads() (omp_set_num_threads, Eigen::setNbThreads). The programs call
// it first thing in main(), after their environment (OMP_NUM_THREADS, OpenMP's wait policy) is
// settled: tools/aria/environment.h.
void init_cpu_threads();

// One line for logs: "2 threads (affinity 2 CPUs, cgroup quota none)".
std::string describe();

// Sets the team size of the next parallel regions, OpenMP's and Eigen's alike.
void set_team_size(int n);

// Chooses the team size of a training run by timing it. On a machine shared with other CPU-bound
// processes, more threads can be slower than one, whatever the wait policy: every parallel region
// ends at a barrier that waits for its slowest thread, and a thread the scheduler has parked behind
// another process holds up all the others (docs/perf.md, "CPU threads").
// The tuner skips the first step (allocations, caches), times `probe_steps` steps with each candidate
// team size (the full team, then 1; also half of it when that is 2 or more) and keeps the fastest on
// mean step time for the rest of the run. One decision per run, never revised: the team size changes
// float rounding (reduction order, Eigen's GEMM blocking), so a run's numbers depend only on the
// choice, which the log states. Inactive (always the full team) when the team is one thread or the
// caller fixed Context::cpu_threads (the programs: OMP_NUM_THREADS; for bit-identical reruns across
// machines and loads, set it).
class TeamSizeTuner {
 public:
  TeamSizeTuner(int full_team, bool active, int probe_steps = 2);
  // The tuner of a CPU training loop: the chosen team, active unless Context::cpu_threads is set.
  static TeamSizeTuner for_cpu_training();
  int threads() const { return current_; }
  bool decided() const { return decided_; }
  // The wall time of the step just run with threads(). Returns a line for the log when this step
  // completed the choice ("" otherwise); threads() is then the team for the next step.
  std::string record(double step_seconds);

 private:
  std::vector<int> candidates_;
  std::vector<double> total_;  // summed step time per candidate
  size_t probing_ = 0;
  int samples_ = 0, probe_steps_ = 2, current_ = 1;
  bool skipped_first_ = false, decided_ = true;
};

}  // namespace aria::cpu_threads
