#include "aria/train/optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "aria/core/error.h"

namespace aria {

double lr_multiplier(const ScheduleConfig& cfg, int64_t step) {
  ARIA_CHECK(step >= 0, "lr schedule: negative step ", step);
  ARIA_CHECK(cfg.warmup_steps >= 0, "lr schedule: negative warmup_steps ", cfg.warmup_steps);
  ARIA_CHECK(cfg.total_steps >= 1, "lr schedule: total_steps must be >= 1, got ", cfg.total_steps);
  ARIA_CHECK(cfg.min_lr_ratio >= 0 && cfg.min_lr_ratio <= 1, "lr schedule: min_lr_ratio must be in [0, 1], got ",
             cfg.min_lr_ratio);
  if (step < cfg.warmup_steps) return double(step + 1) / double(cfg.warmup_steps);
  if (cfg.kind == ScheduleConfig::Kind::Constant) return 1.0;
  const int64_t span = std::max<int64_t>(1, cfg.total_steps - cfg.warmup_steps);
  const double p = std::clamp(double(step - cfg.warmup_steps) / double(span), 0.0, 1.0);
  const double pi = 3.14159265358979323846;
  return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + std::cos(pi * p));
}

ScheduleConfig::Kind parse_schedule_kind(const std::string& name) {
  if (name == "cosine") return ScheduleConfig::Kind::Cosine;
  if (name == "constant") return ScheduleConfig::Kind::Constant;
  ARIA_FAIL("unknown lr schedule '", name, "' (expected cosine or constant)");
}

}  // namespace aria
