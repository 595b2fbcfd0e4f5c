// Batched GEMM through cuBLASLt (float32, bfloat16) and cuBLAS (float64), and 2-D GEMMs with fused
// epilogues (bias, GELU, GELU backward, bias gradient) through cuBLASLt's epilogues.
//
// Row-major operands are handed to the column-major library by computing C^T = op(B)^T op(A)^T: the
// row-major buffer of X read column-major is X^T, so "A" of the library is our b and "B" is our a,
// and the library's m is our N, its n our M. Consequences for the epilogues: the library's bias
// vector runs along the rows of its D, i.e. along our N columns (bias[N], as the row asks), and its
// auxiliary matrix (the GELU input) is our [M, N] row-major matrix with leading dimension N.
//
// A batch-1 b shared by every a[i] is folded into M when a is not transposed ([batch*M, K] @ [K, N]),
// else passed with batch stride 0. float32 computes in exact fp32 (CUBLAS_COMPUTE_32F) unless TF32
// is switched on (Context::tf32, core/context.h); bfloat16 operands accumulate in fp32
// (CUBLAS_COMPUTE_32F, fp32 alpha/beta) and D is rounded to bfloat16 once. Plans (descriptors + chosen algorithm, or the
// fact that cuBLASLt has none) are cached per shape/dtype/alignment/epilogue so the training loop
// pays for the heuristic once.
//
// When cuBLASLt has no algorithm for a request the work still gets done: a plain GEMM falls back to
// cublasGemmStridedBatchedEx, an epilogue falls back to a plain GEMM plus our own elementwise kernels
// (see gemm_epilogue_unfused). Context::gemm_verbose names every refused request on stderr (once per
// plan); gemm_epilogue_fallbacks() counts the unfused epilogue calls (tests and benchmarks read it).
// With autotuning on (Context::gemm_autotune) a plan times the heuristic's top candidates
// on its first beta = 0 launch outside graph capture and keeps the fastest.
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "aria/core/context.h"
#include "aria/kernels/cuda/common.cuh"
#include "aria/kernels/gemm_epilogue_check.h"

namespace aria::cuda {

uint64_t gemm_epilogue_fallbacks();  // not in a header yet: tests declare it themselves

namespace {

struct Gemm {  // column-major problem handed to the library
  cublasOperation_t opA, opB;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;      // leading dimensions of A (our b), B (our a), C
  int64_t rowsA, colsA, rowsB, colsB;
  int64_t batch, strideA, strideB, strideC;
};

// Our c[batch, M, N] = op(a[i]) @ op(b[i]) as the library's column-major problem (see the top).
Gemm describe(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, int64_t batch, bool shared_b) {
  Gemm g;
  int64_t m_rows = M, nbatch = batch;
  if (shared_b && batch > 1 && !trans_a) {  // [batch*M, K] @ [K, N]: one large GEMM
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
  g.strideA = shared_b ? 0 : K * N;
  g.strideB = M * K;
  g.strideC = M * N;
  ARIA_CHECK(g.m < INT32_MAX && g.n < INT32_MAX && g.k < INT32_MAX && nbatch < INT32_MAX,
             "matmul: dimensions too large for cuBLAS");
  return g;
}

int pointer_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  int a = 1;
  while (a < 16 && (v % (2 * a)) == 0) a *= 2;
  return a;
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// Everything the heuristic's choice depends on. bias/aux pointers matter only through their
// alignment (cuBLASLt reads them at heuristic time for that), and are re-set on every call.
struct LtRequest {
  Gemm g;
  cudaDataType_t type = CUDA_R_32F;  // of A, B, C and D (and of the bias and aux vectors)
  bool tf32 = false;                 // float32 only
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  const void* aux = nullptr;
  int64_t aux_ld = 0;
  int al_a = 16, al_b = 16, al_c = 16;
};

constexpr int kCandidates = 8;  // heuristic results kept per plan for autotuning

struct Plan {
  bool ok = false;  // false: cuBLASLt has no algorithm for this request (cached too)
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo;  // the heuristic's first choice, or the fastest candidate once tuned
  cublasLtMatmulAlgo_t candidates[kCandidates];
  int ncandidates = 0;
  bool tuned = false;
};

void note_refusal(const LtRequest& r, const char* why) {
  if (!context().gemm_verbose) return;
  std::fprintf(stderr, "aria: cuBLASLt refused m=%lld n=%lld k=%lld batch=%lld type=%d epilogue=%d (%s); using the fallback\n",
               (long long)r.g.m, (long long)r.g.n, (long long)r.g.k, (long long)r.g.batch, int(r.type),
               int(r.epilogue), why);
}

void set_layout_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t bc = int32_t(batch);
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
  ARIA_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
}

void set_epilogue_pointers(cublasLtMatmulDesc_t desc, const LtRequest& r) {
  if (r.bias != nullptr)
    ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &r.bias, sizeof r.bias));
  if (r.aux != nullptr)
    ARIA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &r.aux, sizeof r.aux));
}

