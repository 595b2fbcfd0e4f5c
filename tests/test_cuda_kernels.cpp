// Every CUDA kernel against the CPU kernel of the same row of kernels/kernel_list.h, at shapes the
// generic op-case harness cannot afford (it also runs them through float64 finite differences):
// GPT-2 widths, vocabulary 50257, several attention tiles, sizes that are no multiple of 32/128.
// GPU outputs are poisoned with NaN first (an unwritten element fails the comparison), and the
// kernels promised to be deterministic are run twice and compared bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"

using namespace aria;
using testing::bit_equal;
using testing::expand;
using testing::expect_close;
using testing::gpu_or_skip;
using testing::misaligned_gpu;
using testing::randn;
using testing::random_ids;

namespace {

const Device kGpu = Device::cuda(0);

Tensor gpu(const Tensor& t) { return t.to(kGpu); }

// An output of t's shape on `d`, NaN-filled on the GPU so that unwritten elements show.
Tensor out_like(const Tensor& t, Device d) {
  if (d.is_cuda() && is_floating(t.dtype())) return testing::poisoned(t.shape(), t.dtype(), d);
  return Tensor::empty(t.shape(), t.dtype(), d);
}
Tensor out_shape(const Shape& s, Device d, DType t = DType::F32) { return out_like(Tensor::empty(s, t), d); }

}  // namespace

TEST_CASE("CUDA copy_cast / fill / axpy match the CPU") {
  if (!gpu_or_skip("CUDA copy")) return;
  Tensor x = randn({37, 65, 3}, 1);
  Tensor xt = x.transpose(0, 2);  // [3, 65, 37], strided
  Tensor gx = gpu(x).transpose(0, 2);
  for (DType to : {DType::F32, DType::F64, DType::BF16, DType::F16}) {
    Tensor c = Tensor::empty(xt.shape(), to), g = Tensor::empty(xt.shape(), to, kGpu);
    cpu::copy_cast(xt, c);
    cuda::copy_cast(gx, g);
    CAPTURE(dtype_name(to));
    CHECK(bit_equal(g.to(DType::F32), c.to(DType::F32)));
  }
  Tensor i = random_ids({1001}, 1000, 2), gi = gpu(i);
  Tensor ci = Tensor::empty({1001}, DType::F32), gf = Tensor::empty({1001}, DType::F32, kGpu);
  cpu::copy_cast(i, ci);
  cuda::copy_cast(gi, gf);
  CHECK(bit_equal(gf, ci));
  Tensor y = randn({100003}, 3), gy = gpu(y), d = randn({100003}, 4);
  cpu::axpy(y, d, -0.75);
  cuda::axpy(gy, gpu(d), -0.75);
  expect_close(gy, y, 1e-7, "axpy");
  Tensor f = Tensor::empty({777}, DType::F32, kGpu);
  cuda::fill(f, 3.5);
  CHECK(f.to_floats() == std::vector<float>(777, 3.5f));
}

TEST_CASE("CUDA binary (broadcast strides), unary and unary_backward match the CPU") {
  if (!gpu_or_skip("CUDA elementwise")) return;
  Tensor a = randn({37, 1, 65}, 5), b = randn({1, 29, 65}, 6, 1.0);
  const Shape os = {37, 29, 65};
  for (int op = 0; op < 4; ++op) {
    Tensor c = out_shape(os, Device::cpu()), g = out_shape(os, kGpu);
    cpu::binary(op, expand(a, os), expand(b, os), c);
    cuda::binary(op, expand(gpu(a), os), expand(gpu(b), os), g);
    expect_close(g, c, 1e-6, "binary op " + std::to_string(op));
  }
  Tensor x = randn({100003}, 7, 2.0), xp = Tensor::empty({100003});
  cpu::unary(int(UnaryOp::Exp), randn({100003}, 8, 0.5), xp, 1, 0);  // positive inputs for log
  Tensor dy = randn({100003}, 9);
  for (int op = 0; op <= int(UnaryOp::Square); ++op) {
    const Tensor& in = op == int(UnaryOp::Log) ? xp : x;
    Tensor c = out_like(in, Device::cpu()), g = out_like(in, kGpu);
    cpu::unary(op, in, c, 1.5, -0.25);
    cuda::unary(op, gpu(in), g, 1.5, -0.25);
    expect_close(g, c, 2e-6, "unary op " + std::to_string(op));
    if (op == int(UnaryOp::Affine)) continue;
    for (double alpha : {0.0, 1.0}) {
      Tensor cd = randn({100003}, 10), gd = gpu(cd);
      if (alpha == 0) gd.fill_(NAN);
      cpu::unary_backward(op, in, c, dy, cd, alpha);
      cuda::unary_backward(op, gpu(in), gpu(c), gpu(dy), gd, alpha);
      expect_close(gd, cd, 2e-6, "unary_backward op " + std::to_string(op) + " alpha " + std::to_string(alpha));
    }
  }
}

