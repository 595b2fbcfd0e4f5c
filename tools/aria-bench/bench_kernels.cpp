// Kernel timings for aria-bench (see bench.h). Each case owns its device tensors (a few rotating
// copies of the inputs when they are small), runs once per rep after an L2 flush, and is timed with
// CUDA events on aria's stream; the median is reported.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "aria/core/context.h"
#include "aria/core/rng.h"
#include "aria/kernels/backend.h"
#include "tools/aria-bench/bench.h"
#ifdef ARIA_WITH_CUDA
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"
#endif

namespace aria::bench {

#ifndef ARIA_WITH_CUDA

std::string device_name() { return "none (no CUDA backend)"; }
Ceilings measure_ceilings(const Config&) { ARIA_FAIL("aria-bench: this build has no CUDA backend"); }
std::vector<Result> bench_kernels(const Config&, const Ceilings&) {
  ARIA_FAIL("aria-bench: this build has no CUDA backend");
}

#else

namespace {

const Device kGpu = Device::cuda(0);
constexpr int64_t kC = 768, kHeads = 12, kVocab = 50257, kVocabPadded = 50304, kLayers = 12;

// Writes 2x the L2 size before each timed run, so no run starts with its inputs in cache.
class Flusher {
 public:
  Flusher() {
    bytes_ = 2 * size_t(cuda::device_props().l2CacheSize);
    buf_ = Tensor::empty({int64_t(bytes_ / 4)}, DType::F32, kGpu);
  }
  void flush() { ARIA_CUDA_CHECK(cudaMemsetAsync(buf_.raw_data(), (k_++) & 0xff, bytes_, cuda::stream())); }