Plan make_plan(const LtRequest& r) {
  const Gemm& g = r.g;
  Plan p;
  // bfloat16 accumulates in fp32; float32 in fp32 or TF32. Scale type (alpha, beta) fp32 in both.
  const cublasComputeType_t compute = r.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &g.opA, sizeof g.opA));
  ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &g.opB, sizeof g.opB));
  if (r.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    // Bias and aux element types are left at their defaults: the type of D, as the row wants.
    const uint32_t epi = uint32_t(r.epilogue);
    ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (r.aux != nullptr)
      ARIA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &r.aux_ld,
                                                       sizeof r.aux_ld));
    set_epilogue_pointers(p.desc, r);
  }
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.la, r.type, uint64_t(g.rowsA), uint64_t(g.colsA), g.lda));
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lb, r.type, uint64_t(g.rowsB), uint64_t(g.colsB), g.ldb));
  ARIA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lc, r.type, uint64_t(g.m), uint64_t(g.n), g.ldc));
  set_layout_batch(p.la, g.batch, g.strideA);
  set_layout_batch(p.lb, g.batch, g.strideB);
  set_layout_batch(p.lc, g.batch, g.strideC);

  cublasLtMatmulPreference_t pref = nullptr;
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = lt_workspace_size();
  ARIA_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  uint32_t a = uint32_t(r.al_a), b = uint32_t(r.al_b), c = uint32_t(r.al_c);
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a, sizeof a));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b, sizeof b));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &c, sizeof c));
  ARIA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &c, sizeof c));
  cublasLtMatmulHeuristicResult_t results[kCandidates]{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle(), p.desc, p.la, p.lb, p.lc, p.lc, pref,
                                                     context().gemm_autotune ? kCandidates : 1, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates[p.ncandidates++] = results[i].algo;
  if (p.ncandidates > 0) {
    p.ok = true;
    p.algo = p.candidates[0];
    p.tuned = p.ncandidates == 1;
  } else {
    note_refusal(r, st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "no algorithm");
  }
  return p;
}

using PlanKey = std::array<int64_t, 23>;

PlanKey key_of(const LtRequest& r) {
  const Gemm& g = r.g;
  return {int64_t(g.opA),   int64_t(g.opB),      g.m,          g.n,          g.k,
          g.lda,            g.ldb,               g.ldc,        g.batch,      g.strideA,
          g.strideB,        g.strideC,           g.rowsA,      g.rowsB,      int64_t(r.type),
          int64_t(r.tf32),  int64_t(r.epilogue), r.bias ? pointer_alignment(r.bias) : 0,
          r.aux ? pointer_alignment(r.aux) : 0,  r.aux_ld,     r.al_a,       r.al_b,
          r.al_c};
}

std::mutex g_plan_mu;  // guards the cache, and the epilogue pointers of a plan while it is launched

