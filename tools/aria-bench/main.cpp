// aria-bench: CUDA kernel timings next to the card's measured ceilings. See bench.h.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/kernels/backend.h"
#include "tools/aria-bench/bench.h"
#include "tools/aria/args.h"  // cli::UsageError: exit code 2, as in aria
#include "tools/aria/environment.h"
#ifdef ARIA_WITH_CUDA
#include "aria/kernels/cuda/runtime.h"
#endif

using namespace aria;
using namespace aria::bench;

namespace {

// The description --help prints above the flags (the flags' own help comes from cli::Args).
const char* kSummary = R"(Times every CUDA kernel of aria at GPT-2 124M training shapes (C=768, 12 heads, vocabulary 50257,
GEMMs of one block and the lm head padded to 50304, AdamW over 124M parameters): the median of
--reps runs timed with CUDA events, L2 flushed before each run, inputs rotated among copies.
Prints time, bytes moved (the minimum: inputs read once, outputs written once), achieved GB/s or
TFLOP/s, and the percentage of the ceilings measured at start: a 1 GiB device-to-device copy
(bytes read + written) and an 8192^3 float32 GEMM (exact fp32 and TF32).

Exit codes: 0 ok, 1 runtime error, 2 usage error (unknown flag, missing, repeated or bad value, bad
combination: the same parser and convention as aria) or no CUDA GPU (or a feature not implemented yet).)";

// aria-bench's flags, declared on the parser aria's subcommands use (tools/aria/args.h).
aria::cli::Args bench_flags() {
  aria::cli::Args a("bench", kSummary);
  a.program("aria-bench")
      .option("batch", "batch size", "8")
      .option("seq", "sequence length", "1024")
      .option("reps", "timed runs per kernel", "20")
      .option("only", "only kernels whose name contains NAME", "")
      .option("json", "also write the results as JSON to this file", "")
      .option("model", "time a whole GPT-2 training step instead (d12 = 124M; also d24, tiny): forward, backward, "
                       "grad-norm clipping, AdamW; tokens/s, TFLOP/s (6N + attention per token), % of the measured "
                       "GEMM ceiling of the precision used, peak GPU memory", "")
      .toggle("gated", "with --model: ARIA's PlasticityGatedMLP in every block (+ plasticity loss)")
      .toggle("tf32", "with --model: float32 GEMMs on TF32 tensor cores (default: exact fp32)")
      .toggle("bf16", "with --model: mixed precision: bfloat16 weights, activations and gradients, float32 master "
                      "weights and AdamW moments, fp32 accumulation in every kernel")
      .toggle("spc", "with --gated: SPC active (penalty gradient over every non-fast parameter each step)")
      .toggle("recompute", "with --model: recompute each MLP's GELU output in backward instead of keeping it")
      .toggle("graph", "with --model: record one step as a CUDA graph after warm-up and time its replays (same "
                       "kernels and bytes; AdamW's bias corrections stay those of the recorded step)")
      .toggle("autotune", "with --model: GEMM autotuning on (each GEMM shape times cuBLASLt's top 8 candidates on "
                          "its first call and keeps the fastest; off by default because the choice, and so the "
                          "rounding, may then differ between processes)")
      .option("lm-chunk-mib", "with --model: at most N MiB of logits per classifier chunk (default 512)", "")
      .option("steps", "with --model: timed steps (median reported; 3 warm-up steps first)", "10")
      .toggle("continual", "with --model (d12, d24, d36, d48): the continual trainer's step with the aria method "
                           "(gated MLP, plasticity loss, dampening, SPC penalty after one consolidated task, adapter "
                           "and head, clipping, AdamW groups) on synthetic examples of --seq tokens (default batch "
                           "16, seq 512), its mean time over --steps steps, and the exact per-sample Fisher over "
                           "--fisher-batches batches against a training pass over them")
      .option("fisher-batches", "with --continual: batches of the timed Fisher pass", "8")
      .toggle("compare-torch", "with --model: also run tools/hf_reference/torch_gpt2_bench.py (PyTorch eager and "
                               "torch.compile, same shapes) and print both systems side by side; with --continual "
                               "the PyTorch twin (tools/hf_reference/continual_twin.py --bench)");
  return a;
}

// A message from cli::Args starts with "aria-bench: "; the error line names the program once.
const char* without_program(const char* msg) {
  const char* prefix = "aria-bench: ";
  return std::strncmp(msg, prefix, std::strlen(prefix)) == 0 ? msg + std::strlen(prefix) : msg;
}

