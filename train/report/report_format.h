// Number formatting and the task colours shared by the HTML report (report_html.cpp) and its SVG
// charts (report_charts.cpp), so that task j has one colour and one number style on the whole page.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aria::report_format {

// Task j is kPalette[j % 10] everywhere on the page.
inline const char* const kPalette[10] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
inline std::string px(double v) { return fmt("%.1f", v); }
inline std::string pct(double v) { return fmt("%.1f", 100 * v); }
// A JSON value that is a finite number (null, NaN and strings are not).
inline bool finite_num(const nlohmann::ordered_json& j) { return j.is_number() && std::isfinite(j.get<double>()); }
// The runs of a report.json method: its "per_seed" entries when present, else the method itself (one run).
inline std::vector<const nlohmann::ordered_json*> runs_of(const nlohmann::ordered_json& m) {
  std::vector<const nlohmann::ordered_json*> v;
  if (m.is_object() && m.contains("per_seed") && m.at("per_seed").is_array() && !m.at("per_seed").empty())
    for (const nlohmann::ordered_json& r : m.at("per_seed")) v.push_back(&r);
  else
    v.push_back(&m);
  return v;
}

}  // namespace aria::report_format