// Under g_plan_mu. Plans are never destroyed (see runtime.cu: they may outlive static destructors).
Plan& plan_for_locked(const LtRequest& r) {
  static auto* cache = new std::map<PlanKey, Plan>();
  const PlanKey key = key_of(r);
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, make_plan(r)).first;
  return it->second;
}

// Operands of one launch: D = alpha op(A) op(B) (+ beta C), C and D one buffer.
struct LtOperands {
  const void *A, *B;
  void* C;
};

cublasStatus_t lt_launch(const Plan& p, const cublasLtMatmulAlgo_t& algo, const LtOperands& o, float alpha,
                         float beta) {
  return cublasLtMatmul(lt_handle(), p.desc, &alpha, o.A, p.la, o.B, p.lb, &beta, o.C, p.lc, o.C, p.lc, &algo,
                        lt_workspace(), lt_workspace_size(), stream());
}

// Under g_plan_mu, for a launch with beta = 0 (so C may be overwritten while timing): times each
// candidate (one warm-up, then the best of 3) and keeps the fastest in p.algo. Skipped while the
// stream is being captured into a graph (nothing may synchronise then); a later launch tunes.
void tune_locked(Plan& p, const LtOperands& o) {
  if (p.tuned) return;
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  ARIA_CUDA_CHECK(cudaStreamIsCapturing(stream(), &cap));
  if (cap != cudaStreamCaptureStatusNone) return;
  cudaEvent_t e0, e1;
  ARIA_CUDA_CHECK(cudaEventCreate(&e0));
  ARIA_CUDA_CHECK(cudaEventCreate(&e1));
  float best = INFINITY;
  for (int i = 0; i < p.ncandidates; ++i) {
    if (lt_launch(p, p.candidates[i], o, 1.f, 0.f) != CUBLAS_STATUS_SUCCESS) continue;  // refused: not a candidate
    float fastest = INFINITY;
    for (int rep = 0; rep < 3; ++rep) {
      ARIA_CUDA_CHECK(cudaEventRecord(e0, stream()));
      ARIA_CUBLAS_CHECK(lt_launch(p, p.candidates[i], o, 1.f, 0.f));
      ARIA_CUDA_CHECK(cudaEventRecord(e1, stream()));
      ARIA_CUDA_CHECK(cudaEventSynchronize(e1));
      float ms = 0.f;
      ARIA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      fastest = std::min(fastest, ms);
    }
    if (fastest < best) {
      best = fastest;
      p.algo = p.candidates[i];
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  p.tuned = true;
}

int64_t lead_batch(const TensorView& t) {
  int64_t b = 1;
  for (int d = 0; d + 2 < t.dim(); ++d) b *= t.shape()[d];
  return b;
}

// Plain GEMM when cuBLASLt has no algorithm: the classic cuBLAS entry point takes any shape and
// alignment (same compute type, so the same numerics class).
void gemm_ex(const Gemm& g, cudaDataType_t type, bool tf32, const void* A, const void* B, void* C, float alpha,
             float beta) {
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ARIA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_handle(), g.opA, g.opB, int(g.m), int(g.n), int(g.k), &alpha, A,
                                               type, int(g.lda), g.strideA, B, type, int(g.ldb), g.strideB, &beta, C,
                                               type, int(g.ldc), g.strideC, int(g.batch), compute,
                                               CUBLAS_GEMM_DEFAULT));
}

std::atomic<uint64_t> g_epilogue_fallbacks{0};

}  // namespace

uint64_t gemm_epilogue_fallbacks() { return g_epilogue_fallbacks.load(); }

