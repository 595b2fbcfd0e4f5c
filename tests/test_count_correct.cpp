// The count_correct row (kernels/kernel_list.h) and its op, ops::count_correct_into: classification
// accuracy counted on the device. The CPU kernel against a plain operator< loop (first index of the
// maximum; a NaN never compares greater), on random logits and on hand-made rows with ties, NaN,
// infinities, signed zeros and subnormals; N = 0, C = 1, accumulation, argument errors. The CUDA
// kernel against the CPU, count for count: random sizes (N no multiple of a block's 8 rows, more
// rows than the grid holds), C = 1 and 50257, float32/float64/bfloat16, the hand-made rows,
// out-of-range labels (counted wrong), no host read, CUDA-graph capture.
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "aria/core/ops.h"
#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::gpu_or_skip;
using testing::randn;
using testing::round_bf16;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// The reference argmax: std::max_element's with operator<, written out.
int64_t ref_argmax(const double* row, int64_t C) {
  int64_t best = 0;
  for (int64_t c = 1; c < C; ++c)
    if (row[best] < row[c]) best = c;
  return best;
}

// Rows of `logits` (float32/float64 on the CPU; float32 holds bfloat16 values exactly) whose
// reference argmax equals the label. Labels outside [0, C) count as wrong.
int64_t ref_count(const Tensor& logits, const Tensor& labels) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const std::vector<double> x = logits.to_doubles();  // exact for float32 (NaN, subnormals included)
  const std::vector<int32_t> l = labels.to_ints();
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += ref_argmax(x.data() + n * C, C) == l[size_t(n)];
  return count;
}

// Labels for logits [N, C]: the reference argmax for about `hit` of the rows (so that counts are
// neither 0 nor N), a uniform class otherwise.
Tensor labels_for(const Tensor& logits, uint64_t seed, double hit = 0.5) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const std::vector<double> x = logits.to_doubles();
  Rng rng(seed);
  std::vector<int32_t> l(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n)
    l[size_t(n)] = rng.uniform() < hit ? int32_t(ref_argmax(x.data() + n * C, C)) : int32_t(rng.below(uint64_t(C)));
  return Tensor::from_ints(l, {N});
}

// Random logits [N, C] with many ties: integers in [0, range) (range 0: normal values).
Tensor tied_logits(int64_t N, int64_t C, int range, uint64_t seed, DType t) {
  Rng rng(seed);
  std::vector<double> v(static_cast<size_t>(N * C));
  for (auto& x : v) x = range ? double(rng.below(uint64_t(range))) : rng.normal();
  return Tensor::from_vector(v, {N, C}, t);
}

// Some entries of x set to NaN: about `p` of them, and the first entry of every 7th row.
Tensor with_nans(const Tensor& x, double p, uint64_t seed) {
  const int64_t N = x.size(0), C = x.size(1);
  std::vector<double> v = x.to_doubles();
  Rng rng(seed);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      if (rng.uniform() < p || (c == 0 && n % 7 == 3)) v[size_t(n * C + c)] = kNaN;
  return Tensor::from_vector(v, {N, C}, x.dtype());
}

// Hand-made rows of 4 with their argmax: ties, NaN, infinities, signed zeros, subnormals.
struct Row {
  std::vector<double> v;
  int argmax;
  const char* why;
};

