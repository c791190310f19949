#include "train/lm_loss.h"

namespace clara {

MaskedLoss next_token_loss(const ParamView& p, const ModelConfig& c, const mx::array& hidden, const TokenBatch& batch,
                           const VocabExtension* extension) {
  int B = batch.ids.shape(0), L = batch.ids.shape(1), M = batch.targets.shape(0);
  if (M == 0) return {mx::array(0.0f, hidden.dtype()), mx::array(0.0f, hidden.dtype())};
  mx::array picked = mx::take(mx::reshape(hidden, {B * L, c.hidden_size}), batch.target_rows, 0);
  mx::array logits = lm_logits(p, c, mx::reshape(picked, {1, M, c.hidden_size}), extension);  // [1, M, V]
  return masked_cross_entropy(logits, mx::reshape(batch.targets, {1, M}), mx::ones({1, M}, mx::int32));
}

LossTerms lm_loss(const Model& model, const Params& overrides, const TokenBatch& batch, const std::string& adapter,
                   bool train, std::optional<mx::array> dropout_key) {
  ParamView p = model.view(&overrides);
  const ModelConfig& c = model.config();
  mx::array hidden = decoder_hidden(p, c, embed_tokens(p, batch.ids), batch.key_valid,
                                    model.active(adapter, train, std::move(dropout_key)));
  MaskedLoss ce = next_token_loss(p, c, hidden, batch);
  return {ce.loss, ce.tokens, {}};
}

}  // namespace clara
