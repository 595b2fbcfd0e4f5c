// CPU causal grouped-query attention (float32 / float64), the reference for the GQA form of the CUDA
// attention: q | k | v packed per row with n_kv_head k/v heads shared by n_head / n_kv_head query
// heads each (read in place through strided maps: no repeated copies), optionally a sliding window.
// One (batch, kv head) per task: the backward adds the group's dK/dV contributions in query-head
// order, so the result does not depend on the thread count.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "aria/kernels/backend.h"

namespace aria::cpu {

namespace {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstView = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using View = Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>>;

struct Dims {
  int64_t B, T, H, KV, hd, W, window;  // W = (H + 2 KV) hd, the qkv row
  int64_t first_key(int64_t i) const { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }
};

Dims check_args(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head, int n_kv_head,
                int window, const char* what) {
  ARIA_CHECK(qkv.defined() && qkv.dim() == 3 && qkv.is_contiguous() && qkv.device().is_cpu(), what,
             ": qkv must be a contiguous CPU [B, T, (n_head + 2 n_kv_head) head_dim], got ",
             qkv.defined() ? qkv.str() : "undefined");
  ARIA_CHECK(n_head > 0 && n_kv_head > 0 && n_head % n_kv_head == 0, what, ": n_kv_head = ", n_kv_head,
             " must divide n_head = ", n_head);
  ARIA_CHECK(window >= 0, what, ": window must be >= 0 (0: none), got ", window);
  const int64_t W = qkv.size(2), heads = n_head + 2 * int64_t(n_kv_head);
  ARIA_CHECK(W % heads == 0 && W > 0, what, ": the last dimension ", W, " of qkv is not (n_head + 2 n_kv_head) = ",
             heads, " heads");
  Dims d{qkv.size(0), qkv.size(1), n_head, n_kv_head, W / heads, W, window};
  const DType dt = qkv.dtype();
  ARIA_CHECK(out.defined() && out.is_contiguous() && out.shape() == Shape({d.B, d.T, d.H * d.hd}) && out.dtype() == dt,
             what, ": out must be a contiguous ", dtype_name(dt), " [", d.B, ", ", d.T, ", ", d.H * d.hd, "], got ",
             out.defined() ? out.str() : "undefined");
  ARIA_CHECK(lse.defined() && lse.is_contiguous() && lse.shape() == Shape({d.B, d.H, d.T}) && lse.dtype() == dt, what,
             ": lse must be a contiguous ", dtype_name(dt), " [", d.B, ", ", d.H, ", ", d.T, "], got ",
             lse.defined() ? lse.str() : "undefined");
  return d;
}

template <typename T>
void forward_impl(const TensorView& qkv_t, const TensorView& out_t, const TensorView& lse_t, const Dims d) {
  const T* qkv = qkv_t.data<T>();
  T* out = out_t.data<T>();
  T* lse = lse_t.data<T>();
  const T scale = T(1.0 / std::sqrt(double(d.hd)));
  const int64_t C = d.H * d.hd, group = d.H / d.KV;
  const Eigen::OuterStride<> sq(d.W), so(C);
#pragma omp parallel
  {
    Mat<T> S(d.T, d.T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H, g = h / group;
      const T* row0 = qkv + b * d.T * d.W;
      ConstView<T> Q(row0 + h * d.hd, d.T, d.hd, sq), K(row0 + C + g * d.hd, d.T, d.hd, sq),
          V(row0 + C + d.KV * d.hd + g * d.hd, d.T, d.hd, sq);
      View<T> O(out + b * d.T * C + h * d.hd, d.T, d.hd, so);
      S.setZero();
      S.template triangularView<Eigen::Lower>() = Q * K.transpose();
      T* lse_row = lse + bh * d.T;
      for (int64_t i = 0; i < d.T; ++i) {
        T* s = S.row(i).data();
        const int64_t j0 = d.first_key(i);
        T m = s[j0] * scale;
        for (int64_t j = j0; j <= i; ++j) m = std::max(m, s[j] * scale);
        double sum = 0;
        for (int64_t j = j0; j <= i; ++j) {
          s[j] = std::exp(s[j] * scale - m);
          sum += s[j];
        }
        const T inv = T(1.0 / sum);
        for (int64_t j = 0; j < j0; ++j) s[j] = 0;
        for (int64_t j = j0; j <= i; ++j) s[j] *= inv;
        lse_row[i] = T(double(m) + std::log(sum));
      }
      O.noalias() = S.template triangularView<Eigen::Lower>() * V;
    }
  }
}

// Per query head h of kv head g: P = softmax(scale Q K^T) (causal, windowed), dV_g += P^T dO,
// dP = dO V^T, dS = P * (dP - rowsum(dO * O)) * scale, dQ = dS K, dK_g += dS^T Q.
template <typename T>
void backward_impl(const TensorView& qkv_t, const TensorView& out_t, const TensorView& lse_t, const TensorView& dout_t,
                   const TensorView& dqkv_t, const Dims d) {
  const T *qkv = qkv_t.data<T>(), *out = out_t.data<T>(), *lse = lse_t.data<T>(), *dout = dout_t.data<T>();
  T* dqkv = dqkv_t.data<T>();
  const T scale = T(1.0 / std::sqrt(double(d.hd)));
  const int64_t C = d.H * d.hd, group = d.H / d.KV;
  const Eigen::OuterStride<> sq(d.W), so(C);
#pragma omp parallel
  {
    Mat<T> P(d.T, d.T), dS(d.T, d.T);
#pragma omp for schedule(static)
    for (int64_t bg = 0; bg < d.B * d.KV; ++bg) {
      const int64_t b = bg / d.KV, g = bg % d.KV;
      const T* row0 = qkv + b * d.T * d.W;
      T* drow0 = dqkv + b * d.T * d.W;
      ConstView<T> K(row0 + C + g * d.hd, d.T, d.hd, sq), V(row0 + C + d.KV * d.hd + g * d.hd, d.T, d.hd, sq);
      View<T> dK(drow0 + C + g * d.hd, d.T, d.hd, sq), dV(drow0 + C + d.KV * d.hd + g * d.hd, d.T, d.hd, sq);
      dK.setZero();
      dV.setZero();
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        ConstView<T> Q(row0 + h * d.hd, d.T, d.hd, sq);
        ConstView<T> O(out + b * d.T * C + h * d.hd, d.T, d.hd, so), dO(dout + b * d.T * C + h * d.hd, d.T, d.hd, so);
        View<T> dQ(drow0 + h * d.hd, d.T, d.hd, sq);
        P.setZero();
        dS.setZero();
        P.template triangularView<Eigen::Lower>() = Q * K.transpose();
        dS.template triangularView<Eigen::Lower>() = dO * V.transpose();
        const T* lse_row = lse + (b * d.H + h) * d.T;
        for (int64_t i = 0; i < d.T; ++i) {
          T *p = P.row(i).data(), *ds = dS.row(i).data();
          const T Di = dO.row(i).dot(O.row(i));
          const int64_t j0 = d.first_key(i);
          for (int64_t j = 0; j < j0; ++j) p[j] = ds[j] = 0;
          for (int64_t j = j0; j <= i; ++j) {
            p[j] = std::exp(p[j] * scale - lse_row[i]);
            ds[j] = p[j] * (ds[j] - Di) * scale;
          }
        }
        dV.noalias() += P.template triangularView<Eigen::Lower>().transpose() * dO;
        dQ.noalias() = dS.template triangularView<Eigen::Lower>() * K;
        dK.noalias() += dS.template triangularView<Eigen::Lower>().transpose() * Q;
      }
    }
  }
}

}  // namespace