void matmul(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b, double alpha,
            double beta) {
  ARIA_CHECK(a.dim() >= 2 && b.dim() >= 2 && c.dim() >= 2, "matmul: operands must have at least 2 dimensions: ",
             a.str(), ", ", b.str(), ", ", c.str());
  ARIA_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), "matmul: dtypes differ: ", a.str(), ", ", b.str(),
             ", ", c.str());
  ARIA_CHECK(a.dtype() == DType::F32 || a.dtype() == DType::F64 || a.dtype() == DType::BF16,
             "matmul: CUDA supports float32, float64 and bfloat16, got ", dtype_name(a.dtype()));
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

  const Gemm g = describe(M, N, K, trans_a, trans_b, batch, bbatch == 1);
  if (a.dtype() == DType::F64) {
    const double al = alpha, be = beta;
    ARIA_CUBLAS_CHECK(cublasDgemmStridedBatched(blas_handle(), g.opA, g.opB, int(g.m), int(g.n), int(g.k), &al,
                                                b.data<double>(), int(g.lda), g.strideA, a.data<double>(),
                                                int(g.ldb), g.strideB, &be, c.data<double>(), int(g.ldc), g.strideC,
                                                int(g.batch)));
    return;
  }
  LtRequest r;
  r.g = g;
  r.type = cuda_type(a.dtype());
  r.tf32 = a.dtype() == DType::F32 && context().tf32;
  r.al_a = pointer_alignment(b.raw_data());
  r.al_b = pointer_alignment(a.raw_data());
  r.al_c = pointer_alignment(c.raw_data());
  const float al = float(alpha), be = float(beta);
  const LtOperands ops{b.raw_data(), a.raw_data(), c.raw_data()};
  const Plan* p = nullptr;
  cublasLtMatmulAlgo_t algo;
  {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    Plan& pl = plan_for_locked(r);
    if (pl.ok && be == 0.f) tune_locked(pl, ops);
    p = &pl;
    algo = pl.algo;
  }
  // A plain plan has no per-call attributes (its algorithm copied above): launched outside the lock.
  if (!p->ok) return gemm_ex(g, r.type, r.tf32, b.raw_data(), a.raw_data(), c.raw_data(), al, be);
  ARIA_CUBLAS_CHECK(lt_launch(*p, algo, ops, al, be));
}

// ---- fused epilogues ------------------------------------------------------------------------------

