// The plain language-model loss: next-token cross-entropy on chosen positions of a token
// batch, through one adapter. The generic training step of the transformer core.
#pragma once

#include <optional>
#include <string>

#include "model/model.h"
#include "train/trainer.h"

namespace clara {

struct TokenBatch {
  mx::array ids;                        // [B, L] int32, left-padded
  std::optional<mx::array> key_valid;   // [B, L] 1 = token, 0 = padding; nullopt = no padding
  mx::array loss_mask;                  // [B, L] 1 where ids[b, t] is a supervised target
};

LossTerms lm_loss(const Model& model, const Params& overrides, const TokenBatch& batch, const std::string& adapter,
                   bool train, std::optional<mx::array> dropout_key);

}  // namespace clara
