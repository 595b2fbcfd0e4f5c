// Matrix products: batched matmul (b either batched like a, or 2-D and shared by every batch entry),
// linear (x @ w + b, Hugging Face Conv1D layout) and bias_add. Everything runs the 3-D matmul kernel
// on [batch, rows, cols] views; backward uses the transpose flags instead of materialising transposes.
#include <utility>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_check.h"
#include "aria/core/ops_fused.h"
#include "aria/kernels/backend.h"

namespace aria::ops {

using namespace detail;

namespace {

// c = op(x) @ op(y) into a fresh [batch, rows, cols] tensor (3-D contiguous inputs).
Tensor mm(const Tensor& x, const Tensor& y, bool tx, bool ty, const Shape& c_shape) {
  Tensor c = Tensor::empty(c_shape, x.dtype(), x.device());
  ARIA_DISPATCH(c.device(), matmul, x, y, c, tx, ty, 1.0, 0.0);
  return c;
}

// A contiguous operand for the kernel: a transposed view of a contiguous matrix flips the flag
// instead of being copied.
bool contiguous_when_transposed(const Tensor& t) {
  Shape s = t.shape(), st = t.strides();
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] != 1 && st[i] != acc) return false;
    acc *= s[i];
  }
  return true;
}

Tensor gemm_operand(const Tensor& t, bool& trans) {
  if (t.is_contiguous()) return t;
  if (contiguous_when_transposed(t)) {
    trans = !trans;
    return t.transpose(-2, -1);
  }
  return t.contiguous();
}

