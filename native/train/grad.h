// Gradient bookkeeping between value_and_grad and the optimizer: global-norm clipping and the
// non-finite check that stops a run before a NaN reaches the weights.
#pragma once

#include <vector>

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

// √Σ‖g‖² over every gradient (a lazy scalar).
mx::array global_norm(const std::vector<mx::array>& grads);

// Scales grads so their global norm is at most max_norm (torch's clip_grad_norm_: factor
// max_norm / (norm + 1e-6), applied only when it is < 1). max_norm <= 0 disables clipping.
std::vector<mx::array> clip_by_global_norm(const std::vector<mx::array>& grads, const mx::array& norm, float max_norm);

}  // namespace clara