const std::vector<Row>& special_rows() {
  static const std::vector<Row> rows = {
      {{1, 3, 3, 2}, 1, "tie: the first maximum"},
      {{5, 5, 5, 5}, 0, "all equal"},
      {{0, 1, 2, 2}, 2, "tie at the end"},
      {{-kInf, -kInf, -kInf, -kInf}, 0, "all -inf"},
      {{-kInf, -kInf, -5, -kInf}, 2, "one finite among -inf"},
      {{kInf, 1, kInf, 2}, 0, "two +inf"},
      {{kNaN, 5, 1, 7}, 0, "leading NaN: never replaced"},
      {{1, kNaN, 5, 0}, 2, "NaN skipped"},
      {{1, kNaN, 0, 0}, 0, "NaN after the maximum"},
      {{3, kNaN, 3, kNaN}, 0, "NaN between ties"},
      {{kNaN, kNaN, kNaN, kNaN}, 0, "all NaN"},
      {{-kInf, kNaN, kNaN, -kInf}, 0, "-inf then NaN"},
      {{kNaN, kInf, kInf, 1}, 0, "NaN before +inf"},
      {{-0.0, 0.0, -0.0, -1}, 0, "-0 and +0 tie"},
      {{-1, 0.0, -0.0, -2}, 1, "+0 then -0"},
      {{-1, -0.0, 0.0, -2}, 1, "-0 then +0"},
      {{1e-40, 2e-40, 0, -1e-40}, 1, "float32 subnormals compare exactly"},
      {{-2e-40, -1e-40, -3e-40, -1e-39}, 1, "negative subnormals"},
      {{0, 1.5e-45, -0.0, 0}, 1, "the smallest subnormal beats zero"},
      {{-1.5e-45, -0.0, -3e-45, -1}, 1, "-0 beats the largest negative subnormal"},
  };
  return rows;
}

// The special rows as [R, 4] in dtype t, labels: each row's argmax, then argmax + 1 (mod 4) for
// every other row (so half of them are wrong on purpose).
std::pair<Tensor, Tensor> special_batch(DType t) {
  std::vector<double> v;
  std::vector<int32_t> l;
  int i = 0;
  for (const Row& r : special_rows()) {
    v.insert(v.end(), r.v.begin(), r.v.end());
    l.push_back(i++ % 2 ? (r.argmax + 1) % 4 : r.argmax);
  }
  const int64_t R = int64_t(special_rows().size());
  return {Tensor::from_vector(v, {R, 4}, t), Tensor::from_ints(l, {R})};
}

double out_value(const Tensor& out) { return out.to(Device::cpu()).to_doubles()[0]; }

}  // namespace

// ---- CPU --------------------------------------------------------------------------------------------

TEST_CASE("CPU count_correct: exact counts against a plain loop, float32/float64, accumulates into out") {
  for (DType t : {DType::F32, DType::F64}) {
    for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 1}, {1, 7}, {33, 10}, {257, 3},
                                                                {1000, 50}, {64, 1000}}) {
      for (int range : {0, 3}) {
        CAPTURE(dtype_name(t));
        CAPTURE(N);
        CAPTURE(C);
        CAPTURE(range);
        const uint64_t seed = uint64_t(N * 131 + C + range);
        const Tensor x = range ? tied_logits(N, C, range, seed, t) : randn({N, C}, seed, 1.0, t);
        const Tensor labels = labels_for(x, seed + 1);
        const int64_t want = ref_count(x, labels);
        if (C == 1) CHECK(want == N);  // one class: every label 0 is right
        Tensor out = Tensor::from_vector({7.0}, {1}, DType::F64);
        cpu::count_correct(x, labels, out);
        CHECK(out.to_doubles()[0] == 7.0 + double(want));
        cpu::count_correct(x, labels, out);  // accumulates
        CHECK(out.to_doubles()[0] == 7.0 + 2.0 * double(want));
      }
    }
  }
}

TEST_CASE("CPU count_correct: ties (first index), NaN rows, infinities, signed zeros, subnormals") {
  for (const Row& r : special_rows()) {
    CAPTURE(r.why);
    std::vector<double> v = r.v;
    REQUIRE(ref_argmax(v.data(), 4) == r.argmax);  // the table agrees with operator<
  }
  for (DType t : {DType::F32, DType::F64}) {
    CAPTURE(dtype_name(t));
    // Row by row: right with the argmax as label, wrong with any other label.
    for (const Row& r : special_rows()) {
      CAPTURE(r.why);
      const Tensor x = Tensor::from_vector(r.v, {1, 4}, t);
      for (int32_t label = 0; label < 4; ++label) {
        CAPTURE(label);
        Tensor out = Tensor::zeros({1}, DType::F64);
        cpu::count_correct(x, Tensor::from_ints({label}, {1}), out);
        CHECK(out.to_doubles()[0] == (label == r.argmax ? 1.0 : 0.0));
      }
    }
    auto [x, labels] = special_batch(t);
    Tensor out = Tensor::zeros({1}, DType::F64);
    cpu::count_correct(x, labels, out);
    CHECK(out.to_doubles()[0] == double((special_rows().size() + 1) / 2));
  }
  // float64 subnormals (below float32's range).
  Tensor out = Tensor::zeros({1}, DType::F64);
  cpu::count_correct(Tensor::from_vector({1e-310, 2e-310, -1e-310}, {1, 3}, DType::F64), Tensor::from_ints({1}, {1}),
                     out);
  CHECK(out.to_doubles()[0] == 1.0);
}

