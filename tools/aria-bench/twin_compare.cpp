// aria-bench --continual --compare-torch: the PyTorch twin (tools/hf_reference/continual_twin.py
// --bench) times the same continual step and per-sample Fisher at the same shapes, eager and
// torch.compile, in the same process tree on the same GPU; this file runs it and prints the rows
// next to aria's with the ratios the issue-13 targets are stated in (docs/perf.md).
#include <cstdio>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "tools/aria-bench/bench.h"

namespace aria::bench {

namespace {

// The fastest of the twin's Fisher forms that ran (einsum, vmap); NaN when none did.
double fastest_fisher_ms(const nlohmann::json& fisher_ms, std::string& form) {
  double best = std::numeric_limits<double>::quiet_NaN();
  for (auto it = fisher_ms.begin(); it != fisher_ms.end(); ++it) {
    if (!it.value().is_number()) continue;  // "error: ..." (e.g. vmap out of memory at 1.5B)
    const double ms = it.value().get<double>();
    if (!(ms >= best)) best = ms, form = it.key();
  }
  return best;
}

}  // namespace

nlohmann::json compare_continual_with_twin(const Config& cfg, const ContinualResult& aria) {
  const std::string cmd = "python3 tools/hf_reference/continual_twin.py --bench --compile --model " + cfg.model +
                          " --seq " + std::to_string(cfg.seq) + " --batch " + std::to_string(cfg.batch) +
                          " --steps " + std::to_string(cfg.steps) + " --fisher-batches " +
                          std::to_string(cfg.fisher_batches);
  std::fflush(stdout);
  FILE* p = popen(cmd.c_str(), "r");
  ARIA_CHECK(p, "cannot run ", cmd);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  ARIA_CHECK(rc == 0, "the PyTorch twin failed (exit status ", rc, "): ", cmd,
             " (run it from the repository root, with torch >= 2.0 and a GPU)");
  // The twin prints its result as one JSON line, the last line that starts with '{'.
  const size_t at = out.rfind("\n{") == std::string::npos ? out.find('{') : out.rfind("\n{") + 1;
  nlohmann::json twin;
  try {
    twin = nlohmann::json::parse(at == std::string::npos ? std::string() : out.substr(at));
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL("the PyTorch twin printed no JSON result (", e.what(), "): ", out.substr(0, 400));
  }
  std::printf("\n%-24s %9s %12s %10s %9s | %-24s %10s %9s\n", "system (same GPU)", "step ms", "tokens/s", "peak GiB",
              "aria/x", "per-sample Fisher", "ms", "aria/x");
  std::printf("%-24s %9.1f %12.0f %10.2f %9s | %-24s %10.1f %9s\n", ("aria " + aria.precision).c_str(), aria.step_ms,
              aria.tokens_per_s, aria.peak_gib, "1.00x", "exact (per-sample GEMM)", aria.fisher_ms, "1.00x");
  for (const char* mode : {"eager", "compile"}) {
    if (!twin.contains(mode)) continue;
    nlohmann::json& r = twin[mode];
    std::string form = "none ran";
    const double fisher = fastest_fisher_ms(r["fisher_ms"], form);
    const double step_ms = r["step_ms"].get<double>();
    r["aria_step_speedup"] = step_ms / aria.step_ms;
    r["aria_fisher_speedup"] = fisher / aria.fisher_ms;
    r["aria_peak_ratio"] = r["peak_gib"].is_number() ? aria.peak_gib / r["peak_gib"].get<double>() : 0.0;
    std::printf("%-24s %9.1f %12.0f %10.2f %8.2fx | %-24s %10.1f %8.2fx\n",
                ("torch " + std::string(mode) + " bf16-autocast").c_str(), step_ms,
                r["tokens_per_s"].get<double>(), r["peak_gib"].is_number() ? r["peak_gib"].get<double>() : 0.0,
                step_ms / aria.step_ms, ("fastest: " + form).c_str(), fisher, fisher / aria.fisher_ms);
  }
  std::printf("(aria/x > 1: aria is faster; targets at 124M/355M, seq 512, batch 16: step >= 1.1x compile and "
              ">= 1.5x eager, Fisher >= 2x the twin's fastest form, peak memory <= the twin's)\n");
  return twin;
}

}  // namespace aria::bench
