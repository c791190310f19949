// Loss formulas, each written once. Shapes: B batch, L positions, V vocab.
#pragma once

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

struct MaskedLoss {
  mx::array loss;    // scalar: mean over supervised tokens
  mx::array tokens;  // scalar: how many tokens were supervised
};

// Next-token cross-entropy: logits [B, L, V] at position t predict targets[t]; only positions
// with mask = 1 count, and the loss is their mean (the reference's token-mean, spec §1.5).
MaskedLoss masked_cross_entropy(const mx::array& logits, const mx::array& targets, const mx::array& mask);

}  // namespace clara
