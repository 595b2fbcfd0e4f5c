#include "tools/aria/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kLock = ".lock";
constexpr const char* kProbe = ".aria-write-probe.";

// What a run of aria writes into its folder (and the temporaries of those writes).
bool written_by_aria(const std::string& name) {
  for (const char* f : {"report.json", "report.html", "config.json", "log.txt", "gates.json", "checkpoints", "metrics.jsonl",
                        "resume", "tables"}) {
    const std::string s = f;
    if (name == s || name.rfind(s + ".tmp", 0) == 0) return true;
  }
  return name == kLock || name.rfind(kProbe, 0) == 0;
}

void create_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  ARIA_CHECK(!ec, "cannot create ", what, " '", dir, "': ", ec.message());
  ARIA_CHECK(fs::is_directory(dir, ec), what, " '", dir, "' exists and is not a folder");
}

// Opens and locks DIR/.lock; writes our pid into it. Throws naming the holder's pid when taken.
int take_lock(const std::string& dir) {
  const std::string path = (fs::path(dir) / kLock).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  ARIA_CHECK(fd >= 0, "cannot create the lock file '", path, "' of run folder '", dir, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ARIA_FAIL("the lock file '", path, "' of run folder '", dir, "' is not a regular file; remove it");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string pid = n > 0 ? std::string(buf, size_t(n)) : std::string("unknown");
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (err == EWOULDBLOCK)
      ARIA_FAIL("run folder ", dir, " is in use by another aria process (pid ", pid,
                "); wait for it to finish or choose another --out");
    ARIA_FAIL("cannot lock '", path, "': ", std::strerror(err));
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != ssize_t(me.size())) {
    const std::string e = std::strerror(errno);
    ::close(fd);
    ARIA_FAIL("cannot write the lock file '", path, "': ", e);
  }
  return fd;
}

}  // namespace

void check_writable_dir(const std::string& dir, const std::string& what) {
  create_dir(dir, what);
  const std::string probe = (fs::path(dir) / (kProbe + std::to_string(::getpid()))).string();
  try {
    io::FileWriter f(probe);
    f.write("aria\n");
    f.close();
  } catch (const Error& e) {
    ::unlink(probe.c_str());
    ARIA_FAIL(what, " '", dir, "' is not writable: ", e.what());
  }
  ARIA_CHECK(::unlink(probe.c_str()) == 0, what, " '", dir, "': cannot remove the probe file '", probe, "': ",
             std::strerror(errno));
}

RunFolder::RunFolder(const std::string& dir, bool overwrite, const std::string& command, bool resume) : dir_(dir) {
  if (resume) {
    std::error_code ec;
    ARIA_CHECK(fs::is_directory(dir, ec), command, " --resume: run folder '", dir, "' does not exist");
  }
  create_dir(dir, "run folder");
  fd_ = take_lock(dir);
  try {
    if (resume) {  // the previous run's files are kept and continued
      check_writable_dir(dir, "run folder");
      return;
    }
    std::vector<std::string> present, foreign;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (n == kLock) continue;
      present.push_back(n);
      if (!written_by_aria(n)) foreign.push_back(n);
    }
    std::sort(present.begin(), present.end());
    std::sort(foreign.begin(), foreign.end());
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " entries)";
      return s;
    };
    if (!present.empty()) {
      ARIA_CHECK(overwrite, command, ": run folder '", dir, "' is not empty (it holds ", list(present),
                 "): pass --overwrite to replace the previous run, or choose another --out");
      ARIA_CHECK(foreign.empty(), command, ": run folder '", dir, "' holds files aria did not write (", list(foreign),
                 "): --overwrite removes only a previous run's files; move them away or choose another --out");
      for (const std::string& n : present) {
        std::error_code ec;
        fs::remove_all(fs::path(dir) / n, ec);
        ARIA_CHECK(!ec, command, ": --overwrite: cannot remove '", (fs::path(dir) / n).string(),
                   "' of the previous run: ", ec.message());
      }
    }
    check_writable_dir(dir, "run folder");
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

RunFolder::~RunFolder() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race a new locker)
}

RunFolderLock::RunFolderLock(const std::string& dir) {
  std::error_code ec;
  ARIA_CHECK(fs::is_directory(dir, ec), "run folder '", dir, "' does not exist");
  fd_ = take_lock(dir);
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace aria::cli
