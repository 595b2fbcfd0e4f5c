#include "tests/support/test_util.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

namespace aria::testing {

namespace fs = std::filesystem;

Gpt2Config tiny_gpt2_config(int vocab_size, int n_positions, int n_embd, int n_layer, int n_head) {
  Gpt2Config c;
  c.vocab_size = vocab_size;
  c.n_positions = n_positions;
  c.n_embd = n_embd;
  c.n_layer = n_layer;
  c.n_head = n_head;
  return c;
}

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  dir = fs::temp_directory_path() /
        (prefix + std::to_string(::getpid()) + "_" + std::to_string(rd()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  fs::create_directories(dir);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string TempDir::file(const std::string& name) const { return (dir / name).string(); }

std::string TempDir::write(const std::string& text, const std::string& name) const {
  std::string p = file(name);
  write_file(p, text);
  return p;
}

fs::path fresh_temp_path(const std::string& name) {
  fs::path p = fs::temp_directory_path() / name;
  fs::remove_all(p);
  return p;
}

fs::path fresh_temp_dir(const std::string& name) {
  fs::path p = fresh_temp_path(name);
  fs::create_directories(p);
  return p;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_doubles(), y = b.to_doubles();
  REQUIRE(x.size() == y.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_doubles()) m = std::max(m, std::abs(v));
  return m;
}

InputSpec ids_input(Shape shape, int64_t range, bool ignore) {
  InputSpec in{std::move(shape), InputSpec::Ids, range};
  in.ignore = ignore;
  return in;
}

}  // namespace aria::testing