TEST_CASE("CPU count_correct: N = 0 leaves out unchanged, C = 1 counts every row") {
  for (DType t : {DType::F32, DType::F64}) {
    Tensor out = Tensor::from_vector({3.0}, {1}, DType::F64);
    cpu::count_correct(Tensor::empty({0, 5}, t), Tensor::empty({0}, DType::I32), out);
    CHECK(out.to_doubles()[0] == 3.0);
    cpu::count_correct(randn({9, 1}, 5, 1.0, t), Tensor::from_ints(std::vector<int32_t>(9, 0), {9}), out);
    CHECK(out.to_doubles()[0] == 12.0);
    cpu::count_correct(Tensor::from_vector({kNaN, 1.0}, {2, 1}, t), Tensor::from_ints({0, 0}, {2}), out);
    CHECK(out.to_doubles()[0] == 14.0);
  }
}

TEST_CASE("CPU count_correct: argument errors name the problem, a bad label names its row and value") {
  const Tensor x = randn({4, 3}, 11), labels = Tensor::from_ints({0, 1, 2, 0}, {4});
  const Tensor out = Tensor::from_vector({2.0}, {1}, DType::F64);
  auto fails = [&](const Tensor& a, const Tensor& b, const Tensor& o, const char* msg) {
    CAPTURE(msg);
    CHECK_THROWS_WITH_AS(cpu::count_correct(a, b, o), doctest::Contains(msg), Error);
  };
  fails(randn({12}, 1), labels, out, "logits must be a contiguous [N, C]");
  fails(randn({2, 4, 3}, 1), labels, out, "logits must be a contiguous [N, C]");
  fails(randn({3, 4}, 1).transpose(0, 1), labels, out, "logits must be a contiguous [N, C]");
  fails(Tensor::empty({4, 0}), labels, out, "1 to 2^31 - 1 classes");
  fails(Tensor::from_ints(std::vector<int32_t>(12, 0), {4, 3}), labels, out, "logits must be float32 or float64");
  fails(x.to(DType::BF16), labels, out, "the CPU kernel supports float32 and float64");
  fails(x, Tensor::from_vector({0, 1, 2, 0}, {4}), out, "labels must be a contiguous int32 [4]");
  fails(x, Tensor::from_ints({0, 1, 2}, {3}), out, "labels must be a contiguous int32 [4]");
  fails(x, Tensor::from_ints({0, 1, 2, 0}, {2, 2}), out, "labels must be a contiguous int32 [4]");
  fails(x, testing::expand(Tensor::from_ints({1}, {1}), {4}), out, "labels must be a contiguous int32 [4]");
  fails(x, labels, Tensor::zeros({1}), "out must be one float64 value");
  fails(x, labels, Tensor::zeros({2}, DType::F64), "out must be one float64 value");
  fails(x, labels, Tensor(), "must be defined");
  fails(x, Tensor::from_ints({0, 1, 3, 0}, {4}), out, "label 3 at row 2 is outside [0, 3)");
  fails(x, Tensor::from_ints({0, -1, 2, 0}, {4}), out, "label -1 at row 1 is outside [0, 3)");
  fails(x, Tensor::from_ints({0, 1, 2, INT_MIN}, {4}), out, "at row 3 is outside [0, 3)");
  CHECK(out.to_doubles()[0] == 2.0);  // no failed call counted anything
}