// [N, C] detached view of a contiguous tensor whose last dim is C, N = product of the others.
Tensor rows(const Tensor& t, int64_t N, int64_t C) { return t.detach().reshape({N, C}); }

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b) {
  const char* what = "matmul";
  check_float(a_in, what, "a");
  check_float(b_in, what, "b");
  check_pair(a_in, b_in, what);
  ARIA_CHECK(a_in.dim() >= 2, what, ": a must have at least 2 dims, got ", a_in.str());
  const bool shared_b = b_in.dim() == 2;
  const Shape batch_dims(a_in.shape().begin(), a_in.shape().end() - 2);
  ARIA_CHECK(shared_b || (b_in.dim() == a_in.dim() && Shape(b_in.shape().begin(), b_in.shape().end() - 2) == batch_dims),
             what, ": b must be 2-D or have a's batch dims: a ", a_in.str(), ", b ", b_in.str());
  bool ta = trans_a, tb = trans_b;
  const Tensor a = gemm_operand(a_in, ta), b = gemm_operand(b_in, tb);
  const int64_t M = a_in.size(trans_a ? -1 : -2), K = a_in.size(trans_a ? -2 : -1);
  const int64_t Kb = b_in.size(trans_b ? -1 : -2), N = b_in.size(trans_b ? -2 : -1);
  ARIA_CHECK(K == Kb, what, ": inner dimensions differ: a ", a_in.str(), (trans_a ? " (transposed)" : ""), " has K = ",
             K, ", b ", b_in.str(), (trans_b ? " (transposed)" : ""), " has K = ", Kb);
  const int64_t batch = shape_numel(batch_dims);
  Shape out_shape = batch_dims;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  const Tensor a3 = a.detach().reshape({batch, a.size(-2), a.size(-1)});
  const Tensor b3 = b.detach().reshape({shared_b ? 1 : batch, b.size(-2), b.size(-1)});
  ARIA_DISPATCH(out.device(), matmul, a3, b3, out.detach().reshape({batch, M, N}), ta, tb, 1.0, 0.0);
  if (!needs_grad({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  record_op(what, {a, b}, {out}, [=, as = a.shape(), bs = b.shape()](const std::vector<Tensor>& g) {
    const Tensor g3 = g[0].contiguous().reshape({batch, M, N});
    Tensor da, db;
    if (ga) {
      if (!ta)  // dA = G @ op(B)^T
        da = mm(g3, b3, false, !tb, {batch, M, K});
      else if (!shared_b)  // dA (stored [K, M]) = op(B) @ G^T
        da = mm(b3, g3, tb, true, {batch, K, M});
      else  // a shared b cannot be the kernel's first operand: transpose G @ op(B)^T afterwards
        da = mm(g3, b3, false, !tb, {batch, M, K}).transpose(1, 2).contiguous();
      da = da.reshape(as);
    }
    if (gb) {
      if (!shared_b) {
        db = tb ? mm(g3, a3, true, ta, {batch, N, K}) : mm(a3, g3, !ta, false, {batch, K, N});
      } else {
        // b is shared: fold a's batch into rows, so dB is one GEMM over batch * M rows.
        const Tensor op_a = ta ? a3.transpose(1, 2).contiguous() : a3;
        const Tensor ra = op_a.reshape({1, batch * M, K}), rg = g3.reshape({1, batch * M, N});
        db = tb ? mm(rg, ra, true, false, {1, N, K}) : mm(ra, rg, true, false, {1, K, N});
      }
      db = db.reshape(bs);
    }
    return std::vector<Tensor>{da, db};
  });
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const char* what = "linear";
  check_float(x, what, "x");
  check_float(w, what, "w");
  check_pair(x, w, what);
  ARIA_CHECK(x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(0), what, ": x ", x.str(),
             " must be [..., in] and w [in, out], got w ", w.str());
  const int64_t in = w.size(0), out_f = w.size(1);
  if (b.defined()) {
    check_float(b, what, "b");
    check_pair(x, b, what);
    ARIA_CHECK(b.shape() == Shape{out_f}, what, ": bias must be [", out_f, "] for w ", w.str(), ", got ", b.str());
  }
  const int64_t N = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor xc = x.contiguous(), wc = w.contiguous(), bc = b.defined() ? b.contiguous() : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  const Tensor w3 = wc.detach().reshape({1, in, out_f});
  const Device dev = y.device();
  // The bias rides in the GEMM's epilogue (forward); its gradient is a column sum (backward).
  const Tensor x2 = rows(xc, N, in), w2 = wc.detach();
  ARIA_DISPATCH(dev, gemm_epilogue, x2, w2, rows(y, N, out_f), false, false,
                int(bc.defined() ? GemmEpilogue::Bias : GemmEpilogue::None), bc.defined() ? bc.detach() : Tensor(),
                Tensor());
  if (!needs_grad({&xc, &wc, &bc})) return y;
  const bool gx = xc.requires_grad(), gw = wc.requires_grad(), gbias = bc.defined() && bc.requires_grad();
  record_op(what, {xc, wc, bc}, {y}, [=, xs = x.shape()](const std::vector<Tensor>& g) {
    const Tensor g3 = g[0].contiguous().reshape({1, N, out_f});
    Tensor dx, dw, db;
    if (gx) dx = mm(g3, w3, false, true, {1, N, in}).reshape(xs);
    std::tie(dw, db) = linear_param_grads(x2, rows(g3, N, out_f), gw, gbias);
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

Tensor bias_add(const Tensor& x, const Tensor& b) {
  const char* what = "bias_add";
  check_float(x, what, "x");
  check_float(b, what, "b");
  check_pair(x, b, what);
  ARIA_CHECK(x.dim() >= 1 && b.dim() == 1 && b.size(0) == x.size(-1), what, ": bias ", b.str(),
             " must be [C] for x ", x.str(), " = [..., C]");
  const int64_t C = b.size(0), N = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor bc = b.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  y.copy_from(x);
  ARIA_DISPATCH(y.device(), add_bias, rows(y, N, C), bc.detach());
  if (!needs_grad({&x, &bc})) return y;
  const bool gb = bc.requires_grad();
  record_op(what, {x, bc}, {y}, [=](const std::vector<Tensor>& g) {
    Tensor db;
    if (gb) {
      db = Tensor::empty({C}, g[0].dtype(), g[0].device());
      ARIA_DISPATCH(db.device(), sum_to, rows(g[0].contiguous(), N, C), db.reshape({1, C}));
    }
    return std::vector<Tensor>{g[0], db};
  });
  return y;
}

}  // namespace aria::ops
