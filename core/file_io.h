// Checked file I/O: every read refuses what is not a regular file before opening it (a FIFO would block
// open() forever), and every write is checked through close, so a full disk or a read-only folder is an
// error naming the file and the OS's reason, never a silently empty file.
//
// Durable replacement (write_file_atomic, AtomicDir): write a temporary, fsync it, rename it over the
// target, fsync the folder. A crash leaves either the old or the new content, never a mix.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace aria::io {

// Throws unless `path` is a regular file (following links). `what` names it in the message
// ("text file", "vocabulary", ...): "<what> '<path>' does not exist" / "is a directory" / "is not a
// regular file (a FIFO)".
void require_regular_file(const std::string& path, const std::string& what);
// require_regular_file, then the whole content. Refuses files larger than max_bytes.
std::string read_file(const std::string& path, const std::string& what, uint64_t max_bytes = uint64_t(1) << 34);

// A new file written with checked writes; close() (or commit via AtomicFile) reports any error.
class FileWriter {
 public:
  // Creates (truncates) `path`, or appends to it.
  FileWriter(const std::string& path, bool append = false);
  FileWriter(FileWriter&& o) noexcept;
  FileWriter& operator=(FileWriter&&) = delete;
  ~FileWriter();  // closes without reporting: call close() to see errors
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void sync();   // fsync
  void close();  // checked; idempotent
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes `path` whole or not at all: temporary in the same folder, fsync, rename, folder fsync.
void write_file_atomic(const std::string& path, std::string_view data);

// The streaming form: write() into a temporary beside `path`, then commit() makes it `path`.
// Destroyed without commit(): the temporary is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  void write(const void* data, size_t n) { out_.write(data, n); }
  void commit();

 private:
  std::string path_, tmp_;
  FileWriter out_;
  bool done_ = false;
};

// fsync of a folder (makes renames and creations inside it durable).
void sync_dir(const std::string& dir);
// rename(2), checked; the crash hook runs first.
void rename_path(const std::string& from, const std::string& to);
// Swaps two existing paths atomically (renameat2 RENAME_EXCHANGE). Returns false where the file system
// cannot (the caller then falls back to two renames).
bool exchange_paths(const std::string& a, const std::string& b);

// A test hook run before every durability step (each fsync and rename) with its name, e.g.
// "rename trainer.json.tmp.123 -> ...". A test throws from it (a type that is not aria::Error) to
// stop the writer there as a kill would: no clean-up runs.
using CrashHook = std::function<void(const std::string& point)>;
void set_crash_hook(CrashHook hook);
void crash_point(const std::string& point);

// A checksum of a file's bytes (64-bit, not cryptographic): tells a checkpoint's files from another
// save's.
uint64_t file_checksum(const std::string& path);
std::string hex64(uint64_t v);

}  // namespace aria::io
