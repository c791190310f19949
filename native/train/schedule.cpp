#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace clara {

float learning_rate(const ScheduleConfig& s, int step) {
  if (s.kind != "cosine" && s.kind != "constant") invalid_argument("schedule", "unknown schedule '" + s.kind + "'");
  if (s.warmup_steps > 0 && step < s.warmup_steps) return s.lr * static_cast<float>(step) / s.warmup_steps;
  if (s.kind == "constant") return s.lr;
  int decay_steps = std::max(1, s.total_steps - s.warmup_steps);
  float progress = std::min(1.0f, static_cast<float>(step - s.warmup_steps) / decay_steps);
  float cosine = 0.5f * (1.0f + std::cos(static_cast<float>(M_PI) * progress));
  return s.lr * (s.min_lr_ratio + (1.0f - s.min_lr_ratio) * cosine);
}

}  // namespace clara
