// Small helpers shared by the C++ tests: a tiny GPT-2 config, temporary directories and files,
// tensor comparisons, op-case input specs, and what the kernel tests share (skipping without a GPU,
// random inputs, NaN-poisoned outputs, AdamW items).
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "aria/core/tensor.h"
#include "aria/kernels/backend.h"
#include "aria/model/gpt2_config.h"
#include "aria/train/report/report_csv.h"
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

// ---- kernel tests --------------------------------------------------------------------------------

// ---- skipped test cases ----------------------------------------------------------------------------
//
// A test case that cannot run here (no GPU, a benchmark not asked for) calls skip_case and returns.
// ctest reports it as skipped, never as passed: when every test case of a run called skip_case, made
// no assertion and nothing failed, the run ends with a line starting "ARIA_TEST_SKIPPED:", which the
// discovered tests' SKIP_REGULAR_EXPRESSION (CMakeLists.txt) matches. A case that asserted anything,
// or that failed, is not reported skipped: a skip never hides a failure, and a case that checks real
// CPU behaviour before skipping its GPU part counts as passed (keep such cases split instead).

// Prints "SKIPPED (<reason>): <what>", logs a doctest MESSAGE and marks the running case as skipped.
void skip_case(const std::string& reason, const std::string& what);

// True when a CUDA GPU is there. Otherwise skip_case("no CUDA GPU", what) and false, for
// `if (!gpu_or_skip("what")) return;`: prints "SKIPPED (no CUDA GPU): <what>" (tools/gpu_check.sh
// greps for that prefix, which must not show on the GPU machine). Call it before any assertion.
bool gpu_or_skip(const std::string& what);

// For timing printouts (benchmarks: the doctest suite "benchmark", not registered with ctest unless
// -DARIA_BENCH_TESTS=ON): true when the environment variable `env` is "1", else skip_case and false.
bool bench_or_skip(const char* env);

// Normal(0, scale) values on the CPU in dtype t (drawn in float64, then converted).
Tensor randn(const Shape& shape, uint64_t seed, double scale = 1.0, DType t = DType::F32);

// t's values rounded to bfloat16 (nearest even), held as float32: inputs a bf16 kernel and its
// float32 reference see identically.
Tensor round_bf16(const Tensor& t);

// A tensor of `shape` in `dtype` on `device` (by default the GPU), every element NaN, so that an
// element a kernel forgot to write fails every comparison.
Tensor poisoned(const Shape& shape, DType dtype, Device device = Device::cuda(0));

// A GPU copy of t's values (converted to `dtype`, by default t's) whose data pointer is one element
// past a 16-byte boundary: inputs and outputs that must take a kernel's scalar (unaligned) path.
Tensor misaligned_gpu(const Tensor& t);
Tensor misaligned_gpu(const Tensor& t, DType dtype);

// Shapes for sum_to's column-sum path ([R, C] -> [1, C], kernels/cuda/elementwise_reduce.cu), each with
// what it exercises; the float32/float64 and the bfloat16 suites both run them.
struct ColumnSumCase {
  Shape from, to;
  const char* why;
};
const std::vector<ColumnSumCase>& column_sum_cases();

// A view of t over `shape` (same rank) with stride 0 in the dims where t has extent 1: broadcasting
// as a kernel sees it, without a copy.
Tensor expand(const Tensor& t, const Shape& shape);

// Token ids uniform in [0, range), int32 on the CPU.
Tensor random_ids(const Shape& shape, int64_t range, uint64_t seed);

// Same dtype, same element count, same bytes (either tensor may be on the GPU or a view).
bool bit_equal(const Tensor& a, const Tensor& b);

// CHECKs relative_l2(got, want) <= tol, with `what` and the error captured.
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what);

// One AdamW item (beta1 0.9, beta2 0.95, default eps) at `step` (bias corrections 1 - beta^step).
AdamWItem adamw_item(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, int step, float lr,
                     float weight_decay, float grad_scale = 1.0f);

#ifdef ARIA_WITH_CUDA
// GPU milliseconds of fn() (which launches on aria's stream), timed with CUDA events: the mean over
// `iters` back-to-back runs after one warm-up run; the median of 20 runs after 3 warm-up runs.
double cuda_mean_ms(const std::function<void()>& fn, int iters = 20);
double cuda_median_ms(const std::function<void()>& fn);
#endif

// How often `what` occurs in `s` (non-overlapping): the report tests count tags and classes.
size_t count_occurrences(const std::string& s, const std::string& what);

// The report's CSV table called `name`, and the cell of `row` under the header `column` (as text):
// the report tests look cells up by name. A missing table or column fails the test case.
const CsvTable& table(const std::vector<CsvTable>& tables, const std::string& name);
std::string col(const CsvTable& t, size_t row, const std::string& column);

// The forward value of f() and the gradients of sum(out * w) (w: a fixed N(0, 1) draw, seed 99)
// with respect to each of `inputs` (their gradients zeroed first): what the op tests compare.
std::vector<Tensor> value_and_grads(const std::function<Tensor()>& f, const std::vector<Tensor>& inputs);

}  // namespace aria::testing
