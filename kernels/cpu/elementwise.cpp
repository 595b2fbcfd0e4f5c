// CPU elementwise kernels: broadcasting binary ops, unary ops and their derivatives, sum_to
// (the reduction behind broadcasting's backward), add_bias, and GELU's backward fused with the bias
// gradient. float32 and float64.
#include <algorithm>
#include <cmath>
#include <vector>

#include "aria/kernels/backend.h"
#include "aria/kernels/cpu/cpu_common.h"
#include "aria/kernels/cpu/gelu.h"
#include "aria/kernels/gelu_bias_grad_check.h"

namespace aria::cpu {

namespace {

// ---- binary -----------------------------------------------------------------------------------

// Shape and three stride vectors (a, b, out) with size-1 dims dropped and mergeable neighbours merged.
struct Walk3 {
  Shape shape;
  Shape st[3];
};

Walk3 coalesce3(const Shape& shape, const Shape& sa, const Shape& sb, const Shape& so) {
  Walk3 w;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    const int64_t s[3] = {sa[d], sb[d], so[d]};
    if (!w.shape.empty()) {
      bool merge = true;
      for (int k = 0; k < 3; ++k) merge &= w.st[k].back() == s[k] * shape[d];
      if (merge) {
        w.shape.back() *= shape[d];
        for (int k = 0; k < 3; ++k) w.st[k].back() = s[k];
        continue;
      }
    }
    w.shape.push_back(shape[d]);
    for (int k = 0; k < 3; ++k) w.st[k].push_back(s[k]);
  }
  if (w.shape.empty()) {
    w.shape.push_back(1);
    for (auto& s : w.st) s.push_back(1);
  }
  return w;
}

template <typename T, typename Op>
inline void binary_row(const T* pa, int64_t ia, const T* pb, int64_t ib, T* po, int64_t n, Op op) {
  // Specialised stride patterns so that the common cases vectorise.
  if (ia == 1 && ib == 1) {
    for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], pb[i]);
  } else if (ia == 1 && ib == 0) {
    const T b = *pb;
    for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], b);
  } else if (ia == 0 && ib == 1) {
    const T a = *pa;
    for (int64_t i = 0; i < n; ++i) po[i] = op(a, pb[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i * ia], pb[i * ib]);
  }
}

template <typename T, typename Op>
void binary_impl(const TensorView& a, const TensorView& b, const TensorView& out, Op op) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  const int64_t n = out.numel();
  if (n == 0) return;
  if (a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() && b.shape() == out.shape()) {
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], pb[i]);
    return;
  }
  const Walk3 w = coalesce3(out.shape(), a.strides(), b.strides(), out.strides());
  const int nd = int(w.shape.size());
  const int64_t inner = w.shape.back(), rows = n / inner;
  const int64_t ia = w.st[0].back(), ib = w.st[1].back(), io = w.st[2].back();
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t oa = 0, ob = 0, oo = 0, rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % w.shape[d];
      rem /= w.shape[d];
      oa += i * w.st[0][d];
      ob += i * w.st[1][d];
      oo += i * w.st[2][d];
    }
    if (io == 1) {
      binary_row(pa + oa, ia, pb + ob, ib, po + oo, inner, op);
    } else {
      for (int64_t i = 0; i < inner; ++i) po[oo + i * io] = op(pa[oa + i * ia], pb[ob + i * ib]);
    }
  }
}

// ---- unary ------------------------------------------------------------------------------------