TEST_CASE("count_correct_into (CPU): [..., C] logits, views, labels' shape, clear errors") {
  const Tensor x = randn({3, 5, 7}, 21), labels = testing::random_ids({3, 5}, 7, 22);
  const int64_t want = ref_count(x.reshape({15, 7}), labels.reshape({15}));
  Tensor out = Tensor::from_vector({1.0}, {1}, DType::F64);
  ops::count_correct_into(x, labels, out);
  CHECK(out.to_doubles()[0] == 1.0 + double(want));
  // A non-contiguous view gives the count of its values.
  const Tensor xt = randn({7, 6}, 23).transpose(0, 1);  // [6, 7]
  const Tensor lt = testing::random_ids({6}, 7, 24);
  Tensor out2 = Tensor::zeros({1}, DType::F64);
  ops::count_correct_into(xt, lt, out2);
  CHECK(out2.to_doubles()[0] == double(ref_count(xt.contiguous(), lt)));
  const Tensor lv = testing::expand(Tensor::from_ints({2}, {1}), {6});  // stride 0: not contiguous
  REQUIRE(!lv.is_contiguous());
  Tensor out4 = Tensor::zeros({1}, DType::F64);
  ops::count_correct_into(xt, lv, out4);
  CHECK(out4.to_doubles()[0] == double(ref_count(xt.contiguous(), lv.contiguous())));
  // A scalar out works too; a logits tensor with requires_grad is read, not recorded.
  Tensor xs = randn({4, 3}, 25);
  xs.set_requires_grad(true);
  Tensor out3 = Tensor::zeros({}, DType::F64);
  ops::count_correct_into(xs, labels_for(xs.detach(), 26, 1.0), out3);
  CHECK(out3.to_doubles()[0] == 4.0);
  auto fails = [&](const Tensor& a, const Tensor& b, const Tensor& o, const char* msg) {
    CAPTURE(msg);
    CHECK_THROWS_WITH_AS(ops::count_correct_into(a, b, o), doctest::Contains(msg), Error);
  };
  const Tensor o = Tensor::zeros({1}, DType::F64);
  fails(x.to(DType::BF16), labels, o, "bfloat16 compute runs on CUDA only");
  fails(x, labels.reshape({15}), o, "must have logits' leading shape [3, 5]");
  fails(x, x, o, "labels must be int32");
  fails(x, labels, Tensor::zeros({1}), "out must be one float64 value");
  fails(Tensor::empty({3, 0}), Tensor::empty({3}, DType::I32), o, "C >= 1 classes");
  fails(randn({2, 7}, 27), Tensor::from_ints({6, 7}, {2}), o, "label 7 at row 1 is outside [0, 7)");
}

// ---- CUDA against the CPU (skipped without a GPU) ----------------------------------------------------

namespace {

const Device kGpu = Device::cuda(0);

// cuda::count_correct on logits x (float32/float64 on the CPU, sent to the GPU as `t`; bfloat16 x is
// given as its float32 values, which the conversion keeps exactly) into an out starting at `start`,
// `times` times; its final value. `misaligned`: the GPU logits start one element past a 16-byte
// boundary.
double gpu_count(const Tensor& x, const Tensor& labels, DType t, double start, int times = 1,
                 bool misaligned = false) {
  const Tensor gx = misaligned ? testing::misaligned_gpu(x, t) : x.to(t).to(kGpu);
  const Tensor gl = labels.to(kGpu);
  const Tensor out = Tensor::from_vector({start}, {1}, DType::F64, kGpu);
  for (int i = 0; i < times; ++i) cuda::count_correct(gx, gl, out);
  return out_value(out);
}

// The CPU kernel's count, from start.
double cpu_count(const Tensor& x, const Tensor& labels, double start) {
  Tensor out = Tensor::from_vector({start}, {1}, DType::F64);
  cpu::count_correct(x, labels, out);
  return out.to_doubles()[0];
}

}  // namespace