TEST_CASE("CUDA sum_to and add_bias match the CPU, sum_to is deterministic") {
  if (!gpu_or_skip("CUDA sum_to")) return;
  Tensor x = randn({37, 29, 65}, 11);
  for (Shape to : {Shape{1, 29, 1}, Shape{37, 1, 65}, Shape{1, 1, 1}, Shape{37, 29, 1}, Shape{1, 29, 65},
                   Shape{37, 29, 65}}) {
    Tensor c = Tensor::empty(to), g = out_shape(to, kGpu);
    cpu::sum_to(x, c);
    cuda::sum_to(gpu(x), g);
    // float32 partial sums (up to 7e4 terms; the chunking follows the launch configuration, which
    // compute-sanitizer changes) against the CPU's double accumulation
    expect_close(g, c, 2e-5, "sum_to " + shape_str(to));
  }
  Tensor big = randn({8192, 768}, 12), gbig = gpu(big);  // a bias gradient
  for (Shape to : {Shape{1, 768}, Shape{8192, 1}, Shape{1, 1}}) {
    Tensor c = Tensor::empty(to), g1 = out_shape(to, kGpu), g2 = out_shape(to, kGpu);
    cpu::sum_to(big, c);
    cuda::sum_to(gbig, g1);
    cuda::sum_to(gbig, g2);
    // float32 partial sums over up to 6.3M terms against the CPU's double accumulation
    expect_close(g1, c, 2e-5, "sum_to big " + shape_str(to));
    CHECK(bit_equal(g1, g2));
  }
  Tensor y = randn({1000, 769}, 13), bias = randn({769}, 14), gy = gpu(y);
  cpu::add_bias(y, bias);
  cuda::add_bias(gy, gpu(bias));
  expect_close(gy, y, 1e-7, "add_bias");
}

TEST_CASE("CUDA sum_to column sums ([R, C] -> [1, C], contiguous) match the CPU in float32 and float64") {
  if (!gpu_or_skip("CUDA sum_to column sums")) return;
  for (DType t : {DType::F32, DType::F64}) {
    // float32 sums of up to 7e4 terms against the CPU's double accumulation; float64 stays float64
    const double tol = t == DType::F64 ? 1e-13 : 2e-6;
    uint64_t seed = 40;
    auto check = [&](const Tensor& x, const Tensor& gx, const Shape& to, auto&& make_out, const std::string& what) {
      Tensor c = Tensor::empty(to, t), g1 = make_out(), g2 = make_out();
      cpu::sum_to(x, c);
      cuda::sum_to(gx, g1);
      cuda::sum_to(gx, g2);
      CAPTURE(dtype_name(t));
      expect_close(g1, c, tol, what);
      CHECK(bit_equal(g1, g2));  // deterministic: no atomics, a fixed order
    };
    for (const testing::ColumnSumCase& k : testing::column_sum_cases()) {
      const Tensor x = randn(k.from, ++seed, 1.0, t);
      check(x, gpu(x), k.to, [&] { return out_shape(k.to, kGpu, t); }, shape_str(k.from) + ": " + k.why);
    }
    // views whose data pointer is not 16-byte aligned take the one-column-per-thread kernel
    const Tensor x = randn({513, 1024}, ++seed, 1.0, t);
    check(x, misaligned_gpu(x), {1, 1024}, [&] { return out_shape({1, 1024}, kGpu, t); }, "misaligned x");
    check(x, gpu(x), {1, 1024}, [&] { return misaligned_gpu(Tensor::full({1, 1024}, NAN, t)); }, "misaligned out");
  }
}