void print_table(const Ceilings& c, const std::vector<Result>& rs) {
  std::printf("\nceilings: copy %.0f GB/s (read+write), fp32 GEMM %.1f TFLOP/s, tf32 GEMM %.1f TFLOP/s\n\n",
              c.copy_gbps, c.fp32_tflops, c.tf32_tflops);
  std::printf("%-30s %-40s %10s %12s %14s %8s\n", "kernel", "shape", "ms", "MB moved", "achieved", "% ceil");
  for (const Result& r : rs) {
    char ach[64];
    if (r.flops > 0) std::snprintf(ach, sizeof ach, "%.2f TFLOP/s", r.flops / (r.ms * 1e-3) / 1e12);
    else std::snprintf(ach, sizeof ach, "%.0f GB/s", r.bytes / (r.ms * 1e-3) / 1e9);
    std::printf("%-30s %-40s %10.4f %12.1f %14s %7.1f%% (%s)\n", r.name.c_str(), r.shape.c_str(), r.ms,
                r.bytes / 1e6, ach, r.pct, r.ceiling.c_str());
  }
}

nlohmann::json to_json(const Config& cfg, const Ceilings& c, const std::vector<Result>& rs) {
  nlohmann::json j;
  j["device"] = device_name();
  j["config"] = {{"batch", cfg.batch}, {"seq", cfg.seq}, {"reps", cfg.reps}, {"n_embd", 768}, {"n_head", 12},
                 {"vocab", 50257}, {"vocab_padded", 50304}};
  j["ceilings"] = {{"copy_gbps", c.copy_gbps}, {"fp32_gemm_tflops", c.fp32_tflops}, {"tf32_gemm_tflops", c.tf32_tflops}};
  nlohmann::json ks = nlohmann::json::array();
  for (const Result& r : rs) {
    const double s = r.ms * 1e-3;
    ks.push_back({{"name", r.name},
                  {"shape", r.shape},
                  {"ms", r.ms},
                  {"bytes", r.bytes},
                  {"gbps", r.bytes / s / 1e9},
                  {"flops", r.flops},
                  {"tflops", r.flops / s / 1e12},
                  {"ceiling", r.ceiling},
                  {"pct_of_ceiling", r.pct}});
  }
  j["kernels"] = ks;
  j["step"] = nullptr;  // kernel mode; see run_step_mode for --model
  return j;
}

