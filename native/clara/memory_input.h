// An optional map from the compressor's output space to the generator's input space.
//
// The compressed vectors are final-norm hidden states. On SmolLM2 they share one direction
// (≈ 95 % of their norm, with an outlier dimension ~10× the RMS) that is nearly orthogonal to
// every input embedding, so 40 of them in a prompt derail the untrained generator (stage-1 CE
// 2.6 without them, 9.6 with them) and it learns to ignore the slots (docs/training-recipe.md).
// The reference has no such map: without one the vectors enter as they are.
//
// Calibrated, the map is per dimension, v·scale + shift, chosen so that the compressed vectors of
// the calibration documents get the mean and standard deviation of the base's input embedding
// rows. It is two model parameters, saved with the checkpoint, not trained.
#pragma once

#include "common/params.h"
#include "model/model.h"

namespace clara {

inline constexpr const char* kMemoryInScale = "clara.memory_in.scale";  // [H]
inline constexpr const char* kMemoryInShift = "clara.memory_in.shift";  // [H]

// vectors [..., H] as the generator receives them: mapped when the model has the map.
mx::array memory_input(const ParamView& p, const mx::array& vectors);

// Sets the map from `vectors` [N, n, H] (compressed calibration documents) and the embedding
// rows 0..first_new_id-1 (the base vocabulary, without CLaRa's rows).
void calibrate_memory_input(Model& model, const mx::array& vectors, int first_new_id);

}  // namespace clara