TEST_CASE("CUDA matmul matches the CPU: awkward sizes, every transpose, batched, shared b, alpha/beta") {
  if (!gpu_or_skip("CUDA matmul")) return;
  const int64_t M = 129, K = 65, N = 257;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t batch : {1, 3}) {
        for (bool shared : {false, true}) {
          if (batch == 1 && shared) continue;
          Tensor a = randn(ta ? Shape{batch, K, M} : Shape{batch, M, K}, 20);
          const int64_t bb = shared ? 1 : batch;
          Tensor b = randn(tb ? Shape{bb, N, K} : Shape{bb, K, N}, 21);
          Tensor c0 = randn({batch, M, N}, 22);
          for (double beta : {0.0, 0.5}) {
            Tensor c = c0.clone(), g = gpu(c0);
            if (beta == 0) g.fill_(NAN);  // beta == 0 must not read c
            cpu::matmul(a, b, c, ta, tb, 1.25, beta);
            cuda::matmul(gpu(a), gpu(b), g, ta, tb, 1.25, beta);
            expect_close(g, c, 2e-6,
                         "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " batch=" +
                             std::to_string(batch) + " shared=" + std::to_string(shared) + " beta=" +
                             std::to_string(beta));
          }
        }
      }
  // a GPT-2 block GEMM (fc: [B*T, 768] x [768, 3072]) at B*T = 1000
  Tensor a = randn({1, 1000, 768}, 23), b = randn({1, 768, 3072}, 24, 0.02);
  Tensor c = Tensor::empty({1, 1000, 3072}), g = out_shape({1, 1000, 3072}, kGpu);
  cpu::matmul(a, b, c, false, false, 1, 0);
  cuda::matmul(gpu(a), gpu(b), g, false, false, 1, 0);
  expect_close(g, c, 2e-6, "matmul fc");
  // float64 (cuBLAS)
  Tensor ad = randn({2, 33, 17}, 25, 1, DType::F64), bd = randn({1, 17, 9}, 26, 1, DType::F64);
  Tensor cd = Tensor::empty({2, 33, 9}, DType::F64), gd = Tensor::empty({2, 33, 9}, DType::F64, kGpu);
  cpu::matmul(ad, bd, cd, false, false, 1, 0);
  cuda::matmul(gpu(ad), gpu(bd), gd, false, false, 1, 0);
  expect_close(gd, cd, 1e-12, "matmul f64");
}

TEST_CASE("CUDA embedding forward/backward match the CPU, backward is deterministic") {
  if (!gpu_or_skip("CUDA embedding")) return;
  const int64_t V = 50257, D = 768, N = 4099;
  Tensor w = randn({V, D}, 30);
  // Mostly a few popular ids (long runs of repeats), some spread over the whole vocabulary.
  Tensor few = random_ids({N}, 97, 31), many = random_ids({N}, V, 32);
  std::vector<int32_t> mix = few.to_ints(), m2 = many.to_ints();
  for (size_t i = 0; i < mix.size(); i += 3) mix[i] = m2[i];
  mix[0] = 0;
  mix[1] = int32_t(V - 1);
  Tensor id = Tensor::from_ints(mix, {N});
  Tensor c = Tensor::empty({N, D}), g = out_shape({N, D}, kGpu);
  cpu::embedding_forward(w, id, c);
  cuda::embedding_forward(gpu(w), gpu(id), g);
  CHECK(bit_equal(g, c));
  Tensor dout = randn({N, D}, 33);
  Tensor dw0 = randn({V, D}, 34, 0.1);  // backward accumulates
  Tensor cw = dw0.clone(), g1 = gpu(dw0), g2 = gpu(dw0);
  cpu::embedding_backward(id, dout, cw);
  cuda::embedding_backward(gpu(id), gpu(dout), g1);
  cuda::embedding_backward(gpu(id), gpu(dout), g2);
  expect_close(g1, cw, 1e-6, "embedding_backward");
  CHECK(bit_equal(g1, g2));
  // small width (one partial warp) and T = 1
  Tensor w2 = randn({11, 5}, 35), id2 = random_ids({1}, 11, 36), d2 = randn({1, 5}, 37);
  Tensor c2 = Tensor::zeros({11, 5}), gg2 = Tensor::zeros({11, 5}, DType::F32, kGpu);
  cpu::embedding_backward(id2, d2, c2);
  cuda::embedding_backward(gpu(id2), gpu(d2), gg2);
  expect_close(gg2, c2, 1e-7, "embedding_backward small");
}