// --model: one training step of aria (and optionally PyTorch) at the same shapes, as a table + JSON.
int run_step_mode(Config cfg, const std::string& json_path, bool compare_torch) {
  if (cfg.batch == 8 && cfg.seq == 1024) cfg.batch = 16;  // the issue's reference shape unless given
#ifdef ARIA_WITH_CUDA
  // Before the ceilings, so that they are those of tuned GEMMs too. Without --autotune the
  // environment decides (ARIA_GEMM_AUTOTUNE), as everywhere else.
  if (cfg.autotune) context().gemm_autotune = true;
#endif
  const Ceilings ceil = measure_ceilings(cfg);  // switches TF32 on and off itself: choose after it
  context().tf32 = cfg.tf32;
  const std::string precision = cfg.bf16 ? "bf16" : cfg.tf32 ? "tf32" : "fp32";
  const double peak = cfg.bf16 ? ceil.bf16_tflops : cfg.tf32 ? ceil.tf32_tflops : ceil.fp32_tflops;
  std::printf("aria-bench on %s: GPT-2 %s%s, B=%d T=%d, %s GEMMs; median of %d steps%s\n", device_name().c_str(),
              cfg.model.c_str(), cfg.gated ? (cfg.spc ? " + gated MLP + SPC" : " + gated MLP") : "", cfg.batch, cfg.seq,
              precision.c_str(), cfg.steps, cfg.graph ? " (replays of one step recorded as a CUDA graph)" : "");
  const StepResult r = bench_step(cfg);
  nlohmann::json rows = nlohmann::json::array();
  std::printf("aria step phases (synchronised after each): forward %.1f ms, backward %.1f ms, grad norm + AdamW %.1f ms\n",
              r.phase_ms[0], r.phase_ms[1], r.phase_ms[2]);
  std::printf("aria host: %.1f ms to issue a step of %.1f ms (%s)\n", r.host_ms, r.step_ms,
              r.host_ms > 0.8 * r.step_ms ? "the GPU waits on the host: syncs or launch overhead"
                                          : "the host queues work ahead of the GPU: no launch gaps from it");
  std::string options;  // the step options that change what is timed, as "aria (recompute, autotune)"
  for (const auto& [on, name] : {std::pair{cfg.recompute, "recompute"}, std::pair{cfg.autotune, "autotune"}})
    if (on) options += (options.empty() ? "" : ", ") + std::string(name);
  const std::string system = options.empty() ? "aria" : "aria (" + options + ")";
  rows.push_back({{"system", system}, {"mode", precision}, {"gated", cfg.gated}, {"batch", cfg.batch},
                  {"seq", cfg.seq}, {"step_ms", r.step_ms}, {"host_ms", r.host_ms}, {"tokens_per_s", r.tokens_per_s}, {"tflops", r.tflops},
                  {"peak_mem_gib", r.peak_gib}, {"params", r.params}});
  if (compare_torch) {
    const std::string modes =
        cfg.bf16 ? "eager-bf16,compile-bf16" : "eager-" + precision + ",compile-" + precision + ",eager-bf16,compile-bf16";
    const std::string cmd = "python3 tools/hf_reference/torch_gpt2_bench.py --batch " + std::to_string(cfg.batch) +
                            " --seq " + std::to_string(cfg.seq) + " --steps " + std::to_string(cfg.steps) +
                            " --modes " + modes + " --gated " + (cfg.gated ? "1" : "0") + " 2>/dev/null";
    std::fflush(stdout);
    FILE* p = popen(cmd.c_str(), "r");
    ARIA_CHECK(p, "cannot run ", cmd);
    char line[4096];
    while (std::fgets(line, sizeof line, p)) {
      try {
        rows.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception&) {
      }
    }
    ARIA_CHECK(pclose(p) == 0, "the PyTorch reference failed: ", cmd);
  }
  const double aria_tps = r.tokens_per_s;
  // MFU: model FLOPs per second over the measured GEMM ceiling of the row's own precision.
  auto ceiling_of = [&](const std::string& mode) {
    return mode.find("bf16") != std::string::npos   ? ceil.bf16_tflops
           : mode.find("tf32") != std::string::npos ? ceil.tf32_tflops
                                                    : ceil.fp32_tflops;
  };
  std::printf("\n%-22s %-13s %10s %12s %10s %7s %9s %10s\n", "system", "mode", "step ms", "tokens/s", "TFLOP/s",
              "MFU", "aria/x", "peak GiB");
  for (auto& row : rows) {
    const double mfu = 100.0 * row["tflops"].get<double>() / ceiling_of(row["mode"].get<std::string>());
    row["mfu_pct"] = mfu;
    std::printf("%-22s %-13s %10.1f %12.0f %10.1f %6.1f%% %8.2fx %10.2f\n",
                row["system"].get<std::string>().substr(0, 22).c_str(), row["mode"].get<std::string>().c_str(),
                row["step_ms"].get<double>(), row["tokens_per_s"].get<double>(), row["tflops"].get<double>(), mfu,
                aria_tps / row["tokens_per_s"].get<double>(), row["peak_mem_gib"].get<double>());
  }
  std::printf("\naria: %.1f TFLOP/s = %.1f%% of the measured %s GEMM ceiling (%.1f TFLOP/s); 6N+12LTC FLOPs/token\n",
              r.tflops, 100.0 * r.tflops / peak, precision.c_str(), peak);
  if (!json_path.empty()) {
    nlohmann::json j;
    j["device"] = device_name();
    j["ceilings"] = {{"copy_gbps", ceil.copy_gbps}, {"fp32_gemm_tflops", ceil.fp32_tflops},
                     {"tf32_gemm_tflops", ceil.tf32_tflops}, {"bf16_gemm_tflops", ceil.bf16_tflops}};
    j["step"] = rows;
    std::ofstream f(json_path);
    ARIA_CHECK(f.good(), "cannot write ", json_path);
    f << j.dump(2) << "\n";
  }
  return 0;
}

