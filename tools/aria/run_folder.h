// The run folder of `aria run` / `aria continual` (--out): claimed before any work, so one run never
// mixes its files with another's.
//
//  - A lock: flock(LOCK_EX | LOCK_NB) on OUT/.lock (which holds the owner's pid), held until the run
//    ends. A second aria process writing into the same folder is refused at once.
//  - An existing run is never silently replaced: a folder holding anything but .lock is refused unless
//    overwrite is set; then the previous run's files (report.json, report.html, config.json, log.txt,
//    gates.json, checkpoints/, metrics.jsonl, resume/, their temporaries) are removed before the new run starts. A file aria
//    does not write is never removed: such a folder is refused even with --overwrite.
//  - The folder is checked writable (a probe file is created, written, closed and removed), so a
//    read-only or full file system is an error before the first training step.
#pragma once
#include <string>

namespace aria::cli {

class RunFolder {
 public:
  // Creates `dir` if needed, takes the lock, then checks (and with overwrite, clears) its contents and
  // proves it writable. `command` ("aria run") starts the messages.
  // resume (--resume): `dir` must exist; its files are kept (no emptiness check), only locked and probed.
  RunFolder(const std::string& dir, bool overwrite, const std::string& command, bool resume = false);
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int fd_ = -1;
};

// Only the lock (for --render, which rewrites report.html of an existing run folder).
class RunFolderLock {
 public:
  explicit RunFolderLock(const std::string& dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Creates `dir` (and its parents) and proves it writable: a probe file is created, written, closed and
// removed. Errors name the folder and the OS's reason.
void check_writable_dir(const std::string& dir, const std::string& what);

}  // namespace aria::cli