namespace {

KernelBuffer view_as(const TensorView& t, const Shape& s) { return KernelBuffer::reshaped(t, s); }

// The same results as the fused epilogues from a plain GEMM and our own elementwise kernels. Used
// when cuBLASLt cannot fuse: float64; an empty dimension; an aux leading dimension N that is no
// multiple of 8 (cuBLASLt's rule for GELU aux); or any request its heuristic refuses (some
// alignments, transpose combinations or epilogue/dtype pairs). Costs extra passes over c (and a
// temporary [M, N] for Gelu without aux and for DGelu), never correctness.
void gemm_epilogue_unfused(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b,
                           const GemmEpilogueArgs& e, const TensorView& bias, const TensorView& aux) {
  const bool nonempty = e.M > 0 && e.N > 0;
  switch (e.ep) {
    case GemmEpilogue::None:
      matmul(a, b, c, trans_a, trans_b, 1.0, 0.0);
      return;
    case GemmEpilogue::Bias:
      matmul(a, b, c, trans_a, trans_b, 1.0, 0.0);
      if (nonempty) add_bias(c, bias);
      return;
    case GemmEpilogue::Gelu: {
      KernelBuffer pre_buf;
      if (!aux.defined()) pre_buf = KernelBuffer({e.M, e.N}, c.dtype(), c.device());
      const TensorView& pre = aux.defined() ? aux : pre_buf;
      matmul(a, b, pre, trans_a, trans_b, 1.0, 0.0);
      if (nonempty && bias.defined()) add_bias(pre, bias);
      if (nonempty) unary(int(UnaryOp::Gelu), pre, c, 1.0, 0.0);
      return;
    }
    case GemmEpilogue::DGelu: {
      const KernelBuffer ab({e.M, e.N}, c.dtype(), c.device());
      matmul(a, b, ab, trans_a, trans_b, 1.0, 0.0);
      if (nonempty) unary_backward(int(UnaryOp::Gelu), aux, aux, ab, c, 0.0);
      if (bias.defined()) sum_to(c, view_as(bias, {1, e.N}));  // column sums of c (zeros when M == 0)
      return;
    }
    case GemmEpilogue::BGrad:
      matmul(a, b, c, trans_a, trans_b, 1.0, 0.0);
      // sum over k of op(b)[k, n]: b is [K, N], or [N, K] when transposed
      sum_to(b, view_as(bias, trans_b ? Shape{e.N, 1} : Shape{1, e.N}));
      return;
  }
}

// Our epilogue as cuBLASLt's. BGrad is BGRADA: the library's A is our b, and BGRADA reduces op(A)
// (N x K) over k into a vector along the rows of D, i.e. bias[n] = sum_k op(b)[k, n].
cublasLtEpilogue_t lt_epilogue(GemmEpilogue ep, bool has_bias, bool has_aux) {
  switch (ep) {
    case GemmEpilogue::None: return CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::Gelu:
      if (has_aux) return has_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
      return has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    case GemmEpilogue::DGelu: return has_bias ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
    case GemmEpilogue::BGrad: return CUBLASLT_EPILOGUE_BGRADA;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// Runs the fused GEMM; false (nothing launched) when cuBLASLt cannot do this request.
bool gemm_epilogue_fused(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b,
                         const GemmEpilogueArgs& e, const TensorView& bias, const TensorView& aux) {
  if (c.dtype() != DType::F32 && c.dtype() != DType::BF16) return false;
  if (e.M == 0 || e.N == 0 || e.K == 0) return false;
  // The aux matrix's leading dimension (our N) must be a multiple of 8 elements.
  if (aux.defined() && e.N % 8 != 0) return false;
  LtRequest r;
  r.g = describe(e.M, e.N, e.K, trans_a, trans_b, 1, true);
  r.type = cuda_type(c.dtype());
  r.tf32 = c.dtype() == DType::F32 && context().tf32;
  r.epilogue = lt_epilogue(e.ep, bias.defined(), aux.defined());
  r.bias = bias.defined() ? bias.raw_data() : nullptr;
  r.aux = aux.defined() ? aux.raw_data() : nullptr;
  r.aux_ld = aux.defined() ? e.N : 0;
  r.al_a = pointer_alignment(b.raw_data());
  r.al_b = pointer_alignment(a.raw_data());
  r.al_c = pointer_alignment(c.raw_data());
  const float al = 1.f, be = 0.f;
  // The bias/aux pointers live in the (shared, cached) descriptor: set and launch under the lock.
  std::lock_guard<std::mutex> lock(g_plan_mu);
  Plan& p = plan_for_locked(r);
  if (!p.ok) return false;
  set_epilogue_pointers(p.desc, r);
  const LtOperands ops{b.raw_data(), a.raw_data(), c.raw_data()};
  tune_locked(p, ops);  // beta = 0: the epilogue's outputs (D, aux, bias gradient) are rewritten each run
  const cublasStatus_t st = lt_launch(p, p.algo, ops, al, be);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    // Refused at launch (nothing ran): remember it, and let the caller take the unfused path.
    note_refusal(r, cublasGetStatusString(st));
    p.ok = false;
    return false;
  }
  ARIA_CUBLAS_CHECK(st);
  return true;
}

}  // namespace

void gemm_epilogue(const TensorView& a, const TensorView& b, const TensorView& c, bool trans_a, bool trans_b,
                   int epilogue, const TensorView& bias, const TensorView& aux) {
  const GemmEpilogueArgs e = check_gemm_epilogue_args("gemm_epilogue", {DType::F32, DType::BF16, DType::F64},
                                                      "CUDA supports float32, bfloat16 (and float64, unfused)", a, b,
                                                      c, trans_a, trans_b, epilogue, bias, aux);
  if (gemm_epilogue_fused(a, b, c, trans_a, trans_b, e, bias, aux)) return;
  g_epilogue_fallbacks.fetch_add(1);
  gemm_epilogue_unfused(a, b, c, trans_a, trans_b, e, bias, aux);
}

}  // namespace aria::cuda