 private:
  Tensor buf_;
  size_t bytes_ = 0;
  int k_ = 0;
};

// Median milliseconds of fn(rep) over `reps` runs (after 2 warm-up runs), each after a flush.
double time_ms(const std::function<void(int)>& fn, int reps, Flusher& fl) {
  for (int i = 0; i < 2; ++i) fn(i);
  std::vector<cudaEvent_t> ev(size_t(2 * reps));
  for (auto& e : ev) ARIA_CUDA_CHECK(cudaEventCreate(&e));
  for (int r = 0; r < reps; ++r) {
    fl.flush();
    ARIA_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * r)], cuda::stream()));
    fn(r);
    ARIA_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * r + 1)], cuda::stream()));
  }
  ARIA_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  std::vector<double> ms(static_cast<size_t>(reps));
  for (int r = 0; r < reps; ++r) {
    float t = 0;
    ARIA_CUDA_CHECK(cudaEventElapsedTime(&t, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
    ms[size_t(r)] = t;
  }
  for (auto& e : ev) ARIA_CUDA_CHECK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return reps % 2 ? ms[size_t(reps / 2)] : 0.5 * (ms[size_t(reps / 2 - 1)] + ms[size_t(reps / 2)]);
}

// Random (never zero) contents: a pool of normal values on the host, tiled over the tensor from a
// seed-dependent offset, then scaled on the device.
const std::vector<float>& pool() {
  static const std::vector<float> p = [] {
    Rng r(1234);
    std::vector<float> v(size_t(1) << 22);
    for (auto& x : v) x = float(r.normal());
    return v;
  }();
  return p;
}

Tensor randn(const Shape& s, uint64_t seed, double scale = 1.0) {
  Tensor t = Tensor::empty(s, DType::F32, kGpu);
  const auto& p = pool();
  const size_t n = size_t(t.numel());
  float* d = static_cast<float*>(t.raw_data());
  size_t off = size_t(seed * 1000003u) % p.size(), done = 0;
  while (done < n) {
    const size_t k = std::min(n - done, p.size() - off);
    cuda::memcpy_between(d + done, kGpu, p.data() + off, Device::cpu(), k * 4);
    done += k;
    off = 0;
  }
  if (scale != 1.0) cuda::unary(int(UnaryOp::Affine), t, t, scale, 0.0);
  return t;
}

Tensor random_ids(int64_t n, int64_t range, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(r.below(uint64_t(range)));
  return Tensor::from_ints(v, {n}, kGpu);
}

int copies_for(double bytes) { return bytes < 256e6 ? 3 : 1; }

std::string dims(std::initializer_list<int64_t> d) { return shape_str(Shape(d)); }

class Runner {
 public:
  Runner(const Config& cfg, const Ceilings& c) : cfg_(cfg), c_(c) {}
  bool want(const std::string& name) const { return cfg_.only.empty() || name.find(cfg_.only) != std::string::npos; }

  // Times fn and records a row. flops > 0: compared with the GEMM ceiling (tf32 or fp32), else bytes
  // with the copy ceiling.
  void add(const std::string& name, const std::string& shape, double bytes, double flops,
           const std::function<void(int)>& fn, bool tf32 = false) {
    if (!want(name)) return;
    Result r;
    r.name = name;
    r.shape = shape;
    r.bytes = bytes;
    r.flops = flops;
    r.ms = time_ms(fn, cfg_.reps, flusher_);
    const double s = r.ms * 1e-3;
    if (flops > 0) {
      r.ceiling = tf32 ? "tf32" : "fp32";
      r.pct = 100.0 * flops / s / 1e12 / (tf32 ? c_.tf32_tflops : c_.fp32_tflops);
    } else {
      r.ceiling = "copy";
      r.pct = 100.0 * bytes / s / 1e9 / c_.copy_gbps;
    }
    std::printf("  %-30s %10.4f ms\n", name.c_str(), r.ms);
    std::fflush(stdout);
    results_.push_back(r);
  }
  std::vector<Result>& results() { return results_; }
  const Config& cfg() const { return cfg_; }

 private:
  const Config& cfg_;
  const Ceilings& c_;
  Flusher flusher_;
  std::vector<Result> results_;
};

void bench_layernorm(Runner& R, int64_t N) {
  if (!R.want("layernorm")) return;
  const double xb = double(N) * kC * 4;
  const int k = copies_for(3 * xb);
  std::vector<Tensor> x, dy;
  for (int i = 0; i < k; ++i) x.push_back(randn({N, kC}, 10 + i)), dy.push_back(randn({N, kC}, 20 + i));
  Tensor w = randn({kC}, 1, 0.1), b = randn({kC}, 2, 0.1), y = Tensor::empty({N, kC}, DType::F32, kGpu);
  Tensor mean = Tensor::empty({N}, DType::F32, kGpu), rstd = Tensor::empty({N}, DType::F32, kGpu);
  Tensor dx = Tensor::empty({N, kC}, DType::F32, kGpu), dw = Tensor::zeros({kC}, DType::F32, kGpu),
         db = Tensor::zeros({kC}, DType::F32, kGpu);
  const std::string shape = dims({N, kC});
  R.add("layernorm_forward", shape, 2 * xb + 8.0 * N, 0,
        [&](int r) { cuda::layernorm_forward(x[size_t(r % k)], w, b, y, mean, rstd, 1e-5); });
  R.add("layernorm_backward", shape, 3 * xb + 8.0 * N, 0, [&](int r) {
    cuda::layernorm_backward(x[size_t(r % k)], w, mean, rstd, dy[size_t(r % k)], dx, dw, db);
  });
}

void bench_elementwise(Runner& R, int64_t N) {
  const int64_t F = 4 * kC;  // MLP width
  const double b1 = double(N) * F * 4;
  const int k = copies_for(3 * b1);
  std::vector<Tensor> x, dy;
  for (int i = 0; i < k; ++i) x.push_back(randn({N, F}, 30 + i)), dy.push_back(randn({N, F}, 40 + i));
  Tensor y = Tensor::empty({N, F}, DType::F32, kGpu), dx = Tensor::empty({N, F}, DType::F32, kGpu);
  const std::string shape = dims({N, F});
  R.add("gelu_forward", shape, 2 * b1, 0,
        [&](int r) { cuda::unary(int(UnaryOp::Gelu), x[size_t(r % k)], y, 1, 0); });
  R.add("gelu_backward", shape, 3 * b1, 0, [&](int r) {
    cuda::unary_backward(int(UnaryOp::Gelu), x[size_t(r % k)], Tensor(), dy[size_t(r % k)], dx, 0);
  });
  Tensor bias = randn({F}, 3), gb = Tensor::empty({1, F}, DType::F32, kGpu);
  R.add("add_bias", shape + " + [" + std::to_string(F) + "]", 2 * b1, 0, [&](int r) { cuda::add_bias(y, bias); });
  R.add("sum_to (bias grad)", shape + " -> [1, " + std::to_string(F) + "]", b1, 0,
        [&](int r) { cuda::sum_to(dy[size_t(r % k)], gb); });
}

void bench_attention(Runner& R, int64_t B, int64_t T) {
  if (!R.want("attention")) return;
  const int64_t hd = kC / kHeads;
  const double qkvb = double(B) * T * 3 * kC * 4, ob = double(B) * T * kC * 4, lb = double(B) * kHeads * T * 4;
  const int k = copies_for(qkvb + 2 * ob);
  std::vector<Tensor> qkv, dout;
  for (int i = 0; i < k; ++i) qkv.push_back(randn({B, T, 3 * kC}, 50 + i)), dout.push_back(randn({B, T, kC}, 60 + i));
  Tensor out = Tensor::empty({B, T, kC}, DType::F32, kGpu), lse = Tensor::empty({B, kHeads, T}, DType::F32, kGpu);
  Tensor dqkv = Tensor::empty({B, T, 3 * kC}, DType::F32, kGpu);
  // Causal: half of the T x T score matrix. Forward: QK^T and PV (2 * 2 * T^2/2 * hd per head);
  // backward counted as 2.5x forward (FlashAttention's convention), whatever recomputation it does.
  const double fwd = 4.0 * B * kHeads * double(T) * T * hd / 2;
  const std::string shape = "qkv " + dims({B, T, 3 * kC}) + " H=12";
  R.add("attention_forward", shape, qkvb + ob + lb, fwd,
        [&](int r) { cuda::attention_forward(qkv[size_t(r % k)], out, lse, int(kHeads)); });
  cuda::attention_forward(qkv[0], out, lse, int(kHeads));
  R.add("attention_backward", shape, 2 * qkvb + 2 * ob + lb, 2.5 * fwd,
        [&](int r) { cuda::attention_backward(qkv[0], out, lse, dout[size_t(r % k)], dqkv, int(kHeads)); });
}

void bench_cross_entropy(Runner& R, int64_t N) {
  if (!R.want("cross_entropy")) return;
  const double lb = double(N) * kVocab * 4;
  Tensor logits = randn({N, kVocab}, 70, 2.0), targets = random_ids(N, kVocab, 71);
  Tensor losses = Tensor::empty({N}, DType::F32, kGpu), lse = Tensor::empty({N}, DType::F32, kGpu);
  Tensor dl = Tensor::full({N}, 1.0 / double(N), DType::F32, kGpu);
  const std::string shape = dims({N, kVocab});
  R.add("cross_entropy_forward", shape, lb + 12.0 * N, 0,
        [&](int) { cuda::cross_entropy_forward(logits, targets, losses, lse, -100); });
  Tensor dlogits = Tensor::empty({N, kVocab}, DType::F32, kGpu);
  R.add("cross_entropy_backward", shape, 2 * lb + 12.0 * N, 0,
        [&](int) { cuda::cross_entropy_backward(logits, targets, lse, dl, dlogits, -100); });
}

void bench_matmul(Runner& R, int64_t N) {
  struct G {
    const char* name;
    int64_t K, Nout;
    bool trans_b;
  };
  const G gemms[] = {{"matmul qkv", kC, 3 * kC, false},
                     {"matmul attn_proj", kC, kC, false},
                     {"matmul fc", kC, 4 * kC, false},
                     {"matmul fc_proj", 4 * kC, kC, false},
                     {"matmul lm_head", kC, kVocabPadded, true}};
  for (const G& g : gemms) {
    if (!R.want(g.name)) continue;
    Tensor a = randn({1, N, g.K}, 80), c = Tensor::empty({1, N, g.Nout}, DType::F32, kGpu);
    Tensor b = g.trans_b ? randn({1, g.Nout, g.K}, 81, 0.02) : randn({1, g.K, g.Nout}, 81, 0.02);
    const double flops = 2.0 * double(N) * g.K * g.Nout;
    const double bytes = 4.0 * (double(N) * g.K + double(g.K) * g.Nout + double(N) * g.Nout);
    const std::string shape = dims({N, g.K}) + " x " + (g.trans_b ? dims({g.Nout, g.K}) + "^T" : dims({g.K, g.Nout}));
    for (bool tf32 : {false, true}) {
      context().tf32 = tf32;
      R.add(std::string(g.name) + (tf32 ? " (tf32)" : " (fp32)"), shape, bytes, flops,
            [&](int) { cuda::matmul(a, b, c, false, g.trans_b, 1, 0); }, tf32);
    }
    context().tf32 = false;
  }
}

// GPT-2 124M's parameter shapes (wte tied with the lm head).
std::vector<Shape> gpt2_param_shapes(int64_t T) {
  std::vector<Shape> s = {{kVocab, kC}, {std::max<int64_t>(T, 1024), kC}};
  for (int l = 0; l < kLayers; ++l) {
    for (Shape p : {Shape{kC}, Shape{kC}, Shape{kC, 3 * kC}, Shape{3 * kC}, Shape{kC, kC}, Shape{kC}, Shape{kC},
                    Shape{kC}, Shape{kC, 4 * kC}, Shape{4 * kC}, Shape{4 * kC, kC}, Shape{kC}})
      s.push_back(p);
  }
  s.push_back({kC});
  s.push_back({kC});
  return s;
}

void bench_optimizer(Runner& R, int64_t T) {
  if (!R.want("adamw") && !R.want("sum_squares")) return;
  std::vector<AdamWItem> items;
  std::vector<Tensor> grads;
  double params = 0;
  uint64_t seed = 100;
  for (const Shape& s : gpt2_param_shapes(T)) {
    AdamWItem it;
    it.param = randn(s, seed++, 0.02);
    it.grad = randn(s, seed++, 1e-3);
    it.m = randn(s, seed++, 1e-4);
    it.v = randn(s, seed++, 1e-3);
    cuda::unary(int(UnaryOp::Square), it.v, it.v, 1, 0);
    it.lr = 6e-4f;
    it.weight_decay = s.size() == 2 ? 0.1f : 0.f;
    it.bias_correction1 = 0.1f;
    it.bias_correction2 = 0.01f;
    params += double(it.param.numel());
    grads.push_back(it.grad);
    items.push_back(it);
  }
  const std::string shape = std::to_string(items.size()) + " tensors, " + std::to_string(int64_t(params)) + " params";
  const std::vector<AdamWItemView> item_views = views_of(items);  // the kernels take views
  const std::vector<TensorView> grad_views = views_of(grads);
  R.add("adamw_update", shape, 7 * 4 * params, 0, [&](int) { cuda::adamw_update(item_views); });
  Tensor out = Tensor::zeros({1}, DType::F64, kGpu);
  R.add("sum_squares (grad norm)", shape, 4 * params, 0, [&](int) { cuda::sum_squares(grad_views, out); });
}

void bench_embedding(Runner& R, int64_t N) {
  if (!R.want("embedding")) return;
  Tensor w = randn({kVocab, kC}, 90, 0.02), dw = Tensor::zeros({kVocab, kC}, DType::F32, kGpu);
  Tensor ids = random_ids(N, kVocab, 91), dout = randn({N, kC}, 92), out = Tensor::empty({N, kC}, DType::F32, kGpu);
  const std::vector<int32_t> h = ids.to_ints();
  const double unique = double(std::set<int32_t>(h.begin(), h.end()).size());
  const std::string shape = "ids [" + std::to_string(N) + "] of " + std::to_string(kVocab) + " x " + std::to_string(kC);
  R.add("embedding_forward", shape, 2.0 * N * kC * 4 + 4.0 * N, 0, [&](int) { cuda::embedding_forward(w, ids, out); });
  R.add("embedding_backward", shape, double(N) * kC * 4 + 2 * unique * kC * 4 + 4.0 * N, 0,
        [&](int) { cuda::embedding_backward(ids, dout, dw); });
}

}  // namespace

