// Batched GEMM through cuBLASLt (float32) and cuBLAS (float64).
// Row-major operands are handed to the column-major library by computing C^T = op(B)^T op(A)^T: the
// row-major buffer of X read column-major is X^T, so "A" of the library is our b and "B" is our a.
// A batch-1 b shared by every a[i] is folded into M when a is not transposed ([batch*M, K] @ [K, N]),
// else passed with batch stride 0. float32 computes in exact fp32 (CUBLAS_COMPUTE_32F) unless TF32
// is switched on (ARIA_TF32=1 or set_tf32). Plans (descriptors + chosen algorithm) are cached per
// shape/alignment so the training loop pays for the heuristic once.
#include <array>
#include <map>
#include <mutex>

#include "kernels/cuda/common.cuh"

namespace aria::cuda {

namespace {

struct Gemm {  // column-major problem handed to the library
  cublasOperation_t opA, opB;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;      // leading dimensions of A (our b), B (our a), C
  int64_t rowsA, colsA, rowsB, colsB;
  int64_t batch, strideA, strideB, strideC;
};

int pointer_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  int a = 1;
  while (a < 16 && (v % (2 * a)) == 0) a *= 2;
  return a;
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo;
};

void set_layout_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t bc = int32_t(batch);
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
  ARIA_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
}

Plan make_plan(const Gemm& g, bool tf32, int alA, int alB, int alC) {
  Plan p;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &g.opA, sizeof g.opA));
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &g.opB, sizeof g.opB));
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.la, CUDA_R_32F, uint64_t(g.rowsA), uint64_t(g.colsA), g.lda));
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_32F, uint64_t(g.rowsB), uint64_t(g.colsB), g.ldb));
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lc, CUDA_R_32F, uint64_t(g.m), uint64_t(g.n), g.ldc));
  set_layout_batch(p.la, g.batch, g.strideA);
  set_layout_batch(p.lb, g.batch, g.strideB);
  set_layout_batch(p.lc, g.batch, g.strideC);

  cublasLtMatmulPreference_t pref = nullptr;
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = lt_workspace_size();
  ARIA_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  uint32_t a = uint32_t(alA), b = uint32_t(alB), c = uint32_t(alC);
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a, sizeof a));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b, sizeof b));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &c, sizeof c));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &c, sizeof c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle(), p.desc, p.la, p.lb, p.lc, p.lc, pref, 1, &result,
                                                     &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    ARIA_FAIL("matmul: cuBLASLt found no algorithm for m=", g.m, " n=", g.n, " k=", g.k, " batch=", g.batch,
              " (status ", cublasGetStatusString(st), ")");
  }
  p.algo = result.algo;
  return p;
}

using PlanKey = std::array<int64_t, 18>;

const Plan& plan_for(const Gemm& g, bool tf32, int alA, int alB, int alC) {
  static std::mutex mu;
  static auto* cache = new std::map<PlanKey, Plan>();  // never destroyed (see runtime.cu)
  PlanKey key = {int64_t(g.opA), int64_t(g.opB), g.m,       g.n,       g.k,    g.lda,  g.ldb, g.ldc, g.batch,
                 g.strideA,      g.strideB,      g.strideC, int64_t(tf32), alA, alB, alC, g.rowsA, g.rowsB};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, make_plan(g, tf32, alA, alB, alC)).first;
  return it->second;
}

int64_t lead_batch(const Tensor& t) {
  int64_t b = 1;
  for (int d = 0; d + 2 < t.dim(); ++d) b *= t.shape()[d];
  return b;
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha,
            double beta) {
  ARIA_CHECK(a.dim() >= 2 && b.dim() >= 2 && c.dim() >= 2, "matmul: operands must have at least 2 dimensions: ",
             a.str(), ", ", b.str(), ", ", c.str());
  ARIA_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), "matmul: dtypes differ: ", a.str(), ", ", b.str(),
             ", ", c.str());
  ARIA_CHECK(a.dtype() == DType::F32 || a.dtype() == DType::F64, "matmul: CUDA supports float32 and float64, got ",
             dtype_name(a.dtype()));
  ARIA_CHECK(a.is_contiguous() && b.is_contiguous() && c.is_contiguous(), "matmul: operands must be contiguous");
  check_same_device(a, c, "matmul");
  check_same_device(b, c, "matmul");
  const int64_t M = trans_a ? a.size(-1) : a.size(-2);
  const int64_t K = trans_a ? a.size(-2) : a.size(-1);
  const int64_t Kb = trans_b ? b.size(-1) : b.size(-2);
  const int64_t N = trans_b ? b.size(-2) : b.size(-1);
  const int64_t batch = lead_batch(a), bbatch = lead_batch(b);
  ARIA_CHECK(K == Kb && c.size(-2) == M && c.size(-1) == N && lead_batch(c) == batch &&
                 (bbatch == batch || bbatch == 1),
             "matmul: shapes do not agree: a ", a.str(), (trans_a ? " (transposed)" : ""), ", b ", b.str(),
             (trans_b ? " (transposed)" : ""), ", c ", c.str());
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {  // empty sum: c = beta * c
    if (beta == 0) fill(c, 0.0);
    else unary(int(UnaryOp::Affine), c, c, beta, 0.0);
    return;
  }

  Gemm g;
  int64_t m_rows = M, nbatch = batch;
  const bool fold = bbatch == 1 && batch > 1 && !trans_a;  // [batch*M, K] @ [K, N]
  if (fold) {
    m_rows = M * batch;
    nbatch = 1;
  }
  g.opA = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.opB = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.m = N;
  g.n = m_rows;
  g.k = K;
  g.rowsA = trans_b ? K : N;
  g.colsA = trans_b ? N : K;
  g.lda = g.rowsA;
  g.rowsB = trans_a ? m_rows : K;
  g.colsB = trans_a ? K : m_rows;
  g.ldb = g.rowsB;
  g.ldc = N;
  g.batch = nbatch;
  g.strideA = (bbatch == 1) ? 0 : K * N;
  g.strideB = M * K;
  g.strideC = M * N;
  ARIA_CHECK(g.m < INT32_MAX && g.n < INT32_MAX && g.k < INT32_MAX && nbatch < INT32_MAX,
             "matmul: dimensions too large for cuBLAS");

  if (a.dtype() == DType::F64) {
    const double al = alpha, be = beta;
    ARIA_CUBLAS_CHECK(cublasDgemmStridedBatched(blas_handle(), g.opA, g.opB, int(g.m), int(g.n), int(g.k), &al,
                                                b.data<double>(), int(g.lda), g.strideA, a.data<double>(),
                                                int(g.ldb), g.strideB, &be, c.data<double>(), int(g.ldc), g.strideC,
                                                int(nbatch)));
    return;
  }
  const bool tf32 = tf32_enabled();
  const Plan& p = plan_for(g, tf32, pointer_alignment(b.raw_data()), pointer_alignment(a.raw_data()),
                           pointer_alignment(c.raw_data()));
  const float al = float(alpha), be = float(beta);
  ARIA_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), p.desc, &al, b.raw_data(), p.la, a.raw_data(), p.lb, &be,
                                   c.raw_data(), p.lc, c.raw_data(), p.lc, &p.algo, lt_workspace(),
                                   lt_workspace_size(), stream()));
}

}  // namespace aria::cuda
