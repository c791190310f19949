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

// CLaRa's alignment term (spec §1.4): per row, the mean hidden state over positions in
// `a_mask` and over positions in `b_mask` ([B, L] each); then the mean squared difference over
// all B×H elements (the reference's F.mse_loss(..., "mean"), not the paper's squared norm:
// λ = 0.1 was tuned on this one).
mx::array mse_of_means(const mx::array& hidden, const mx::array& a_mask, const mx::array& b_mask);

}  // namespace clara
