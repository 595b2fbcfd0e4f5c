#include "aria/train/continual/gate_diagnostics.h"

#include "aria/core/error.h"

namespace aria {

GateDiagnosis diagnose_gates(const GateReport& g, double share) {
  ARIA_CHECK(share > 0.5 && share <= 1, "gate diagnosis: share must be in (0.5, 1], got ", share);
  GateDiagnosis d;
  d.collapsed = !g.layers.empty();
  for (const GateHistogram& h : g.layers) {
    ARIA_CHECK(!h.counts.empty(), "gate diagnosis: layer ", h.layer, " has no bins");
    const double n = double(h.counts.size());
    int64_t low = 0, high = 0, total = 0;
    for (size_t k = 0; k < h.counts.size(); ++k) {
      total += h.counts[k];
      // Bin k covers [k/n, (k+1)/n): it is "low" when it lies below 0.05, "high" when at or above 0.95.
      if (double(k + 1) / n <= 0.05 + 1e-12) low += h.counts[k];
      if (double(k) / n >= 0.95 - 1e-12) high += h.counts[k];
    }
    GateLayerDiagnosis l;
    l.layer = h.layer;
    l.mean = h.mean;
    l.low_share = total > 0 ? double(low) / double(total) : 0;
    l.high_share = total > 0 ? double(high) / double(total) : 0;
    l.collapsed = l.low_share >= share ? "slow" : l.high_share >= share ? "fast" : "";
    d.collapsed = d.collapsed && !l.collapsed.empty();
    d.layers.push_back(l);
  }
  return d;
}

nlohmann::ordered_json gate_diagnosis_to_json(const GateDiagnosis& d) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const GateLayerDiagnosis& l : d.layers)
    layers.push_back({{"layer", l.layer},
                      {"mean", l.mean},
                      {"low_share", l.low_share},
                      {"high_share", l.high_share},
                      {"collapsed", l.collapsed.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(l.collapsed)}});
  return {{"collapsed", d.collapsed}, {"layers", layers}};
}

}  // namespace aria