template <typename T, typename F>
void map1(const T* x, T* y, int64_t n, F f) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename T>
void unary_impl(UnaryOp op, const TensorView& xt, const TensorView& yt, double alpha, double beta) {
  const T* x = xt.data<T>();
  T* y = yt.data<T>();
  const int64_t n = xt.numel();
  const T a = T(alpha), b = T(beta);
  switch (op) {
    case UnaryOp::Affine: return map1(x, y, n, [a, b](T v) { return a * v + b; });
    case UnaryOp::Gelu: return map1(x, y, n, [](T v) { return gelu_tanh(v); });
    case UnaryOp::Sigmoid: return map1(x, y, n, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
    case UnaryOp::Relu: return map1(x, y, n, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::Exp: return map1(x, y, n, [](T v) { return std::exp(v); });
    case UnaryOp::Log: return map1(x, y, n, [](T v) { return std::log(v); });
    case UnaryOp::Tanh: return map1(x, y, n, [](T v) { return std::tanh(v); });
    case UnaryOp::Square: return map1(x, y, n, [](T v) { return v * v; });
  }
  ARIA_FAIL("unary: unknown op ", int(op));
}

// dx = dy * f(s) (or +=, when accumulate), s being x or y depending on the op
template <typename T, typename F>
void map_backward(const T* s, const T* dy, T* dx, int64_t n, bool accumulate, F f) {
  if (accumulate) {
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * f(s[i]);
  } else {
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * f(s[i]);
  }
}

template <typename T>
void unary_backward_impl(UnaryOp op, const TensorView& xt, const TensorView& yt, const TensorView& dyt,
                         const TensorView& dxt, bool accumulate) {
  const bool uses_y = op == UnaryOp::Sigmoid || op == UnaryOp::Exp || op == UnaryOp::Tanh;
  const TensorView& src = uses_y ? yt : xt;
  ARIA_CHECK(src.defined(), "unary_backward: op ", int(op), " needs ", uses_y ? "y" : "x");
  check_same_shape(src, dxt, "unary_backward");
  check_same_shape(dyt, dxt, "unary_backward");
  ARIA_CHECK(src.is_contiguous() && dyt.is_contiguous() && dxt.is_contiguous(),
             "unary_backward: tensors must be contiguous");
  const T* s = src.data<T>();
  const T* dy = dyt.data<T>();
  T* dx = dxt.data<T>();
  const int64_t n = dxt.numel();
  switch (op) {
    case UnaryOp::Gelu: return map_backward(s, dy, dx, n, accumulate, [](T v) { return gelu_tanh_grad(v); });
    case UnaryOp::Sigmoid: return map_backward(s, dy, dx, n, accumulate, [](T v) { return v * (T(1) - v); });
    case UnaryOp::Relu: return map_backward(s, dy, dx, n, accumulate, [](T v) { return v > T(0) ? T(1) : T(0); });
    case UnaryOp::Exp: return map_backward(s, dy, dx, n, accumulate, [](T v) { return v; });
    case UnaryOp::Log: return map_backward(s, dy, dx, n, accumulate, [](T v) { return T(1) / v; });
    case UnaryOp::Tanh: return map_backward(s, dy, dx, n, accumulate, [](T v) { return T(1) - v * v; });
    case UnaryOp::Square: return map_backward(s, dy, dx, n, accumulate, [](T v) { return T(2) * v; });
    case UnaryOp::Affine:
      ARIA_FAIL("unary_backward: Affine has no kernel backward (it is unary(Affine, dy, dx, alpha, 0))");
  }
  ARIA_FAIL("unary_backward: unknown op ", int(op));
}

// ---- sum_to -----------------------------------------------------------------------------------

// out[a, c] = sum_r in[a, r, c] for a contiguous [A, R, C] input (accumulated in double).
template <typename In>
std::vector<double> reduce_middle(const In* in, int64_t A, int64_t R, int64_t C) {
  std::vector<double> out(size_t(A * C), 0.0);
  if (C == 1) {  // row sums: several partial sums break the add-latency chain
#pragma omp parallel for if (A * R >= kParallelMin)
    for (int64_t a = 0; a < A; ++a) {
      const In* row = in + a * R;
      double p[8] = {};
      int64_t r = 0;
      for (; r + 8 <= R; r += 8)
        for (int k = 0; k < 8; ++k) p[k] += double(row[r + k]);
      for (; r < R; ++r) p[0] += double(row[r]);
      out[size_t(a)] = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    }
    return out;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (C + kBlock - 1) / kBlock, tasks = A * blocks;
#pragma omp parallel for if (A * R * C >= kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t a = t / blocks, c0 = (t % blocks) * kBlock, c1 = std::min(C, c0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const In* row = in + (a * R + r) * C;
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += double(row[c]);
    }
    for (int64_t c = c0; c < c1; ++c) out[size_t(a * C + c)] = acc[c - c0];
  }
  return out;
}

template <typename T>
void sum_to_impl(const TensorView& x, const TensorView& out) {
  // Groups of adjacent dims that are all reduced or all kept (size-1 dims of x dropped).
  std::vector<std::pair<int64_t, bool>> groups;  // (extent, reduced)
  for (int d = 0; d < x.dim(); ++d) {
    const int64_t n = x.shape()[d];
    if (n == 1) continue;
    const bool red = out.shape()[d] == 1;
    if (!groups.empty() && groups.back().second == red)
      groups.back().first *= n;
    else
      groups.push_back({n, red});
  }
  T* po = out.data<T>();
  const T* px = x.data<T>();
  const int64_t n_out = out.numel();
  bool any_reduced = false;
  for (auto& g : groups) any_reduced |= g.second;
  if (!any_reduced) {
    for (int64_t i = 0; i < n_out; ++i) po[i] = px[i];
    return;
  }
  // Reduce the innermost reduced group until none is left: each pass is one [A, R, C] reduction.
  std::vector<double> cur;
  bool first = true;
  while (true) {
    int g = -1;
    for (int i = int(groups.size()) - 1; i >= 0 && g < 0; --i)
      if (groups[size_t(i)].second) g = i;
    if (g < 0) break;
    int64_t A = 1, C = 1;
    for (int i = 0; i < g; ++i) A *= groups[size_t(i)].first;
    for (size_t i = size_t(g) + 1; i < groups.size(); ++i) C *= groups[i].first;
    const int64_t R = groups[size_t(g)].first;
    cur = first ? reduce_middle(px, A, R, C) : reduce_middle(cur.data(), A, R, C);
    first = false;
    groups.erase(groups.begin() + g);
  }
  for (int64_t i = 0; i < n_out; ++i) po[i] = T(cur[size_t(i)]);
}

// ---- gelu_backward_bias_grad --------------------------------------------------------------------

// dpre = dh * gelu'(pre) over [R, C] and db = its column sums. Tasks are tiles of kGeluRowChunk rows x
// kGeluColBlock columns; each sums its tile's columns in double, rows in order, and the row chunks'
// partial sums are then added in chunk order: a fixed order whatever the thread count (deterministic),
// and equal to sum_to's sequential double sums up to rounding (exactly when R <= kGeluRowChunk).
constexpr int64_t kGeluRowChunk = 512, kGeluColBlock = 256;

template <typename T>
void gelu_backward_bias_grad_impl(const T* pre, const T* dh, T* dpre, T* db, int64_t R, int64_t C) {
  const int64_t chunks = (R + kGeluRowChunk - 1) / kGeluRowChunk, blocks = (C + kGeluColBlock - 1) / kGeluColBlock;
  std::vector<double> partial(size_t(chunks * C));
#pragma omp parallel for if (R * C >= kParallelMin)
  for (int64_t t = 0; t < chunks * blocks; ++t) {
    const int64_t ch = t / blocks, c0 = (t % blocks) * kGeluColBlock, c1 = std::min(C, c0 + kGeluColBlock);
    const int64_t r1 = std::min(R, (ch + 1) * kGeluRowChunk);
    double acc[kGeluColBlock] = {};
    for (int64_t r = ch * kGeluRowChunk; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = r * C + c;
        const T v = dh[i] * gelu_tanh_grad(pre[i]);  // as unary_backward: dpre may be dh
        dpre[i] = v;
        acc[c - c0] += double(v);
      }
    }
    for (int64_t c = c0; c < c1; ++c) partial[size_t(ch * C + c)] = acc[c - c0];
  }
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t ch = 0; ch < chunks; ++ch) s += partial[size_t(ch * C + c)];
    db[c] = T(s);
  }
}

