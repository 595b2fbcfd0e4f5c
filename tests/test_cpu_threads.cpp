// The CPU thread count (core/cpu_threads.h): affinity mask, cgroup v1/v2 quotas read from a fake
// cgroup tree, and the rounding that turns them into a team size.
#include <sched.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "aria/core/cpu_threads.h"

namespace fs = std::filesystem;
using namespace aria::cpu_threads;

namespace {

// A throwaway folder standing for /sys/fs/cgroup.
struct FakeCgroupRoot {
  fs::path root = fs::temp_directory_path() / ("aria-cgroup-" + std::to_string(getpid()));
  FakeCgroupRoot() { fs::create_directories(root); }
  ~FakeCgroupRoot() { fs::remove_all(root); }
  void put(const std::string& rel, const std::string& text) const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

}  // namespace

TEST_CASE("cgroup v2 cpu.max parses quota and period") {
  CHECK(parse_cgroup_v2_cpu_max("max 100000\n") == 0);
  CHECK(parse_cgroup_v2_cpu_max("150000 100000\n") == doctest::Approx(1.5));
  CHECK(parse_cgroup_v2_cpu_max("50000 100000") == doctest::Approx(0.5));
  CHECK(parse_cgroup_v2_cpu_max("200000") == doctest::Approx(2.0));  // period left at the default
  CHECK(parse_cgroup_v2_cpu_max("") == 0);
  CHECK(parse_cgroup_v2_cpu_max("garbage 100000") == 0);
  CHECK(parse_cgroup_v2_cpu_max("100000 0") == 0);
}

TEST_CASE("cgroup v1 cfs quota parses, -1 is unlimited") {
  CHECK(parse_cgroup_v1_quota("-1", "100000") == 0);
  CHECK(parse_cgroup_v1_quota("300000", "100000") == doctest::Approx(3.0));
  CHECK(parse_cgroup_v1_quota("25000", "50000") == doctest::Approx(0.5));
  CHECK(parse_cgroup_v1_quota("", "100000") == 0);
  CHECK(parse_cgroup_v1_quota("100000", "") == 0);
}

TEST_CASE("threads from affinity and quota round the quota down and keep at least one") {
  CHECK(threads_for(8, 0) == 8);      // no quota
  CHECK(threads_for(8, 2.0) == 2);
  CHECK(threads_for(8, 2.5) == 2);    // a third thread would be throttled mid-region
  CHECK(threads_for(8, 0.5) == 1);
  CHECK(threads_for(2, 16.0) == 2);   // the affinity mask is the tighter limit
  CHECK(threads_for(0, 0) == 1);
}

TEST_CASE("a fake cgroup v2 tree gives the tightest quota on the path") {
  FakeCgroupRoot fake;
  const std::string self = "0::/user.slice/job\n";
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == 0);  // no files: no limit
  fake.put("user.slice/job/cpu.max", "max 100000\n");
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == 0);
  fake.put("user.slice/cpu.max", "300000 100000\n");  // the parent limits its child
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == doctest::Approx(3.0));
  fake.put("user.slice/job/cpu.max", "150000 100000\n");
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == doctest::Approx(1.5));
  CHECK(threads_for(4, cgroup_cpu_limit(self, fake.root.string())) == 1);
}

TEST_CASE("a fake cgroup v1 tree is read under the cpu controller's mount") {
  FakeCgroupRoot fake;
  const std::string self = "4:memory:/other\n2:cpu,cpuacct:/docker/abc\n0::/\n";
  fake.put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n");
  fake.put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == doctest::Approx(2.0));
  // A memory-only hierarchy's files do not count.
  fake.put("memory/other/cpu.cfs_quota_us", "10000\n");
  fake.put("memory/other/cpu.cfs_period_us", "100000\n");
  CHECK(cgroup_cpu_limit(self, fake.root.string()) == doctest::Approx(2.0));
}

TEST_CASE("inside a container the cgroup path may not exist and the mount root holds the quota") {
  FakeCgroupRoot fake;
  fake.put("cpu/cpu.cfs_quota_us", "100000\n");
  fake.put("cpu/cpu.cfs_period_us", "100000\n");
  CHECK(cgroup_cpu_limit("1:cpu:/kubepods/pod1/ctr\n", fake.root.string()) == doctest::Approx(1.0));
  CHECK(cgroup_cpu_limit("1:cpu:/\n", fake.root.string()) == doctest::Approx(1.0));
  fake.put("cpu/cpu.cfs_quota_us", "-1\n");
  CHECK(cgroup_cpu_limit("1:cpu:/\n", fake.root.string()) == 0);
}

TEST_CASE("affinity_cpus follows sched_setaffinity") {
  cpu_set_t saved;
  REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
  CHECK(affinity_cpus() == CPU_COUNT(&saved));
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c)
    if (CPU_ISSET(c, &saved)) first = c;
  REQUIRE(first >= 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  const int pinned = affinity_cpus();
  const int usable = usable_cpus();
  REQUIRE(sched_setaffinity(0, sizeof saved, &saved) == 0);
  CHECK(pinned == 1);
  CHECK(usable == 1);
  CHECK(affinity_cpus() == CPU_COUNT(&saved));
}

TEST_CASE("the team-size tuner keeps the faster of the full team and one thread, once") {
  TeamSizeTuner t(2, true, 2);
  CHECK_FALSE(t.decided());
  CHECK(t.threads() == 2);
  CHECK(t.record(9.0) == "");  // the first step is not timed
  CHECK(t.record(1.0) == "");
  CHECK(t.threads() == 2);
  CHECK(t.record(1.2) == "");
  CHECK(t.threads() == 1);     // now one thread is timed
  CHECK(t.record(0.5) == "");
  const std::string line = t.record(0.6);
  CHECK(t.decided());
  CHECK(t.threads() == 1);
  CHECK(line.find("2: 1.100 s/step") != std::string::npos);
  CHECK(line.find("1: 0.550 s/step") != std::string::npos);
  CHECK(line.find("with 1 thread") != std::string::npos);
  CHECK(t.record(0.01) == "");  // decided once: later steps change nothing
  CHECK(t.threads() == 1);

  TeamSizeTuner idle(2, true, 2);
  for (double s : {5.0, 0.5, 0.5, 0.9, 0.9}) idle.record(s);
  CHECK(idle.decided());
  CHECK(idle.threads() == 2);
}

TEST_CASE("the tuner also times half the team and is inactive for one thread or a pinned team") {
  TeamSizeTuner t(8, true, 1);
  std::vector<int> timed;
  for (double s : {1.0, 0.8, 0.3, 0.6}) {  // first (untimed), 8 threads, 4 threads, 1 thread
    timed.push_back(t.threads());
    t.record(s);
  }
  CHECK(timed == std::vector<int>{8, 8, 4, 1});
  CHECK(t.decided());
  CHECK(t.threads() == 4);
  CHECK(TeamSizeTuner(1, true).decided());
  CHECK(TeamSizeTuner(4, false).decided());
  CHECK(TeamSizeTuner(4, false).threads() == 4);
}
