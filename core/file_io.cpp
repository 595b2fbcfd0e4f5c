#include "aria/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "aria/core/error.h"

namespace aria::io {

namespace {

CrashHook& hook() {
  static CrashHook h;
  return h;
}

std::string os_error() { return std::strerror(errno); }

std::string parent_of(const std::string& path) {
  const std::string p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace

void set_crash_hook(CrashHook h) { hook() = std::move(h); }

void crash_point(const std::string& point) {
  if (hook()) hook()(point);
}

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) ARIA_FAIL(what, " '", path, "' does not exist");
    ARIA_FAIL("cannot access ", what, " '", path, "': ", os_error());
  }
  ARIA_CHECK(S_ISREG(st.st_mode), what, " '", path, "' is ", kind_of(st.st_mode), ", not a regular file");
}

std::string read_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  require_regular_file(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  ARIA_CHECK(fd >= 0, "cannot open ", what, " '", path, "': ", os_error());
  std::string out;
  struct stat st;
  const bool sized = ::fstat(fd, &st) == 0;
  if (sized && uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    ARIA_FAIL(what, " '", path, "' is ", st.st_size, " bytes, more than the ", max_bytes, " this reader accepts");
  }
  // The buffer fits the file (a config.json of 200 bytes must not cost a zero-filled megabyte), at
  // most 1 MiB per read() for large files.
  const uint64_t want = sized ? std::max<uint64_t>(uint64_t(st.st_size) + 1, 4096) : uint64_t(1) << 20;
  std::vector<char> buf(size_t(std::min<uint64_t>(want, uint64_t(1) << 20)));
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string e = os_error();
      ::close(fd);
      ARIA_FAIL("error reading ", what, " '", path, "': ", e);
    }
    if (n == 0) break;
    out.append(buf.data(), size_t(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      ARIA_FAIL(what, " '", path, "' is larger than the ", max_bytes, " bytes this reader accepts");
    }
  }
  ::close(fd);
  return out;
}

FileWriter::FileWriter(const std::string& path, bool append) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  ARIA_CHECK(fd_ >= 0, "cannot create '", path, "': ", os_error());
}

FileWriter::FileWriter(FileWriter&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, size_t n) {
  ARIA_CHECK(fd_ >= 0, "write to closed file '", path_, "'");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Bounded chunks: some file systems cap one write at 2 GiB.
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    ARIA_CHECK(w > 0, "cannot write '", path_, "': ", w < 0 ? os_error() : std::string("no progress"));
    p += w;
    n -= size_t(w);
  }
}

void FileWriter::sync() {
  crash_point("fsync " + path_);
  ARIA_CHECK(::fsync(fd_) == 0, "cannot write '", path_, "' to disk (fsync): ", os_error());
}

void FileWriter::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  ARIA_CHECK(::close(fd) == 0, "cannot write '", path_, "' (close): ", os_error());
}

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())), out_(tmp_) {}

AtomicFile::~AtomicFile() {
  if (!done_) {
    try {
      out_.close();  // a failed write is being abandoned: its close errors no longer matter
    } catch (const Error&) {
    }
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::commit() {
  out_.sync();
  out_.close();
  rename_path(tmp_, path_);
  done_ = true;
  sync_dir(parent_of(path_));
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data.data(), data.size());
  f.commit();
}

void sync_dir(const std::string& dir) {
  crash_point("fsync " + dir + "/");
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ARIA_CHECK(fd >= 0, "cannot open folder '", dir, "' to sync it: ", os_error());
  const int rc = ::fsync(fd);
  const std::string e = rc == 0 ? "" : os_error();
  ::close(fd);
  // Some file systems refuse fsync on folders (EINVAL); their renames are then as durable as they get.
  ARIA_CHECK(rc == 0 || e == std::strerror(EINVAL), "cannot sync folder '", dir, "': ", e);
}

void rename_path(const std::string& from, const std::string& to) {
  crash_point("rename " + from + " -> " + to);
  ARIA_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename '", from, "' to '", to, "': ", os_error());
}

bool exchange_paths(const std::string& a, const std::string& b) {
#if defined(SYS_renameat2)
  crash_point("exchange " + a + " <-> " + b);
  constexpr unsigned kRenameExchange = 1u << 1;  // RENAME_EXCHANGE
  if (::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), kRenameExchange) == 0) return true;
  ARIA_CHECK(errno == EINVAL || errno == ENOSYS || errno == ENOTSUP, "cannot exchange '", a, "' and '", b,
             "': ", os_error());
#endif
  return false;
}

uint64_t file_checksum(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ARIA_CHECK(fd >= 0, "cannot open '", path, "': ", os_error());
  // Word-wise multiply-xorshift (several GB/s): each 8-byte word, its position and the length enter.
  uint64_t h = 0x9E3779B97F4A7C15ull, len = 0;
  std::vector<unsigned char> buf(1 << 20);
  for (;;) {
    // Fill the buffer whole (short reads must not move the word boundaries).
    size_t n = 0;
    while (n < buf.size()) {
      const ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        const std::string e = os_error();
        ::close(fd);
        ARIA_FAIL("error reading '", path, "': ", e);
      }
      if (r == 0) break;
      n += size_t(r);
    }
    if (n == 0) break;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, buf.data() + i, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    for (; i < n; ++i) h = (h ^ buf[i]) * 0x94D049BB133111EBull;
    len += n;
    if (n < buf.size()) break;
  }
  ::close(fd);
  h ^= len;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace aria::io
