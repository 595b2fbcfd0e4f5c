// Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp, docs/fuzzing.md).
//
// The readers under test take paths (they refuse FIFOs, map safetensors files, read task folders), so
// a harness writes each input to a private scratch folder (in /dev/shm when it exists: one write per
// execution must be cheap) and calls the real entry point. The contract checked is the one the CLI
// relies on: bad input ends in aria::Error (the CLI's "aria: error: ..."). Any other exception
// escapes the harness and libFuzzer reports it as a crash (the CLI would say "internal error").
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "aria/core/error.h"

namespace aria::fuzz {

// This process's scratch folder, created on first use and removed at exit. Never destroyed: the
// exit handler that removes the folder runs after static destructors.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("aria-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    auto* s = new std::string(d.string());
    std::atexit([] { std::error_code e; std::filesystem::remove_all(scratch_dir(), e); });
    return s;
  }();
  return *dir;
}

// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  if (!f) std::abort();  // the harness itself failed, not the code under test
  return path;
}

// Cuts the input at NUL bytes into at most n parts (the last part keeps any further NULs): one
// input can then describe several files (vocab.json + merges.txt, a task's splits).
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t n) {
  std::vector<std::string> parts;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < n) {
    const size_t nul = in.find('\0');
    if (nul == std::string_view::npos) break;
    parts.emplace_back(in.substr(0, nul));
    in.remove_prefix(nul + 1);
  }
  parts.emplace_back(in);
  return parts;
}

// Runs f; an aria::Error (a clear refusal) is the expected way for bad input to end.
template <typename F>
void refused_or_ok(F&& f) {
  try {
    f();
  } catch (const aria::Error&) {
  }
}

}  // namespace aria::fuzz