TEST_CASE("CUDA layernorm forward/backward match the CPU, dw/db are deterministic") {
  if (!gpu_or_skip("CUDA layernorm")) return;
  // {2999, 500}: the register-resident kernel (float32: 125 packs, 4 per lane but the last group
  // partial), several rows per warp.
  for (Shape s : {Shape{4099, 768}, Shape{2999, 500}, Shape{37, 1601}, Shape{5, 3}, Shape{1, 768}}) {
    const int64_t N = s[0], C = s[1];
    Tensor x = randn(s, 40, 2.0), w = randn({C}, 41), b = randn({C}, 42), dy = randn(s, 43);
    Tensor y = Tensor::empty(s), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
    Tensor gy = out_shape(s, kGpu), gmean = out_shape({N}, kGpu), grstd = out_shape({N}, kGpu);
    cpu::layernorm_forward(x, w, b, y, mean, rstd, 1e-5);
    cuda::layernorm_forward(gpu(x), gpu(w), gpu(b), gy, gmean, grstd, 1e-5);
    expect_close(gy, y, 2e-6, "layernorm y " + shape_str(s));
    expect_close(gmean, mean, 2e-6, "layernorm mean " + shape_str(s));
    expect_close(grstd, rstd, 2e-6, "layernorm rstd " + shape_str(s));
    Tensor dx = Tensor::empty(s), dw = randn({C}, 44), db = randn({C}, 45);
    Tensor gdx = out_shape(s, kGpu), gdw = gpu(dw), gdb = gpu(db), gdw2 = gpu(dw), gdb2 = gpu(db);
    cpu::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db);
    cuda::layernorm_backward(gpu(x), gpu(w), gmean, grstd, gpu(dy), gdx, gdw, gdb);
    cuda::layernorm_backward(gpu(x), gpu(w), gmean, grstd, gpu(dy), out_shape(s, kGpu), gdw2, gdb2);
    expect_close(gdx, dx, 1e-5, "layernorm dx " + shape_str(s));
    expect_close(gdw, dw, 1e-5, "layernorm dw " + shape_str(s));
    expect_close(gdb, db, 1e-5, "layernorm db " + shape_str(s));
    CHECK(bit_equal(gdw, gdw2));
    CHECK(bit_equal(gdb, gdb2));
  }
}

TEST_CASE("CUDA softmax and cross-entropy match the CPU (rows of 1000 and of 50257)") {
  if (!gpu_or_skip("CUDA softmax / cross-entropy")) return;
  for (Shape s : {Shape{37, 1000}, Shape{5, 50257}, Shape{3, 1}}) {
    Tensor x = randn(s, 50, 3.0), dy = randn(s, 51);
    Tensor y = Tensor::empty(s), gy = out_shape(s, kGpu);
    cpu::softmax_forward(x, y);
    cuda::softmax_forward(gpu(x), gy);
    expect_close(gy, y, 2e-6, "softmax " + shape_str(s));
    Tensor dx = Tensor::empty(s), gdx = out_shape(s, kGpu);
    cpu::softmax_backward(y, dy, dx);
    cuda::softmax_backward(gy, gpu(dy), gdx);
    expect_close(gdx, dx, 1e-5, "softmax backward " + shape_str(s));
  }
  for (int64_t V : {int64_t(50257), int64_t(50304), int64_t(7)}) {
    const int64_t N = 19;
    Tensor logits = randn({N, V}, 52, 4.0);
    std::vector<int32_t> t = random_ids({N}, V, 53).to_ints();
    t[3] = -100;
    t[7] = int32_t(V - 1);
    Tensor tg = Tensor::from_ints(t, {N});
    Tensor loss = Tensor::empty({N}), lse = Tensor::empty({N});
    Tensor gloss = out_shape({N}, kGpu), glse = out_shape({N}, kGpu);
    cpu::cross_entropy_forward(logits, tg, loss, lse, -100);
    cuda::cross_entropy_forward(gpu(logits), gpu(tg), gloss, glse, -100);
    expect_close(gloss, loss, 2e-6, "cross_entropy loss V=" + std::to_string(V));
    expect_close(glse, lse, 2e-6, "cross_entropy lse V=" + std::to_string(V));
    Tensor dl = randn({N}, 54), d = Tensor::empty({N, V}), gd = out_shape({N, V}, kGpu);
    cpu::cross_entropy_backward(logits, tg, lse, dl, d, -100);
    cuda::cross_entropy_backward(gpu(logits), gpu(tg), glse, gpu(dl), gd, -100);
    expect_close(gd, d, 1e-5, "cross_entropy dlogits V=" + std::to_string(V));
  }
}

