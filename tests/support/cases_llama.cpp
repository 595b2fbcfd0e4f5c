// Op-case rows for the Llama-family ops (core/ops_llama.cpp): RMSNorm (plain and fused with the
// residual add), SwiGLU, rotary embeddings. Awkward, small shapes; gradients checked in float64, CUDA
// vs CPU in float32 and bfloat16 like every other row (tests/test_gradcheck.cpp, test_cuda_vs_cpu.cpp),
// and each fused op against its plain definition (the rows' references) in float64.
#include <cmath>

#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "tests/support/op_cases.h"
#include "tests/support/test_util.h"

namespace aria::testing {
namespace {

using Ins = std::vector<Tensor>;

// rope on x with tables for `positions` on x's device, inv_freq of a llama3-scaled head (float64
// tables for float64 x, float32 otherwise).
Tensor rope_case(const Tensor& x, const std::vector<int32_t>& positions, int n_rot, int head_dim) {
  const Device dev = x.device();
  ops::RopeScaling sc;
  sc.type = "llama3";
  sc.factor = 8;
  sc.original_max_position_embeddings = 64;  // small, so that every regime occurs for short heads
  std::vector<double> f;
  for (float v : ops::rope_inv_freq(head_dim, 10000.0, sc)) f.push_back(v);
  const DType tdt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  auto [cos, sin] = ops::rope_tables(Tensor::from_ints(positions, {int64_t(positions.size())}, dev),
                                     Tensor::from_vector(f, {int64_t(f.size())}, tdt, dev));
  return ops::rope(x, cos, sin, n_rot, head_dim);
}

// (x / sqrt(mean(x^2) + eps)) * w with plain ops: rmsnorm's definition.
Tensor rmsnorm_plain(const Tensor& x, const Tensor& w, double eps) {
  Tensor ms = ops::affine(ops::mean_dim(ops::square(x), -1, true), 1.0, eps);
  Tensor rstd = ops::exp(ops::scale(ops::log(ms), -0.5));
  return ops::mul(ops::mul(x, rstd), w);
}

// Causal (optionally windowed) attention with plain ops on q [B, T, H, hd] and k/v heads repeated
// explicitly to H: softmax(q k^T / sqrt(hd) + mask) v -> [B, T, H hd]: gqa_attention's definition.
Tensor gqa_plain(const Tensor& qkv, int H, int KV, int window) {
  const int64_t B = qkv.size(0), T = qkv.size(1), hd = qkv.size(2) / (H + 2 * KV), group = H / KV;
  auto part = [&](int64_t first_head, int64_t n) {
    return qkv.slice(2, first_head * hd, (first_head + n) * hd).reshape({B, T, n, hd});
  };
  Tensor q = part(0, H), k = part(H, KV), v = part(H + KV, KV);
  auto repeat = [&](const Tensor& t) {
    std::vector<Tensor> heads;
    for (int h = 0; h < H; ++h) heads.push_back(t.slice(2, h / group, h / group + 1));
    return ops::concat(heads, 2);
  };
  Tensor qh = q.transpose(1, 2), kh = repeat(k).transpose(1, 2), vh = repeat(v).transpose(1, 2);  // [B, H, T, hd]
  std::vector<double> mask(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j)
      if (j > i || (window > 0 && j <= i - window)) mask[size_t(i * T + j)] = -1e300;
  Tensor s = ops::add(ops::scale(ops::matmul(qh, kh, false, true), 1.0 / std::sqrt(double(hd))),
                      Tensor::from_vector(mask, {T, T}, qkv.dtype(), qkv.device()));
  Tensor o = ops::matmul(ops::softmax(s), vh);  // [B, H, T, hd]
  return o.transpose(1, 2).contiguous().reshape({B, T, int64_t(H) * hd});
}

// A gqa_attention row with its plain definition as the reference.
OpCase gqa_case(int B, int T, int H, int KV, int hd, int window, const std::string& note = "") {
  std::string name = "gqa_attention B" + std::to_string(B) + " T" + std::to_string(T) + " H" + std::to_string(H) +
                     " KV" + std::to_string(KV) + " hd" + std::to_string(hd);
  if (window) name += " window " + std::to_string(window);
  OpCase c{name + note, {{{B, T, int64_t(H + 2 * KV) * hd}}},
           [=](const Ins& x) { return ops::gqa_attention(x[0], H, KV, window); }};
  c.reference = [=](const Ins& x) { return gqa_plain(x[0], H, KV, window); };
  c.reference_tol = 1e-11;
  return c;
}

// An add_rmsnorm row on x, r of `shape`: both outputs (sum and y concatenated) or y only, with add
// then rmsnorm's definition as the reference.
OpCase add_rmsnorm_case(const std::string& name, const Shape& shape, double eps, bool both) {
  OpCase c{name, {{shape}, {shape}, {{shape.back()}}}, [=](const Ins& x) {
             auto [s, y] = ops::add_rmsnorm(x[0], x[1], x[2], eps);
             return both ? ops::concat({s, y}, -1) : y;
           }};
  c.reference = [=](const Ins& x) {
    Tensor s = ops::add(x[0], x[1]), y = rmsnorm_plain(s, x[2], eps);
    return both ? ops::concat({s, y}, -1) : y;
  };
  return c;
}

std::vector<OpCase> llama_cases() {
  std::vector<OpCase> c;
  c.push_back({"rmsnorm [3,7]", {{{3, 7}}, {{7}}}, [](const Ins& x) { return ops::rmsnorm(x[0], x[1], 1e-5); }});
  c.push_back({"rmsnorm [3,4,10]", {{{3, 4, 10}}, {{10}}},
               [](const Ins& x) { return ops::rmsnorm(x[0], x[1], 1e-5); }});
  c.push_back({"rmsnorm [2,3,16]", {{{2, 3, 16}}, {{16}}},
               [](const Ins& x) { return ops::rmsnorm(x[0], x[1], 1e-6); }});
  c.push_back({"rmsnorm transposed [5,4]^T", {{{5, 4}}, {{5}}},
               [](const Ins& x) { return ops::rmsnorm(x[0].transpose(0, 1), x[1], 1e-5); }});
  c.push_back(add_rmsnorm_case("add_rmsnorm [2,3,7] sum and y", {2, 3, 7}, 1e-5, true));
  c.push_back(add_rmsnorm_case("add_rmsnorm [4,24] y only", {4, 24}, 1e-5, false));
  c.push_back(add_rmsnorm_case("add_rmsnorm [2,5,12] eps 1e-6 sum and y", {2, 5, 12}, 1e-6, true));
  c.push_back(add_rmsnorm_case("add_rmsnorm [2,5,12] eps 1e-6 y only", {2, 5, 12}, 1e-6, false));
  c.push_back({"swiglu [2,3,7]", {{{2, 3, 7}}, {{2, 3, 7}}},
               [](const Ins& x) { return ops::swiglu(x[0], x[1]); }});
  c.push_back({"swiglu [3,5,11]", {{{3, 5, 11}}, {{3, 5, 11}}},
               [](const Ins& x) { return ops::swiglu(x[0], x[1]); }});
  c.push_back({"swiglu [5,16] gate only", {{{5, 16}}, {{5, 16}, InputSpec::Normal, 0, false, false}},
               [](const Ins& x) { return ops::swiglu(x[0], x[1]); }});
  c.push_back({"swiglu_packed [3,2,10]", {{{3, 2, 10}}}, [](const Ins& x) { return ops::swiglu_packed(x[0]); }});
  c.push_back({"swiglu_packed [4,3,18]", {{{4, 3, 18}}}, [](const Ins& x) { return ops::swiglu_packed(x[0]); }});
  c.push_back({"swiglu_packed [4,32]", {{{4, 32}}}, [](const Ins& x) { return ops::swiglu_packed(x[0]); }});
  c.push_back({"rope qkv [2,3,5*4] q3 k1 v1 hd4", {{{2, 3, 20}}},
               [](const Ins& x) { return rope_case(x[0], {0, 1, 2}, 4, 4); }});
  c.push_back({"rope [1,4,2*8] far positions hd8", {{{1, 4, 16}}},
               [](const Ins& x) { return rope_case(x[0], {5, 0, 4096, 131071}, 2, 8); }});
  c.push_back({"rope per-row positions [6,12] hd6 one head rotated", {{{6, 12}}},
               [](const Ins& x) { return rope_case(x[0], {9, 3, 7, 1, 0, 2}, 1, 6); }});
  c.push_back(gqa_case(2, 5, 4, 2, 3, 0));
  c.push_back(gqa_case(1, 6, 4, 1, 4, 2));
  c.push_back(gqa_case(2, 7, 2, 2, 4, 3, " (MHA path with a window)"));
  c.push_back(gqa_case(1, 4, 2, 2, 6, 0, " (plain MHA)"));
  c.push_back(gqa_case(1, 7, 6, 1, 4, 0));
  c.push_back(gqa_case(2, 6, 4, 2, 2, 3));
  c.push_back(gqa_case(1, 8, 3, 3, 4, 2));
  c.push_back(gqa_case(1, 4, 2, 1, 2, 1));
  c.push_back(gqa_case(1, 5, 2, 2, 4, 9, " (window longer than T)"));
  // n_kv_head == n_head without a window is causal_attention exactly.
  OpCase mha{"gqa_attention B2 T6 H2 KV2 hd8 equals causal_attention", {{{2, 6, 24}}},
             [](const Ins& x) { return ops::gqa_attention(x[0], 2, 2, 0); }};
  mha.reference = [](const Ins& x) { return ops::causal_attention(x[0], 2); };
  mha.reference_tol = 1e-13;
  c.push_back(mha);

  // Model-like shapes (several 64-row tiles, head dims 40 to 128, windows shorter and longer than a
  // tile): CUDA vs CPU only (too large for finite differences), bfloat16 held to 2e-2.
  struct Big {
    int B, T, H, KV, hd, window;
  };
  for (const Big b : {Big{2, 200, 8, 2, 64, 0}, Big{1, 130, 4, 1, 128, 0}, Big{2, 150, 8, 2, 64, 48},
                      Big{1, 97, 4, 4, 64, 32}, Big{2, 70, 4, 4, 64, 0}, Big{1, 33, 6, 3, 40, 0},
                      Big{1, 300, 4, 2, 128, 130}, Big{1, 260, 4, 2, 64, 200}}) {
    c.push_back(gqa_case(b.B, b.T, b.H, b.KV, b.hd, b.window, " (model-like)"));
    c.back().reference = nullptr;
    c.back().finite_differences = false;
    c.back().bf16_tol = 2e-2;
  }

  // References: the plain definitions these fused ops replace.
  for (OpCase& k : c) {
    const std::string& n = k.name;
    if (n.rfind("rmsnorm ", 0) == 0) {
      const double eps = n == "rmsnorm [2,3,16]" ? 1e-6 : 1e-5;
      const bool transposed = n.find("transposed") != std::string::npos;
      k.reference = [eps, transposed](const Ins& x) {
        return rmsnorm_plain(transposed ? x[0].transpose(0, 1) : x[0], x[1], eps);
      };
    } else if (n.rfind("swiglu [", 0) == 0) {
      k.reference = [](const Ins& x) { return ops::mul(ops::mul(x[0], ops::sigmoid(x[0])), x[1]); };
    } else if (n.rfind("swiglu_packed [", 0) == 0) {
      k.reference = [](const Ins& x) {
        const int64_t H = x[0].size(-1) / 2;
        auto parts = ops::split(x[0], {H, H}, -1);
        return ops::swiglu(parts[0], parts[1]);
      };
    }
  }
  return c;
}

ARIA_OP_CASES(llama_cases);

}  // namespace
}  // namespace aria::testing