template <typename T>
void add_bias_impl(const TensorView& y, const TensorView& b) {
  const int64_t C = b.numel(), N = C ? y.numel() / C : 0;
  T* py = y.data<T>();
  const T* pb = b.data<T>();
#pragma omp parallel for if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    T* row = py + n * C;
    for (int64_t c = 0; c < C; ++c) row[c] += pb[c];
  }
}

}  // namespace

void binary(int op, const TensorView& a, const TensorView& b, const TensorView& out) {
  ARIA_CHECK(a.dim() == out.dim() && b.dim() == out.dim(), "binary: a ", a.str(), ", b ", b.str(), " and out ",
             out.str(), " must have one rank");
  for (int d = 0; d < out.dim(); ++d)
    ARIA_CHECK(a.shape()[d] == out.shape()[d] && b.shape()[d] == out.shape()[d], "binary: shapes ", a.str(), " and ",
               b.str(), " must equal out ", out.str(), " (broadcast with stride 0)");
  ARIA_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "binary: dtypes differ");
  ARIA_CHECK(out.is_contiguous(), "binary: out must be contiguous");
  dispatch_float(out.dtype(), "binary", [&](auto z) {
    using T = decltype(z);
    switch (BinaryOp(op)) {
      case BinaryOp::Add: return binary_impl<T>(a, b, out, [](T x, T y) { return x + y; });
      case BinaryOp::Sub: return binary_impl<T>(a, b, out, [](T x, T y) { return x - y; });
      case BinaryOp::Mul: return binary_impl<T>(a, b, out, [](T x, T y) { return x * y; });
      case BinaryOp::Div: return binary_impl<T>(a, b, out, [](T x, T y) { return x / y; });
    }
    ARIA_FAIL("binary: unknown op ", op);
  });
}