TEST_CASE("CUDA count_correct matches the CPU count for count: random sizes, float32/float64/bfloat16") {
  if (!gpu_or_skip("CUDA count_correct vs CPU")) return;
  // N no multiple of a block's 8 rows; 100003 rows are more than one grid (a grid-stride loop);
  // C below, at and above a warp's 32 lanes; GPT-2's vocabulary.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1}, {7, 1}, {1000, 1}, {9, 5}, {257, 10}, {1001, 33}, {100, 1000}, {100003, 3}, {13, 50257}, {67, 50257}};
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    for (auto [N, C] : sizes) {
      for (int range : {0, 4}) {  // normal values; integers in [0, 4): ties everywhere
        for (bool nans : {false, true}) {
          CAPTURE(dtype_name(t));
          CAPTURE(N);
          CAPTURE(C);
          CAPTURE(range);
          CAPTURE(nans);
          const uint64_t seed = uint64_t(N * 7919 + C * 31 + range * 3 + nans);
          const DType ref_t = t == DType::F64 ? DType::F64 : DType::F32;
          Tensor x = range ? tied_logits(N, C, range, seed, ref_t) : randn({N, C}, seed, 1.0, ref_t);
          if (nans) x = with_nans(x, 0.05, seed + 2);
          if (t == DType::BF16) x = round_bf16(x);  // many ties at C = 50257
          const Tensor labels = labels_for(x, seed + 1);
          const double want = cpu_count(x, labels, 5.0);
          CHECK(want == 5.0 + double(ref_count(x, labels)));
          CHECK(gpu_count(x, labels, t, 5.0) == want);
          CHECK(gpu_count(x, labels, t, 5.0, 3) == 5.0 + 3.0 * (want - 5.0));  // accumulates
          if (N * C < 1000000) CHECK(gpu_count(x, labels, t, 5.0, 1, true) == want);
        }
      }
    }
  }
}

TEST_CASE("CUDA count_correct: ties, NaN, infinities, signed zeros and subnormals as the CPU") {
  if (!gpu_or_skip("CUDA count_correct special rows")) return;
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    CAPTURE(dtype_name(t));
    for (const Row& r : special_rows()) {
      CAPTURE(r.why);
      // bfloat16 keeps these values (subnormals of float32 included, rounded the same way for both).
      const Tensor x = t == DType::BF16 ? round_bf16(Tensor::from_vector(r.v, {1, 4}))
                                        : Tensor::from_vector(r.v, {1, 4}, t);
      for (int32_t label = 0; label < 4; ++label) {
        CAPTURE(label);
        const Tensor l = Tensor::from_ints({label}, {1});
        CHECK(gpu_count(x, l, t, 0.0) == cpu_count(x, l, 0.0));
      }
    }
    auto [x, labels] = special_batch(t == DType::F64 ? DType::F64 : DType::F32);
    if (t == DType::BF16) x = round_bf16(x);
    CHECK(gpu_count(x, labels, t, 0.0) == cpu_count(x, labels, 0.0));
    // The special rows spread over wide rows: the maximum's candidates sit in different lanes.
    std::vector<double> wide;
    std::vector<int32_t> wl;
    const int64_t C = 100;
    for (const Row& r : special_rows()) {
      std::vector<double> row(size_t(C), -kInf);
      for (int k = 0; k < 4; ++k) row[size_t(k * 33)] = r.v[size_t(k)];  // columns 0, 33, 66, 99
      wide.insert(wide.end(), row.begin(), row.end());
      wl.push_back(int32_t(r.argmax * 33));
    }
    const int64_t R = int64_t(special_rows().size());
    Tensor xw = Tensor::from_vector(wide, {R, C}, t == DType::F64 ? DType::F64 : DType::F32);
    if (t == DType::BF16) xw = round_bf16(xw);
    const Tensor lw = Tensor::from_ints(wl, {R});
    CHECK(gpu_count(xw, lw, t, 0.0) == cpu_count(xw, lw, 0.0));
  }
  const Tensor x64 = Tensor::from_vector({1e-310, 2e-310, -1e-310}, {1, 3}, DType::F64);
  CHECK(gpu_count(x64, Tensor::from_ints({1}, {1}), DType::F64, 0.0) == 1.0);
  CHECK(gpu_count(x64, Tensor::from_ints({0}, {1}), DType::F64, 0.0) == 0.0);
}

