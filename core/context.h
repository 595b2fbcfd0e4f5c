// The library's switches in one plain struct (issue 16). Each field states its default. The caller
// sets them before the work they affect; the library reads them where it uses them and never reads
// the environment itself. The programs fill them from their flags and the environment variables named
// below (tools/aria/environment.cpp); tests set fields directly.
#pragma once
#include <cstdint>
#include <string>

namespace aria {

struct Context {
  // ---- GEMMs (CUDA, kernels/cuda/matmul.cu) ----
  // float32 GEMMs on TF32 tensor cores instead of exact fp32 (CUBLAS_COMPUTE_32F). Environment:
  // ARIA_TF32=1.
  bool tf32 = false;
  // The first beta = 0 launch of each cached GEMM plan (shape, dtype, alignment, epilogue) times
  // cuBLASLt's top candidates on its own operands and keeps the fastest; plans made while this was
  // off keep their algorithm. Off because the choice depends on timing, so two processes may round
  // differently, while by default every run gives the same bits. Environment: ARIA_GEMM_AUTOTUNE=1.
  bool gemm_autotune = false;
  // Every GEMM request cuBLASLt refuses (and the fallback then taken) is named on stderr, once per
  // plan. Environment: ARIA_GEMM_VERBOSE=1.
  bool gemm_verbose = false;

  // ---- fused ops (core/ops_fused.cpp, core/ops_classifier.cpp, model/gated_mlp.cpp) ----
  // Activation recomputation (memory for time): ops::gelu_mlp keeps only the pre-activation for the
  // backward and recomputes the GELU output there.
  bool recompute_activations = false;
  // Bytes of logits ops::lm_head_cross_entropy makes at a time (its row chunks); tests make it small.
  int64_t lm_head_chunk_bytes = int64_t(512) << 20;
  // ARIA's gated MLP runs as one fused op (ops::gated_mlp); off: the plain composition of ops, the
  // same function (tests compare the two).
  bool gated_mlp_fused = true;

  // ---- CPU (core/cpu_threads.h) ----
  // Threads of the one OpenMP team (Eigen's GEMM included). 0: the CPUs this process may use (its
  // affinity mask and cgroup quota), and a CPU training run times that team against one thread on
  // its first steps and keeps the faster; > 0 fixes the team (no timing). Environment: OMP_NUM_THREADS.
  int cpu_threads = 0;

  // ---- where aria's files are (model/tokenizer.cpp, train/experiment/default_experiment.cpp, model_cache.cpp) ----
  // A checkout or install root searched first for third_party/ (the GPT-2 vocabulary, the task data).
  // "" = none: the current folder and its parents, then the folders near the running binary.
  // Environment: ARIA_HOME.
  std::string home;
  // The folder of cached pretrained models ("" = none: building or reading the cache without an
  // explicit root is an error). Environment: ARIA_CACHE, else $XDG_CACHE_HOME/aria, else
  // $HOME/.cache/aria.
  std::string cache_dir;
};

// The context of this process.
Context& context();

}  // namespace aria
