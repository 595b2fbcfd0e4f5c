// CPU batched GEMM on Eigen: every matrix is a row-major Eigen::Map over the tensor's memory, so no
// copies; Eigen's blocked GEMM (OpenMP-parallel inside) does the work. gemm_epilogue composes that
// GEMM with the elementwise kernels (add_bias, unary Gelu and its backward, sum_to): the reference
// the fused CUDA epilogues are tested against.
#include <omp.h>

#include <Eigen/Core>

#include "aria/kernels/backend.h"
#include "aria/kernels/gemm_epilogue_check.h"

namespace aria::cpu {

namespace {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MapC = Eigen::Map<const RowMat<T>>;
template <typename T>
using Map = Eigen::Map<RowMat<T>>;

// c = alpha * op(a) @ op(b) + beta * c for one matrix. a is stored [ra, ca], b [rb, cb], c [M, N].
template <typename T>
void gemm(const T* a, int64_t ra, int64_t ca, const T* b, int64_t rb, int64_t cb, T* c, int64_t M, int64_t N,
          bool ta, bool tb, T alpha, T beta) {
  MapC<T> A(a, ra, ca), B(b, rb, cb);
  Map<T> C(c, M, N);
  if (beta != T(1)) {  // Eigen's GEMM accumulates into C; scale (or clear) it first, in parallel when large
#pragma omp parallel for if (M * N >= (int64_t(1) << 18) && !omp_in_parallel())
    for (int64_t i = 0; i < M; ++i) {
      if (beta == T(0))
        C.row(i).setZero();
      else
        C.row(i) *= beta;
    }
  }
  if (!ta && !tb)
    C.noalias() += alpha * A * B;
  else if (ta && !tb)
    C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb)
    C.noalias() += alpha * A * B.transpose();
  else
    C.noalias() += alpha * A.transpose() * B.transpose();
}

template <typename T>
void matmul_impl(const TensorView& a, const TensorView& b, const TensorView& c, bool ta, bool tb, double alpha,
                 double beta) {
  int64_t batch = a.size(0), ra = a.size(1), ca = a.size(2);
  const int64_t rb = b.size(1), cb = b.size(2), M = c.size(1), N = c.size(2);
  const bool shared_b = b.size(0) == 1;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = c.data<T>();
  const T al = T(alpha), be = T(beta);
  if (shared_b && !ta) {
    // a's batch folds into its rows: one large GEMM instead of `batch` small ones.
    gemm(pa, batch * ra, ca, pb, rb, cb, pc, batch * M, N, ta, tb, al, be);
    return;
  }
  const int64_t sa = ra * ca, sb = shared_b ? 0 : rb * cb, sc = M * N;
  // Small matrices: one per thread (Eigen then runs single-threaded). Large ones: Eigen's own threads.
  const bool per_thread = batch > 1 && (M * N * (ta ? ra : ca) < (int64_t(1) << 21) || batch >= omp_get_max_threads());
#pragma omp parallel for if (per_thread)
  for (int64_t i = 0; i < batch; ++i)
    gemm(pa + i * sa, ra, ca, pb + i * sb, rb, cb, pc + i * sc, M, N, ta, tb, al, be);
}

}  // namespace

void matmul(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b, double alpha,
            double beta) {
  ARIA_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "matmul kernel: a ", a.str(), ", b ", b.str(), ", c ",
             c.str(), " must be 3-D [batch, rows, cols]");
  const int64_t batch = a.size(0);
  const int64_t M = trans_a ? a.size(2) : a.size(1), K = trans_a ? a.size(1) : a.size(2);
  const int64_t Kb = trans_b ? b.size(2) : b.size(1), N = trans_b ? b.size(1) : b.size(2);
  ARIA_CHECK(K == Kb && c.size(0) == batch && c.size(1) == M && c.size(2) == N &&
                 (b.size(0) == batch || b.size(0) == 1),
             "matmul kernel: shapes do not match: a ", a.str(), (trans_a ? " (transposed)" : ""), ", b ", b.str(),
             (trans_b ? " (transposed)" : ""), ", c ", c.str());
  ARIA_CHECK(a.dtype() == c.dtype() && b.dtype() == c.dtype(), "matmul kernel: dtypes differ");
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous() && c.is_contiguous(), "matmul kernel: tensors must be contiguous");
  if (c.numel() == 0) return;
  if (c.dtype() == DType::F32) return matmul_impl<float>(a, b, c, trans_a, trans_b, alpha, beta);
  if (c.dtype() == DType::F64) return matmul_impl<double>(a, b, c, trans_a, trans_b, alpha, beta);
  ARIA_FAIL("matmul kernel: unsupported dtype ", dtype_name(c.dtype()));
}

namespace {

KernelBuffer view_as(const TensorView& t, const Shape& s) { return KernelBuffer::reshaped(t, s); }

// c = op(a) @ op(b) through the batched kernel (a batch of one).
void gemm2d(const TensorView& a, const TensorView& b, const TensorView& c, bool ta, bool tb) {
  matmul(view_as(a, {1, a.size(0), a.size(1)}), view_as(b, {1, b.size(0), b.size(1)}),
         view_as(c, {1, c.size(0), c.size(1)}), ta, tb, 1.0, 0.0);
}

}  // namespace

void gemm_epilogue(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b,
                   int epilogue, const TensorView& bias, const TensorView& aux) {
  const GemmEpilogueArgs e = check_gemm_epilogue_args("gemm_epilogue kernel", {DType::F32, DType::F64},
                                                      "the CPU computes in float32 or float64", a, b, c, trans_a,
                                                      trans_b, epilogue, bias, aux);
  const bool nonempty = e.M > 0 && e.N > 0;
  switch (e.ep) {
    case GemmEpilogue::None:
      gemm2d(a, b, c, trans_a, trans_b);
      return;
    case GemmEpilogue::Bias:
      gemm2d(a, b, c, trans_a, trans_b);
      if (nonempty) add_bias(c, bias);
      return;
    case GemmEpilogue::Gelu: {  // aux = ab + bias (pre-activation), c = gelu(aux)
      KernelBuffer pre_buf;
      if (!aux.defined()) pre_buf = KernelBuffer({e.M, e.N}, c.dtype(), Device::cpu());
      const TensorView& pre = aux.defined() ? aux : pre_buf;
      gemm2d(a, b, pre, trans_a, trans_b);
      if (nonempty && bias.defined()) add_bias(pre, bias);
      unary(int(UnaryOp::Gelu), pre, c, 1.0, 0.0);
      return;
    }
    case GemmEpilogue::DGelu: {  // c = ab * gelu'(aux); bias = column sums of c
      const KernelBuffer ab({e.M, e.N}, c.dtype(), Device::cpu());
      gemm2d(a, b, ab, trans_a, trans_b);
      unary_backward(int(UnaryOp::Gelu), aux, aux, ab, c, 0.0);
      if (bias.defined()) sum_to(c, view_as(bias, {1, e.N}));
      return;
    }
    case GemmEpilogue::BGrad:  // c = ab; bias[n] = sum over k of op(b)[k, n] (b is [K, N] or [N, K])
      gemm2d(a, b, c, trans_a, trans_b);
      sum_to(b, view_as(bias, trans_b ? Shape{e.N, 1} : Shape{1, e.N}));
      return;
  }
}

}  // namespace aria::cpu