TEST_CASE("CUDA count_correct: N = 0, C = 1, out-of-range labels counted wrong, argument errors") {
  if (!gpu_or_skip("CUDA count_correct edge cases")) return;
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    CAPTURE(dtype_name(t));
    const Tensor out = Tensor::from_vector({4.0}, {1}, DType::F64, kGpu);
    cuda::count_correct(Tensor::empty({0, 3}, t, kGpu), Tensor::empty({0}, DType::I32, kGpu), out);
    CHECK(out_value(out) == 4.0);
    cuda::count_correct(Tensor::full({37, 1}, -2.0, t, kGpu), Tensor::zeros({37}, DType::I32, kGpu), out);
    CHECK(out_value(out) == 41.0);
    // Labels the caller should have refused: never read out of bounds, never counted right.
    const Tensor x = randn({6, 5}, 31, 1.0, t == DType::F64 ? DType::F64 : DType::F32);
    std::vector<int32_t> l = labels_for(x, 32, 1.0).to_ints();  // all right
    l[1] = -1;
    l[2] = 5;
    l[3] = INT_MAX;
    l[4] = INT_MIN;
    CHECK(gpu_count(x, Tensor::from_ints(l, {6}), t, 0.0) == 2.0);
  }
  const Tensor gx = randn({4, 3}, 33).to(kGpu), gl = Tensor::from_ints({0, 1, 2, 0}, {4}, kGpu);
  const Tensor gout = Tensor::zeros({1}, DType::F64, kGpu);
  CHECK_THROWS_WITH_AS(cuda::count_correct(gx, gl.to(Device::cpu()), gout), doctest::Contains("on one device"), Error);
  CHECK_THROWS_WITH_AS(cuda::count_correct(gx, gl, Tensor::zeros({1}, DType::F64)), doctest::Contains("on one device"),
                       Error);
  CHECK_THROWS_WITH_AS(cuda::count_correct(gx, gl, Tensor::zeros({1}, DType::F32, kGpu)),
                       doctest::Contains("out must be one float64 value"), Error);
  CHECK_THROWS_WITH_AS(cuda::count_correct(gx.to(DType::F16), gl, gout), doctest::Contains("logits must be float32"),
                       Error);
  CHECK_THROWS_WITH_AS(cpu::count_correct(gx, gl, gout), doctest::Contains("the CPU kernel needs CPU tensors"), Error);
  CHECK_THROWS_WITH_AS(ops::count_correct_into(gx, gl.to(Device::cpu()), gout), doctest::Contains("count_correct_into"),
                       Error);
  CHECK(out_value(gout) == 0.0);
}

TEST_CASE("CUDA count_correct_into: no host read, capturable in a CUDA graph, bf16 [B, T, C] logits") {
  if (!gpu_or_skip("CUDA count_correct_into")) return;
  const Tensor x = round_bf16(randn({4, 9, 50257}, 41));
  const Tensor lab = labels_for(x.reshape({36, 50257}), 43).reshape({4, 9});
  const double want = cpu_count(x.reshape({36, 50257}), lab.reshape({36}), 0.0);
  const Tensor gx = x.to(DType::BF16).to(kGpu), gl = lab.to(kGpu);
  const Tensor out = Tensor::zeros({1}, DType::F64, kGpu);
  const uint64_t before = cuda::blocking_copies();
  ops::count_correct_into(gx, gl, out);
  ops::count_correct_into(gx, gl, out);
  CHECK(cuda::blocking_copies() == before);  // nothing was read back
  CHECK(out_value(out) == 2.0 * want);
  // Recorded once, replayed twice: no sync and no allocation inside.
  const Tensor g2 = Tensor::zeros({1}, DType::F64, kGpu);
  auto graph = cuda::capture_graph([&] { ops::count_correct_into(gx, gl, g2); });
  cuda::replay_graph(*graph);
  cuda::replay_graph(*graph);
  CHECK(out_value(g2) == 2.0 * want);
}
