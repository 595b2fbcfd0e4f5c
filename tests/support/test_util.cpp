#include "tests/support/test_util.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "aria/core/ops.h"
#include "aria/core/rng.h"
#ifdef ARIA_WITH_CUDA
#include <cuda_runtime.h>

#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"
#endif

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

namespace {

// What skip_case left for the listener below (one test case runs at a time).
bool g_case_skipped = false;
std::string g_skip_reason;

// Counts the test cases of a run that were cleanly skipped (skip_case, no assertion, no failure) and
// the others; at the end of a run where every case was cleanly skipped, prints the line that ctest's
// SKIP_REGULAR_EXPRESSION matches. Not printed when anything failed or asserted, so a skip cannot
// turn a failure into "skipped" (ctest reports a matching test as skipped whatever its exit code).
struct SkipListener : doctest::IReporter {
  int skipped = 0, others = 0;
  std::string reason;
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& st) override {
    if (skipped > 0 && others == 0 && st.numTestCasesFailed == 0 && st.numAssertsFailed == 0) {
      std::printf("ARIA_TEST_SKIPPED: %d test case%s skipped (%s)\n", skipped, skipped == 1 ? "" : "s",
                  reason.c_str());
      std::fflush(stdout);
    }
  }
  void test_case_start(const doctest::TestCaseData&) override {
    g_case_skipped = false;
    g_skip_reason.clear();
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& st) override {
    if (g_case_skipped && st.numAssertsCurrentTest == 0 && st.failure_flags == 0 && st.testCaseSuccess) {
      ++skipped;
      reason = g_skip_reason;
    } else {
      ++others;
    }
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("aria_skips", 1, SkipListener);

void skip_case(const std::string& reason, const std::string& what) {
  std::printf("SKIPPED (%s): %s\n", reason.c_str(), what.c_str());
  std::fflush(stdout);
  const std::string msg = reason + ": skipped " + what;
  MESSAGE(msg);
  g_case_skipped = true;
  g_skip_reason = reason + ": " + what;
}

bool gpu_or_skip(const std::string& what) {
  if (cuda_available()) return true;
#ifdef ARIA_WITH_CUDA
  skip_case("no CUDA GPU", what);
#else
  skip_case("no CUDA GPU", what + " (this build has no CUDA backend)");
#endif
  return false;
}

bool bench_or_skip(const char* env) {
  const char* v = std::getenv(env);
  if (v != nullptr && std::string(v) == "1") return true;
  skip_case("benchmark", std::string("set ") + env + "=1 to run this timing");
  return false;
}

Tensor randn(const Shape& shape, uint64_t seed, double scale, DType t) {
  Tensor x = Tensor::empty(shape, t, Device::cpu());
  Rng(seed).fill_normal(x, 0, scale);
  return x;
}

Tensor round_bf16(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }

Tensor poisoned(const Shape& shape, DType dtype, Device device) {
  Tensor y = Tensor::empty(shape, dtype, device);
  y.fill_(NAN);
  return y;
}

Tensor misaligned_gpu(const Tensor& t) { return misaligned_gpu(t, t.dtype()); }

Tensor misaligned_gpu(const Tensor& t, DType dtype) {
  const int64_t n = t.numel();
  Tensor v = Tensor::empty({n + 1}, dtype, Device::cuda(0)).slice(0, 1, n + 1);
  v.copy_from(t.reshape({n}));
  return v.reshape(t.shape());
}

const std::vector<ColumnSumCase>& column_sum_cases() {
  static const std::vector<ColumnSumCase> cases = {
      {{70000, 3}, {1, 3}, "many rows, three columns (no packs): many row chunks"},
      {{1, 1000}, {1, 1000}, "R = 1: a copy"},
      {{1000, 1}, {1, 1}, "C = 1: the generic reduction"},
      {{129, 771}, {1, 771}, "C no multiple of a pack: one column per thread"},
      {{333, 1024}, {1, 1024}, "packs, R no multiple of a row batch"},
      {{4, 37, 64}, {1, 1, 64}, "two reduced dimensions merged into rows"},
      {{16, 64, 768}, {1, 64, 768}, "wide and short (a position-embedding gradient): one chunk"},
      {{16384, 96}, {1, 96}, "narrow and long: partial sums"},
      {{5000, 3072}, {1, 3072}, "an MLP bias gradient"},
  };
  return cases;
}

Tensor expand(const Tensor& t, const Shape& shape) {
  REQUIRE(t.shape().size() == shape.size());
  Shape st = t.strides();
  for (size_t d = 0; d < shape.size(); ++d)
    if (t.shape()[d] == 1) st[d] = 0;
  auto im = std::make_shared<TensorImpl>(*t.impl_ptr());
  im->shape = shape;
  im->strides = st;
  return Tensor(im);
}

Tensor random_ids(const Shape& shape, int64_t range, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(size_t(shape_numel(shape)));
  for (auto& x : v) x = int32_t(rng.below(uint64_t(range)));
  return Tensor::from_ints(v, shape);
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.numel() != b.numel()) return false;
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  const double e = relative_l2(got, want);
  CAPTURE(what);
  CAPTURE(e);
  CHECK(e <= tol);
}

AdamWItem adamw_item(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, int step, float lr,
                     float weight_decay, float grad_scale) {
  AdamWItem it;
  it.param = param;
  it.grad = grad;
  it.m = m;
  it.v = v;
  it.lr = lr;
  it.beta1 = 0.9f;
  it.beta2 = 0.95f;
  it.weight_decay = weight_decay;
  it.bias_correction1 = float(1 - std::pow(0.9, step));
  it.bias_correction2 = float(1 - std::pow(0.95, step));
  it.grad_scale = grad_scale;
  return it;
}

#ifdef ARIA_WITH_CUDA

double cuda_mean_ms(const std::function<void()>& fn, int iters) {
  fn();
  cudaEvent_t e0, e1;
  ARIA_CUDA_CHECK(cudaEventCreate(&e0));
  ARIA_CUDA_CHECK(cudaEventCreate(&e1));
  ARIA_CUDA_CHECK(cudaEventRecord(e0, cuda::stream()));
  for (int i = 0; i < iters; ++i) fn();
  ARIA_CUDA_CHECK(cudaEventRecord(e1, cuda::stream()));
  ARIA_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  ARIA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  ARIA_CUDA_CHECK(cudaEventDestroy(e0));
  ARIA_CUDA_CHECK(cudaEventDestroy(e1));
  return double(ms) / iters;
}

double cuda_median_ms(const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  constexpr int kReps = 20;
  std::vector<cudaEvent_t> ev(2 * kReps);
  for (auto& e : ev) ARIA_CUDA_CHECK(cudaEventCreate(&e));
  for (int r = 0; r < kReps; ++r) {  // back to back, one synchronisation at the end
    ARIA_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * r)], cuda::stream()));
    fn();
    ARIA_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * r + 1)], cuda::stream()));
  }
  ARIA_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  std::vector<double> ms;
  for (int r = 0; r < kReps; ++r) {
    float t = 0;
    ARIA_CUDA_CHECK(cudaEventElapsedTime(&t, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
    ms.push_back(t);
  }
  for (auto& e : ev) ARIA_CUDA_CHECK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return 0.5 * (ms[kReps / 2 - 1] + ms[kReps / 2]);
}

#endif

size_t count_occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

const CsvTable& table(const std::vector<CsvTable>& tables, const std::string& name) {
  for (const CsvTable& t : tables)
    if (t.name == name) return t;
  FAIL("no table ", name);
  return tables[0];
}

std::string col(const CsvTable& t, size_t row, const std::string& column) {
  for (size_t c = 0; c < t.header.size(); ++c)
    if (t.header[c] == column) return t.rows.at(row).at(c);
  FAIL("no column ", column, " in ", t.name);
  return "";
}

std::vector<Tensor> value_and_grads(const std::function<Tensor()>& f, const std::vector<Tensor>& inputs) {
  for (const Tensor& t : inputs) t.zero_grad();
  Tensor out = f();
  Tensor w = Tensor::empty(out.shape(), DType::F64);
  Rng(99).fill_normal(w, 0, 1);
  ops::sum(ops::mul(out, w)).backward();
  std::vector<Tensor> r{out.detach()};
  for (const Tensor& t : inputs) r.push_back(t.grad());
  return r;
}

}  // namespace aria::testing
