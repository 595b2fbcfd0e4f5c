// Learning-rate schedules as a multiplier of each group's base lr (AdamW::step's lr_multiplier).
#pragma once
#include <cstdint>
#include <string>

namespace aria {

struct ScheduleConfig {
  enum class Kind { Cosine, Constant };
  Kind kind = Kind::Cosine;
  int64_t warmup_steps = 0;  // linear ramp from 0 over these steps
  int64_t total_steps = 1;   // cosine reaches min_lr_ratio here (and stays there after)
  double min_lr_ratio = 0.0;
};

// Multiplier for the 0-based step about to be taken:
//   step < warmup:  (step + 1) / warmup           (the ramp from 0; the first step is not wasted)
//   Constant:       1 after the warmup
//   Cosine:         min + (1 - min) * (1 + cos(pi * p)) / 2,  p = (step - warmup) / (total - warmup)
//                   clamped to [0, 1], so min_lr_ratio from step `total` on.
// Throws aria::Error for a negative step or warmup, total < 1 or min_lr_ratio outside [0, 1].
double lr_multiplier(const ScheduleConfig& cfg, int64_t step);

// "cosine" or "constant" (for command-line flags); throws aria::Error otherwise.
ScheduleConfig::Kind parse_schedule_kind(const std::string& name);

}  // namespace aria
