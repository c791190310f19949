// Learning-rate schedules (spec §2.0): constant, and cosine decaying to a floor after linear
// warmup (transformers' cosine_with_min_lr, which the reference uses with min_lr = 0.1·lr).
#pragma once

#include <string>

namespace clara {

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct ScheduleConfig {
  std::string kind;             // "cosine" | "constant"
  float lr = 0.0f;
  float min_lr_ratio = 0.0f;    // cosine floor as a fraction of lr
  int warmup_steps = 0;         // linear from 0 to lr
  int total_steps = 0;          // optimizer updates in the whole run
};

// The learning rate for optimizer update number `step` (0-based).
float learning_rate(const ScheduleConfig& s, int step);

}  // namespace clara