void unary(int op, const TensorView& x, const TensorView& y, double alpha, double beta) {
  check_same_shape(x, y, "unary");
  ARIA_CHECK(x.dtype() == y.dtype(), "unary: dtypes differ: ", x.str(), " vs ", y.str());
  ARIA_CHECK(x.is_contiguous() && y.is_contiguous(), "unary: tensors must be contiguous");
  dispatch_float(x.dtype(), "unary", [&](auto z) { unary_impl<decltype(z)>(UnaryOp(op), x, y, alpha, beta); });
}

void unary_backward(int op, const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx,
                    double alpha) {
  ARIA_CHECK(alpha == 0 || alpha == 1, "unary_backward: alpha must be 0 (write) or 1 (accumulate), got ", alpha);
  dispatch_float(dx.dtype(), "unary_backward",
                 [&](auto z) { unary_backward_impl<decltype(z)>(UnaryOp(op), x, y, dy, dx, alpha == 1); });
}

void sum_to(const TensorView& x, const TensorView& out) {
  ARIA_CHECK(x.dim() == out.dim(), "sum_to: ", x.str(), " and ", out.str(), " must have one rank");
  for (int d = 0; d < x.dim(); ++d)
    ARIA_CHECK(out.shape()[d] == x.shape()[d] || out.shape()[d] == 1, "sum_to: cannot reduce ", x.str(), " to ",
               out.str());
  ARIA_CHECK(x.dtype() == out.dtype(), "sum_to: dtypes differ: ", x.str(), " vs ", out.str());
  ARIA_CHECK(x.is_contiguous() && out.is_contiguous(), "sum_to: tensors must be contiguous");
  dispatch_float(x.dtype(), "sum_to", [&](auto z) { sum_to_impl<decltype(z)>(x, out); });
}

void gelu_backward_bias_grad(const TensorView& pre, const TensorView& dh, const TensorView& dpre,
                             const TensorView& db) {
  const GeluBiasGradRows rows = check_gelu_backward_bias_grad_args(pre, dh, dpre, db, false);
  dispatch_float(pre.dtype(), "gelu_backward_bias_grad", [&](auto z) {
    using T = decltype(z);
    gelu_backward_bias_grad_impl<T>(pre.data<T>(), dh.data<T>(), dpre.data<T>(), db.data<T>(), rows.R, rows.C);
  });
}

void add_bias(const TensorView& y, const TensorView& b) {
  ARIA_CHECK(y.dim() >= 1 && b.dim() == 1 && y.shape().back() == b.numel(), "add_bias: bias ", b.str(),
             " does not match the last dim of ", y.str());
  ARIA_CHECK(y.dtype() == b.dtype(), "add_bias: dtypes differ: ", y.str(), " vs ", b.str());
  ARIA_CHECK(y.is_contiguous() && b.is_contiguous(), "add_bias: tensors must be contiguous");
  dispatch_float(y.dtype(), "add_bias", [&](auto z) { add_bias_impl<decltype(z)>(y, b); });
}

}  // namespace aria::cpu