void attention_gqa_forward(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head,
                           int n_kv_head, int window) {
  const char* what = "attention_gqa_forward";
  const Dims d = check_args(qkv, out, lse, n_head, n_kv_head, window, what);
  if (d.B * d.T == 0) return;
  if (qkv.dtype() == DType::F32) return forward_impl<float>(qkv, out, lse, d);
  if (qkv.dtype() == DType::F64) return forward_impl<double>(qkv, out, lse, d);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(qkv.dtype()), " (the CPU computes in float32/float64)");
}

void attention_gqa_backward(const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
                            const TensorView& dqkv, int n_head, int n_kv_head, int window) {
  const char* what = "attention_gqa_backward";
  const Dims d = check_args(qkv, out, lse, n_head, n_kv_head, window, what);
  ARIA_CHECK(dout.defined() && dout.is_contiguous() && dout.shape() == out.shape() && dout.dtype() == qkv.dtype(),
             what, ": dout must be a contiguous ", out.str(), ", got ", dout.defined() ? dout.str() : "undefined");
  ARIA_CHECK(dqkv.defined() && dqkv.is_contiguous() && dqkv.shape() == qkv.shape() && dqkv.dtype() == qkv.dtype(),
             what, ": dqkv must be a contiguous ", qkv.str(), ", got ", dqkv.defined() ? dqkv.str() : "undefined");
  if (d.B * d.T == 0) return;
  if (qkv.dtype() == DType::F32) return backward_impl<float>(qkv, out, lse, dout, dqkv, d);
  if (qkv.dtype() == DType::F64) return backward_impl<double>(qkv, out, lse, dout, dqkv, d);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(qkv.dtype()), " (the CPU computes in float32/float64)");
}

}  // namespace aria::cpu
