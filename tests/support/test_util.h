// Small helpers shared by the C++ tests: a tiny GPT-2 config, temporary directories and files,
// tensor comparisons, and op-case input specs.
#pragma once
#include <filesystem>
#include <string>

#include "core/tensor.h"
#include "model/gpt2_config.h"
#include "tests/support/op_cases.h"

namespace aria::testing {

// A tiny GPT-2 config (everything else at its default). The default sizes are the ones most tests
// use: vocabulary 64, 32 positions, width 16, 2 layers, 2 heads.
Gpt2Config tiny_gpt2_config(int vocab_size = 64, int n_positions = 32, int n_embd = 16, int n_layer = 2,
                            int n_head = 2);

// A fresh, uniquely named directory under the system temp directory (`prefix` + pid + random +
// clock), created on construction and removed with everything in it on destruction.
struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The path of `name` inside the directory (nothing is created).
  std::string file(const std::string& name) const;
  // Writes `text` (bytes, verbatim) to `name` inside the directory; returns its path.
  std::string write(const std::string& text, const std::string& name) const;
};

// temp_directory_path() / name, with anything already there removed; fresh_temp_dir also creates it.
std::filesystem::path fresh_temp_path(const std::string& name);
std::filesystem::path fresh_temp_dir(const std::string& name);

// Writes / reads a whole file as bytes (binary, truncating).
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

// Largest |a_i - b_i| (REQUIREs equal element counts); largest |t_i|.
double max_abs_diff(const Tensor& a, const Tensor& b);
double max_abs(const Tensor& t);

// An op-case input of token ids in [0, range), some set to -100 when `ignore`.
InputSpec ids_input(Shape shape, int64_t range, bool ignore = false);

}  // namespace aria::testing