std::string device_name() {
  const cudaDeviceProp& p = cuda::device_props();
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.l2CacheSize >> 20) + " MiB L2)";
}

Ceilings measure_ceilings(const Config& cfg) {
  Ceilings c;
  Flusher fl;
  {
    const int64_t n = int64_t(1) << 28;  // 1 GiB of float32
    Tensor src = randn({n}, 1), dst = Tensor::empty({n}, DType::F32, kGpu);
    const double ms = time_ms(
        [&](int) {
          ARIA_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), size_t(n) * 4, cudaMemcpyDeviceToDevice,
                                          cuda::stream()));
        },
        std::max(cfg.reps / 2, 5), fl);
    c.copy_gbps = 2.0 * double(n) * 4 / (ms * 1e-3) / 1e9;
  }
  {
    const int64_t n = 8192;
    Tensor a = randn({1, n, n}, 2), b = randn({1, n, n}, 3, 0.01), out = Tensor::empty({1, n, n}, DType::F32, kGpu);
    const double flops = 2.0 * double(n) * n * n;
    for (bool tf32 : {false, true}) {
      context().tf32 = tf32;
      const double ms = time_ms([&](int) { cuda::matmul(a, b, out, false, false, 1, 0); }, 5, fl);
      (tf32 ? c.tf32_tflops : c.fp32_tflops) = flops / (ms * 1e-3) / 1e12;
    }
    context().tf32 = false;
    // bfloat16 operands (fp32 accumulation): the ceiling of the mixed-precision path.
    Tensor ah = a.to(DType::BF16), bh = b.to(DType::BF16), oh = Tensor::empty({1, n, n}, DType::BF16, kGpu);
    const double ms = time_ms([&](int) { cuda::matmul(ah, bh, oh, false, false, 1, 0); }, 5, fl);
    c.bf16_tflops = flops / (ms * 1e-3) / 1e12;
  }
  std::printf("ceilings measured: copy %.0f GB/s, fp32 GEMM %.1f, tf32 GEMM %.1f, bf16 GEMM %.1f TFLOP/s\n",
              c.copy_gbps, c.fp32_tflops, c.tf32_tflops, c.bf16_tflops);
  cuda::empty_cache();
  return c;
}

std::vector<Result> bench_kernels(const Config& cfg, const Ceilings& ceil) {
  const int64_t B = cfg.batch, T = cfg.seq, N = B * T;
  Runner R(cfg, ceil);
  const std::function<void()> families[] = {
      [&] { bench_layernorm(R, N); },      [&] { bench_elementwise(R, N); }, [&] { bench_attention(R, B, T); },
      [&] { bench_cross_entropy(R, N); }, [&] { bench_matmul(R, N); },      [&] { bench_optimizer(R, T); },
      [&] { bench_embedding(R, N); }};
  for (const auto& f : families) {
    f();
    cuda::empty_cache();  // each family's tensors are gone; give their memory back
  }
  return R.results();
}

#endif  // ARIA_WITH_CUDA

}  // namespace aria::bench