// --continual: the continual trainer's step and Fisher pass, as a table + JSON.
int run_continual_mode(Config cfg, const std::string& json_path, bool compare_torch) {
  if (cfg.batch == 8 && cfg.seq == 1024) cfg.batch = 16, cfg.seq = 512;  // the issue's reference shape unless given
  std::printf("aria-bench on %s: continual trainer, aria method, GPT-2 %s, B=%d T=%d, %s; mean of %d steps\n",
              device_name().c_str(), cfg.model.c_str(), cfg.batch, cfg.seq, cfg.bf16 ? "bf16" : "fp32", cfg.steps);
  const ContinualResult r = bench_continual(cfg);
  std::printf("\n%-10s %12s %9s %12s %10s | %-28s %10s %14s\n", "precision", "params", "step ms", "tokens/s", "peak GiB",
              "per-sample Fisher (exact)", "ms", "x training");
  std::printf("%-10s %12lld %9.1f %12.0f %10.2f | %6lld examples %21s %10.1f %13.2fx\n", r.precision.c_str(),
              static_cast<long long>(r.params), r.step_ms, r.tokens_per_s, r.peak_gib,
              static_cast<long long>(r.fisher_examples), "", r.fisher_ms, r.fisher_vs_training);
  nlohmann::json twin;
  if (compare_torch) twin = compare_continual_with_twin(cfg, r);
  if (!json_path.empty()) {
    nlohmann::json j = {{"device", device_name()},
                        {"continual",
                         {{"model", cfg.model}, {"batch", cfg.batch}, {"seq", cfg.seq}, {"precision", r.precision},
                          {"params", r.params}, {"step_ms", r.step_ms}, {"tokens_per_s", r.tokens_per_s},
                          {"peak_mem_gib", r.peak_gib}, {"fisher_examples", r.fisher_examples},
                          {"fisher_ms", r.fisher_ms}, {"fisher_vs_training", r.fisher_vs_training}}}};
    if (compare_torch) j["twin"] = twin;
    io::write_file_atomic(json_path, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  std::string json_path;
  bool compare_torch = false;
  aria::cli::read_environment(aria::context());
  try {
    aria::cli::Args args = bench_flags();
    if (!args.parse(argc - 1, argv + 1)) return 0;  // --help
    const int kMax = 1 << 30;
    cfg.batch = int(args.integer("batch", 1, kMax));
    cfg.seq = int(args.integer("seq", 1, kMax));
    cfg.reps = int(args.integer("reps", 1, kMax));
    cfg.only = args.str("only");
    json_path = args.str("json");
    cfg.model = args.str("model");
    cfg.gated = args.on("gated");
    cfg.tf32 = args.on("tf32");
    cfg.bf16 = args.on("bf16");
    cfg.spc = args.on("spc");
    cfg.recompute = args.on("recompute");
    cfg.graph = args.on("graph");
    cfg.autotune = args.on("autotune");
    if (args.given("lm-chunk-mib")) cfg.lm_chunk_mib = int(args.integer("lm-chunk-mib", 1, kMax));
    cfg.steps = int(args.integer("steps", 1, kMax));
    cfg.continual = args.on("continual");
    cfg.fisher_batches = int(args.integer("fisher-batches", 1, kMax));
    compare_torch = args.on("compare-torch");
    ARIA_USAGE_CHECK(!args.given("json") || !json_path.empty(), "aria-bench: --json needs a file name");
    ARIA_USAGE_CHECK(!(cfg.bf16 && cfg.tf32), "--bf16 and --tf32 are two precisions: choose one");
    ARIA_USAGE_CHECK(!cfg.spc || cfg.gated, "--spc needs --gated (SPC consolidates the gated model's slow pathway)");
    ARIA_USAGE_CHECK((!cfg.graph && !cfg.autotune && cfg.lm_chunk_mib == 0 && !cfg.continual) || !cfg.model.empty(),
               "--graph, --autotune, --lm-chunk-mib and --continual need --model");
    ARIA_USAGE_CHECK(!cfg.continual || (!cfg.tf32 && !cfg.gated && !cfg.graph),
               "--continual times the aria method as the trainer runs it: --tf32, --gated and --graph do not apply");
    if (cuda::device_count() == 0) {
      std::fprintf(stderr, "aria-bench: error: needs a CUDA GPU, and %s\n",
#ifdef ARIA_WITH_CUDA
                   "none is visible to the driver"
#else
                   "this build has no CUDA backend (rebuild with nvcc available)"
#endif
      );
      return 2;
    }
    if (cfg.continual) return run_continual_mode(cfg, json_path, compare_torch);
    if (!cfg.model.empty()) return run_step_mode(cfg, json_path, compare_torch);
    std::printf("aria-bench on %s: B=%d T=%d, %d timed runs per kernel (median)\n", device_name().c_str(), cfg.batch,
                cfg.seq, cfg.reps);
    const Ceilings c = measure_ceilings(cfg);
    const std::vector<Result> rs = bench_kernels(cfg, c);
    print_table(c, rs);
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      ARIA_CHECK(f.good(), "cannot write ", json_path);
      f << to_json(cfg, c, rs).dump(2) << "\n";
      std::printf("\nwrote %s\n", json_path.c_str());
    }
  } catch (const aria::cli::UsageError& e) {
    std::fprintf(stderr, "aria-bench: error: %s\n", without_program(e.what()));
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aria-bench: error: %s\n", without_program(e.what()));
    return 1;
  }
  return 0;
}
