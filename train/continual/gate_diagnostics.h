// Gate diagnostics over training (issue 15): whether ARIA's gates pi route tokens between the
// pathways or have collapsed onto one of them. From the pi histograms (train/report/report_html.h
// GateReport) that aria run collects after every task.
//
// A layer has collapsed when at least `share` (default 95%) of its real tokens sit in the extreme
// bins at one end (pi < 0.05: the slow pathway alone; pi >= 0.95: the fast pathway alone): then the
// layer computes with one pathway for (nearly) every token and the gate routes nothing. A bimodal
// histogram with both ends populated is what the plasticity loss is meant to produce and is not
// collapse. A report has collapsed when every layer has.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aria/train/report/report_html.h"

namespace aria {

struct GateLayerDiagnosis {
  int layer = 0;
  double mean = 0;        // mean pi
  double low_share = 0;   // share of tokens with pi < 0.05
  double high_share = 0;  // share of tokens with pi >= 0.95
  std::string collapsed;  // "slow" (to pi ~ 0), "fast" (to pi ~ 1) or "" (not collapsed)
};

struct GateDiagnosis {
  std::vector<GateLayerDiagnosis> layers;
  bool collapsed = false;  // every layer collapsed
};

GateDiagnosis diagnose_gates(const GateReport& g, double share = 0.95);
nlohmann::ordered_json gate_diagnosis_to_json(const GateDiagnosis& d);

}  // namespace aria
