// AdamW with PyTorch semantics (the reference trains with torch's/DeepSpeed's AdamW):
// decoupled weight decay, bias-corrected moments. MLX's own Adam skips bias correction by
// default, so this is written out, as llm.c's gpt2_update does.
#pragma once

#include <vector>

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
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
