// aria-bench: times aria's CUDA kernels at GPT-2 124M training shapes against the card's measured
// ceilings (a 1 GiB device-to-device copy; an 8192^3 float32 GEMM, exact and TF32).
// main.cpp parses flags and prints; bench_kernels.cpp measures.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aria::bench {

struct Config {
  int batch = 8;     // B
  int seq = 1024;    // T
  int reps = 20;     // timed runs per kernel (median reported)
  std::string only;  // run only kernels whose name contains this
  std::string model;  // --model d12: time a whole training step instead of the kernels
  bool gated = false;  // --gated: ARIA's gated MLP in every block (+ its plasticity loss)
  bool tf32 = false;   // --tf32: float32 GEMMs on TF32 tensor cores
  bool spc = false;     // --spc (with --gated): SPC penalty gradient added every step
  bool recompute = false;  // --recompute: GELU outputs recomputed in backward (less memory)
  bool bf16 = false;   // --bf16: bfloat16 weights/activations/grads, float32 master weights and moments
  bool graph = false;  // --graph: the timed steps replay one step recorded as a CUDA graph
  bool autotune = false;  // --autotune: each GEMM plan times cuBLASLt's top candidates once (runtime.h)
  int lm_chunk_mib = 0;  // --lm-chunk-mib: logits per classifier chunk (0: Context::lm_head_chunk_bytes' default)
  int steps = 10, warmup = 3;
  bool continual = false;  // --continual: the continual trainer's aria step and its per-sample Fisher
  int fisher_batches = 8;  // --fisher-batches: batches of the timed Fisher pass
};

struct ContinualResult {
  std::string precision;
  double step_ms = 0, tokens_per_s = 0, peak_gib = 0;
  double fisher_ms = 0;             // the exact per-sample Fisher over fisher_examples examples
  int64_t fisher_examples = 0, params = 0;
  double fisher_vs_training = 0;    // fisher_ms / (training steps over the same examples)
};
ContinualResult bench_continual(const Config& cfg);
// --continual --compare-torch: runs the PyTorch twin at the same shapes, prints its rows next to aria's and
// returns its JSON (with the ratios added). twin_compare.cpp.
nlohmann::json compare_continual_with_twin(const Config& cfg, const ContinualResult& aria);

struct StepResult {
  double step_ms = 0, host_ms = 0, tokens_per_s = 0, tflops = 0, peak_gib = 0, flops_per_token = 0;
  int64_t params = 0;
  // host_ms: median time for the host to issue one step (step() returning, before the final sync):
  // close to step_ms means the GPU waits on the host (syncs, launch overhead).
  double phase_ms[3] = {0, 0, 0};  // one synchronised step: forward (+ loss), backward, grad norm + AdamW
};
StepResult bench_step(const Config& cfg);

struct Ceilings {
  double copy_gbps = 0;    // device-to-device copy, bytes read + written per second / 1e9
  double fp32_tflops = 0;  // 8192^3 GEMM, CUBLAS_COMPUTE_32F
  double tf32_tflops = 0;  // same with TF32 tensor cores
  double bf16_tflops = 0;  // same with bfloat16 operands, fp32 accumulation
};

struct Result {
  std::string name;   // kernel, e.g. "layernorm_forward"
  std::string shape;  // the shapes it ran at
  double ms = 0;      // median time
  double bytes = 0;   // bytes it must move at least (each input read once, each output written once)
  double flops = 0;   // floating-point operations (0: memory-bound kernel)
  std::string ceiling;  // which ceiling the percentage refers to: "copy", "fp32" or "tf32"
  double pct = 0;       // achieved / ceiling * 100
};

std::string device_name();
Ceilings measure_ceilings(const Config& cfg);
std::vector<Result> bench_kernels(const Config& cfg, const Ceilings& ceil);

}  // namespace aria::bench
