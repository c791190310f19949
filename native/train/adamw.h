// AdamW with PyTorch semantics (the reference trains with torch's/DeepSpeed's AdamW):
// decoupled weight decay, bias-corrected moments. MLX's own Adam skips bias correction by
// default, so this is written out, as llm.c's gpt2_update does.
#pragma once

#include <vector>

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct AdamWConfig {
  float beta1 = 0.0f;
  float beta2 = 0.0f;
  float eps = 0.0f;
  float weight_decay = 0.0f;
};

struct AdamWState {
  std::vector<mx::array> m;  // first moments, one per parameter
  std::vector<mx::array> v;  // second moments
  int step = 0;              // updates applied so far
};

AdamWState adamw_init(const std::vector<mx::array>& params);

// Returns the updated parameters and advances `state` (lazily: nothing is evaluated here).
std::vector<mx::array> adamw_update(const std::vector<mx::array>& params, const std::vector<mx::array>& grads,
                                    AdamWState& state, float lr, const AdamWConfig& config);

}  // namespace clara
