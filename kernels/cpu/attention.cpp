// CPU causal multi-head self-attention in GPT-2's layout (float32 / float64). Per (batch, head) the
// products run through Eigen on strided maps of qkv / out (no head split/merge copies); the T x T
// scores live only in a per-thread scratch. lse (in the input's dtype) lets backward rebuild P.
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
  int64_t B, T, C, H, hd;
};

Dims check_args(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head, const char* what) {
  ARIA_CHECK(qkv.dim() == 3 && qkv.is_contiguous() && qkv.size(2) % 3 == 0, what,
             ": qkv must be a contiguous [B, T, 3C], got ", qkv.str());
  Dims d{qkv.size(0), qkv.size(1), qkv.size(2) / 3, n_head, 0};
  ARIA_CHECK(n_head > 0 && d.C % n_head == 0, what, ": C = ", d.C, " is not divisible by n_head = ", n_head);
  d.hd = d.C / n_head;
  ARIA_CHECK(out.is_contiguous() && out.shape() == Shape({d.B, d.T, d.C}) && out.dtype() == qkv.dtype(), what,
             ": out must be a contiguous ", dtype_name(qkv.dtype()), " [", d.B, ", ", d.T, ", ", d.C, "], got ",
             out.str());
  ARIA_CHECK(lse.is_contiguous() && lse.shape() == Shape({d.B, d.H, d.T}) && lse.dtype() == qkv.dtype(), what,
             ": lse must be a contiguous ", dtype_name(qkv.dtype()), " [", d.B, ", ", d.H, ", ", d.T, "], got ",
             lse.str());
  return d;
}

template <typename T>
void forward_impl(const TensorView& qkv_t, const TensorView& out_t, const TensorView& lse_t, const Dims d) {
  const T* qkv = qkv_t.data<T>();
  T* out = out_t.data<T>();
  T* lse = lse_t.data<T>();
  const T scale = T(1.0 / std::sqrt(double(d.hd)));
  const Eigen::OuterStride<> s3(3 * d.C), s1(d.C);
#pragma omp parallel
  {
    Mat<T> S(d.T, d.T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H;
      const T* base = qkv + b * d.T * 3 * d.C + h * d.hd;
      ConstView<T> Q(base, d.T, d.hd, s3), K(base + d.C, d.T, d.hd, s3), V(base + 2 * d.C, d.T, d.hd, s3);
      View<T> O(out + b * d.T * d.C + h * d.hd, d.T, d.hd, s1);
      S.template triangularView<Eigen::Lower>() = Q * K.transpose();
      T* lse_row = lse + bh * d.T;
      for (int64_t i = 0; i < d.T; ++i) {
        T* s = S.row(i).data();
        T m = s[0] * scale;
        for (int64_t j = 0; j <= i; ++j) m = std::max(m, s[j] * scale);
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          s[j] = std::exp(s[j] * scale - m);
          sum += s[j];
        }
        const T inv = T(1.0 / sum);
        for (int64_t j = 0; j <= i; ++j) s[j] *= inv;
        lse_row[i] = T(double(m) + std::log(sum));
      }
      O.noalias() = S.template triangularView<Eigen::Lower>() * V;
    }
  }
}

// With P = softmax(scale * Q K^T) (causal): dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
// dQ = scale * dS K, dK = scale * dS^T Q.
template <typename T>
void backward_impl(const TensorView& qkv_t, const TensorView& out_t, const TensorView& lse_t, const TensorView& dout_t,
                   const TensorView& dqkv_t, const Dims d) {
  const T *qkv = qkv_t.data<T>(), *out = out_t.data<T>(), *lse = lse_t.data<T>(), *dout = dout_t.data<T>();
  T* dqkv = dqkv_t.data<T>();
  const T scale = T(1.0 / std::sqrt(double(d.hd)));
  const Eigen::OuterStride<> s3(3 * d.C), s1(d.C);
#pragma omp parallel
  {
    Mat<T> P(d.T, d.T), dS(d.T, d.T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < d.B * d.H; ++bh) {
      const int64_t b = bh / d.H, h = bh % d.H;
      const int64_t off3 = b * d.T * 3 * d.C + h * d.hd, off1 = b * d.T * d.C + h * d.hd;
      ConstView<T> Q(qkv + off3, d.T, d.hd, s3), K(qkv + off3 + d.C, d.T, d.hd, s3),
          V(qkv + off3 + 2 * d.C, d.T, d.hd, s3);
      ConstView<T> O(out + off1, d.T, d.hd, s1), dO(dout + off1, d.T, d.hd, s1);
      View<T> dQ(dqkv + off3, d.T, d.hd, s3), dK(dqkv + off3 + d.C, d.T, d.hd, s3),
          dV(dqkv + off3 + 2 * d.C, d.T, d.hd, s3);
      P.template triangularView<Eigen::Lower>() = Q * K.transpose();
      dS.template triangularView<Eigen::Lower>() = dO * V.transpose();
      const T* lse_row = lse + bh * d.T;
      for (int64_t i = 0; i < d.T; ++i) {
        T *p = P.row(i).data(), *ds = dS.row(i).data();
        const T Di = dO.row(i).dot(O.row(i));
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = std::exp(p[j] * scale - lse_row[i]);
          ds[j] = p[j] * (ds[j] - Di) * scale;
        }
      }
      dV.noalias() = P.template triangularView<Eigen::Lower>().transpose() * dO;
      dQ.noalias() = dS.template triangularView<Eigen::Lower>() * K;
      dK.noalias() = dS.template triangularView<Eigen::Lower>().transpose() * Q;
    }
  }
}

}  // namespace

void attention_forward(const TensorView& qkv, const TensorView& out, const TensorView& lse, int n_head) {
  const Dims d = check_args(qkv, out, lse, n_head, "attention_forward");
  if (qkv.dtype() == DType::F32) return forward_impl<float>(qkv, out, lse, d);
  if (qkv.dtype() == DType::F64) return forward_impl<double>(qkv, out, lse, d);
  ARIA_FAIL("attention_forward: unsupported dtype ", dtype_name(qkv.dtype()));
}

void attention_backward(const TensorView& qkv, const TensorView& out, const TensorView& lse, const TensorView& dout,
                        const TensorView& dqkv, int n_head) {
  const char* what = "attention_backward";
  const Dims d = check_args(qkv, out, lse, n_head, what);
  ARIA_CHECK(dout.is_contiguous() && dout.shape() == out.shape() && dout.dtype() == qkv.dtype(), what,
             ": dout must be a contiguous ", out.str(), ", got ", dout.str());
  ARIA_CHECK(dqkv.is_contiguous() && dqkv.shape() == qkv.shape() && dqkv.dtype() == qkv.dtype(), what,
             ": dqkv must be a contiguous ", qkv.str(), ", got ", dqkv.str());
  if (qkv.dtype() == DType::F32) return backward_impl<float>(qkv, out, lse, dout, dqkv, d);
  if (qkv.dtype() == DType::F64) return backward_impl<double>(qkv, out, lse, dout, dqkv, d);
  ARIA_FAIL(what, ": unsupported dtype ", dtype_name(qkv.dtype()));
}

}  // namespace aria::cpu
