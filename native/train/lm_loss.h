// The plain language-model loss: next-token cross-entropy on chosen positions of a token
// batch, through one adapter. The generic training step of the transformer core.
#pragma once

#include <optional>
#include <string>

#include "model/llama.h"
#include "model/model.h"
#include "train/token_batch.h"
#include "train/trainer.h"

namespace clara {

// Next-token CE of `hidden` [B, L, H] on the batch's supervised positions (batch.target_rows).
// Only the supervised positions go through the output head: in CLaRa prompts most positions
// are instructions and memory slots, so this skips most of the [B, L, V] logits (the loss is
// the same as the reference's full-logits one).
MaskedLoss next_token_loss(const ParamView& p, const ModelConfig& c, const mx::array& hidden, const TokenBatch& batch,
                           const VocabExtension* extension = nullptr);

LossTerms lm_loss(const Model& model, const Params& overrides, const TokenBatch& batch, const std::string& adapter,
                   bool train, std::optional<mx::array> dropout_key);

}  // namespace clara