TEST_CASE("CUDA attention forward/backward match the CPU over several tiles, backward is deterministic") {
  if (!gpu_or_skip("CUDA attention")) return;
  struct Case {
    int64_t B, T, H, hd;
  };
  for (Case k : {Case{2, 129, 3, 64}, Case{1, 1, 2, 64}, Case{2, 200, 2, 128}, Case{1, 65, 4, 16},
                 Case{1, 64, 1, 100}, Case{3, 77, 5, 3}}) {
    const int64_t C = k.H * k.hd;
    const std::string name = "B" + std::to_string(k.B) + " T" + std::to_string(k.T) + " H" + std::to_string(k.H) +
                             " hd" + std::to_string(k.hd);
    Tensor qkv = randn({k.B, k.T, 3 * C}, 60, 1.0), dout = randn({k.B, k.T, C}, 61);
    Tensor out = Tensor::empty({k.B, k.T, C}), lse = Tensor::empty({k.B, k.H, k.T});
    Tensor gout = out_shape({k.B, k.T, C}, kGpu), glse = out_shape({k.B, k.H, k.T}, kGpu);
    cpu::attention_forward(qkv, out, lse, int(k.H));
    Tensor gq = gpu(qkv);
    cuda::attention_forward(gq, gout, glse, int(k.H));
    expect_close(gout, out, 1e-5, "attention out " + name);
    expect_close(glse, lse, 1e-5, "attention lse " + name);
    Tensor dqkv = Tensor::empty(qkv.shape()), g1 = out_shape(qkv.shape(), kGpu), g2 = out_shape(qkv.shape(), kGpu);
    cpu::attention_backward(qkv, out, lse, dout, dqkv, int(k.H));
    cuda::attention_backward(gq, gout, glse, gpu(dout), g1, int(k.H));
    cuda::attention_backward(gq, gout, glse, gpu(dout), g2, int(k.H));
    expect_close(g1, dqkv, 2e-5, "attention dqkv " + name);
    CHECK(bit_equal(g1, g2));
  }
}

TEST_CASE("CUDA adamw_update, sum_squares and square_accumulate match the CPU") {
  if (!gpu_or_skip("CUDA optimizer")) return;
  std::vector<int64_t> sizes = {1, 16385, 100003, 0};
  std::vector<AdamWItem> c_items, g_items;
  for (size_t i = 0; i < sizes.size(); ++i) {
    AdamWItem c;
    c.param = randn({sizes[i]}, 70 + i);
    c.grad = randn({sizes[i]}, 80 + i);
    c.m = randn({sizes[i]}, 90 + i, 0.1);
    c.v = Tensor::full({sizes[i]}, 0.01);
    c.lr = 1e-3f * float(i + 1);
    c.weight_decay = i % 2 ? 0.1f : 0.f;
    c.bias_correction1 = 0.1f;
    c.bias_correction2 = 0.001f;
    c.grad_scale = 0.5f;
    AdamWItem g = c;
    g.param = gpu(c.param);
    g.grad = gpu(c.grad);
    g.m = gpu(c.m);
    g.v = gpu(c.v);
    c_items.push_back(c);
    g_items.push_back(g);
  }
  for (int step = 0; step < 3; ++step) {
    cpu::adamw_update(views_of(c_items));
    cuda::adamw_update(views_of(g_items));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) continue;
    expect_close(g_items[i].param, c_items[i].param, 2e-6, "adamw param " + std::to_string(i));
    expect_close(g_items[i].m, c_items[i].m, 2e-6, "adamw m " + std::to_string(i));
    expect_close(g_items[i].v, c_items[i].v, 2e-6, "adamw v " + std::to_string(i));
  }
  std::vector<Tensor> xs = {randn({1}, 100), randn({16385}, 101), randn({1000003}, 102),
                            randn({77}, 103, 1, DType::F64)};
  std::vector<Tensor> gxs;
  for (auto& t : xs) gxs.push_back(gpu(t));
  for (DType od : {DType::F64, DType::F32}) {
    Tensor c = Tensor::full({1}, 2.0, od), g = Tensor::full({1}, 2.0, od, kGpu);
    cpu::sum_squares(views_of(xs), c);
    cuda::sum_squares(views_of(gxs), g);
    expect_close(g, c, 1e-6, std::string("sum_squares into ") + dtype_name(od));
  }
  Tensor acc = randn({1000}, 104), gsq = randn({3, 1000}, 105);
  Tensor gacc = gpu(acc);
  cpu::square_accumulate(acc, gsq, 0.25);
  cuda::square_accumulate(gacc, gpu(gsq), 0.25);
  expect_close(gacc, acc, 1e-6, "square_accumulate");
}
