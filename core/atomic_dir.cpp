#include "aria/core/atomic_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/core/file_io.h"

namespace aria::io {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kStagingTag = ".partial.";
constexpr const char* kOldTag = ".old.";

std::string normalised(const std::string& p) {
  std::string s = fs::path(p).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string parent_of(const std::string& p) {
  const std::string d = fs::path(p).parent_path().string();
  return d.empty() ? "." : d;
}

// Siblings of `target` named target<tag>*: what interrupted saves left.
std::vector<std::string> leftovers(const std::string& target, const std::string& tag) {
  std::vector<std::string> out;
  const fs::path t(target);
  const std::string prefix = t.filename().string() + tag;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent_of(target), ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

void fsync_file(const std::string& path) {
  crash_point("fsync " + path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ARIA_CHECK(fd >= 0, "cannot open '", path, "': ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  ARIA_CHECK(rc == 0, "cannot write '", path, "' to disk (fsync): ", std::strerror(err));
}

void remove_tree(const std::string& p) {
  std::error_code ec;
  fs::remove_all(p, ec);  // best effort: a leftover is harmless and named by the next load's errors
}

}  // namespace

AtomicDir::AtomicDir(const std::string& target, const std::string& what)
    : target_(normalised(target)), what_(what) {
  ARIA_CHECK(!target_.empty() && target_ != "." && target_ != "/", what_, ": '", target, "' cannot be a ", what_,
             " folder");
  std::error_code ec;
  if (fs::exists(target_, ec)) {
    ARIA_CHECK(fs::is_directory(target_, ec), what_, " '", target_, "' exists and is not a folder");
    const bool empty = fs::is_empty(target_, ec);
    ARIA_CHECK(!ec, what_, ": cannot read folder '", target_, "': ", ec.message());
    ARIA_CHECK(empty || fs::is_regular_file(fs::path(target_) / kManifestFile, ec), what_, " '", target_,
               "' exists and was not written by aria (no ", kManifestFile, "); refusing to replace it");
  }
  const std::string parent = parent_of(target_);
  fs::create_directories(parent, ec);
  ARIA_CHECK(!ec, what_, ": cannot create folder '", parent, "': ", ec.message());
  // Staging folders of earlier saves that were killed are never valid: clear them first.
  for (const std::string& old : leftovers(target_, kStagingTag)) remove_tree(old);
  staging_ = target_ + kStagingTag + std::to_string(::getpid());
  ARIA_CHECK(fs::create_directory(staging_, ec) && !ec, what_, ": cannot create folder '", staging_, "': ",
             ec ? ec.message() : "it exists");
}

AtomicDir::~AtomicDir() {
  if (!committed_) remove_tree(staging_);
}

std::string AtomicDir::file(const std::string& name) const { return (fs::path(staging_) / name).string(); }

void AtomicDir::commit() {
  ARIA_CHECK(!committed_, what_, " '", target_, "': committed twice");
  write_manifest(staging_);
  sync_dir(staging_);

  const std::string parent = parent_of(target_);
  if (!fs::exists(target_)) {
    rename_path(staging_, target_);
  } else if (exchange_paths(staging_, target_)) {
    // staging_ now holds the previous save.
    sync_dir(parent);
    remove_tree(staging_);
  } else {
    const std::string old = target_ + kOldTag + std::to_string(::getpid());
    remove_tree(old);
    rename_path(target_, old);
    rename_path(staging_, target_);
    sync_dir(parent);
    remove_tree(old);
  }
  committed_ = true;
  sync_dir(parent);
}

void write_manifest(const std::string& dir) {
  json files = json::object();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == kManifestFile) continue;
    ARIA_CHECK(e.is_regular_file(), "'", e.path().string(), "' is not a regular file");
    names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string p = (fs::path(dir) / n).string();
    fsync_file(p);
    files[n] = {{"bytes", fs::file_size(p)}, {"checksum", hex64(file_checksum(p))}};
  }
  write_file_atomic((fs::path(dir) / kManifestFile).string(),
                    json{{"format", "aria-atomic-dir"}, {"version", 1}, {"files", files}}.dump(2) + "\n");
}

void verify_manifest(const std::string& dir_in, const std::string& what) {
  const std::string dir = normalised(dir_in);
  if (!fs::exists(dir)) {
    std::string hint;
    for (const std::string& old : leftovers(dir, kOldTag))
      hint += "; an interrupted save left the previous " + what + " in '" + old + "' (rename it to '" + dir +
              "' to use it)";
    ARIA_FAIL(what, " '", dir, "' does not exist", hint);
  }
  const std::string mpath = (fs::path(dir) / kManifestFile).string();
  ARIA_CHECK(fs::is_regular_file(mpath), what, " '", dir, "' has no ", kManifestFile,
             ": it is incomplete (an interrupted save) or was written by an older aria");
  json m;
  try {
    m = json::parse(read_file(mpath, "manifest"));
    for (const auto& [name, f] : m.at("files").items()) {
      const std::string p = (fs::path(dir) / name).string();
      ARIA_CHECK(fs::is_regular_file(p), what, " '", dir, "' is incomplete: '", name, "' is missing");
      const uint64_t bytes = f.at("bytes").get<uint64_t>();
      ARIA_CHECK(fs::file_size(p) == bytes && hex64(file_checksum(p)) == f.at("checksum").get<std::string>(), what,
                 " '", dir, "' mixes files of different saves (or one was changed or damaged): '", name,
                 "' does not match ", kManifestFile);
    }
  } catch (const json::exception& e) {
    ARIA_FAIL(what, " '", dir, "': malformed ", kManifestFile, " (", e.what(), ")");
  }
}

}  // namespace aria::io
