// Stage-3 retrieval (spec §1.6, §2.3): cosine relevance between flattened n·H query and
// document vectors, and the straight-through differentiable top-k that selects documents
// while letting the generator's loss reach the query reasoner.
// Shapes: B queries, N candidates, D = n·H, k selected.
#pragma once

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

// q [B, D], docs [B, N, D] -> [B, N] cosine similarities in float32.
mx::array cosine_scores(const mx::array& q, const mx::array& docs);

struct TopK {
  mx::array weights;  // [B, k, N]: forward value is the hard one-hot of `indices`
  mx::array indices;  // [B, k], best first
};

// The reference's differentiable_topk (M:274-297, Algorithm 1): s̃ = s / max(τ, 1e-6); hard
// top-k by s̃; for slot j, p_j = softmax(s̃ + log(1 − SG(taken_j) + 1e-8)) — the mask added
// after the division by τ, as in the code; W = K_hard + K_soft − SG(K_soft).
TopK differentiable_topk(const mx::array& scores, int k, float tau);

}  // namespace clara
