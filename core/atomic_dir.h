// A folder written whole or not at all (trainer checkpoints). The files are written into a staging
// folder beside the target; commit() fsyncs them, writes manifest.json (every file's size and
// checksum), and switches the staging folder in with one atomic exchange (renameat2
// RENAME_EXCHANGE; where the file system cannot, two renames, the old folder kept until the new one
// is in place). A kill at any point leaves the target either as it was or as the new save, and
// verify_manifest() refuses a folder whose files do not all belong to one save.
#pragma once
#include <string>

namespace aria::io {

inline constexpr const char* kManifestFile = "manifest.json";

class AtomicDir {
 public:
  // `what` names the folder in errors ("checkpoint"). An existing target is replaced only when it
  // is empty or holds a manifest (a folder this writer made): anything else is refused, so a
  // mistyped path never deletes a user's files.
  AtomicDir(const std::string& target, const std::string& what);
  ~AtomicDir();  // removes the staging folder unless committed
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  // Where to write file `name` before commit().
  std::string file(const std::string& name) const;
  void commit();

 private:
  std::string target_, what_, staging_;
  bool committed_ = false;
};

// (Re)writes dir's manifest.json from the files in it (fsynced first). commit() uses it; a tool or
// test that edits a saved folder on purpose calls it to make the folder consistent again.
void write_manifest(const std::string& dir);

// Throws unless `dir` holds a manifest and every file it lists has the listed size and checksum
// (extra files are allowed: they are not part of the save). A missing folder names what interrupted
// saves left beside it.
void verify_manifest(const std::string& dir, const std::string& what);

}  // namespace aria::io
