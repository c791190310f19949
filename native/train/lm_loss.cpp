#include "train/lm_loss.h"

#include "model/llama.h"

namespace clara {

LossTerms lm_loss(const Model& model, const Params& overrides, const TokenBatch& batch, const std::string& adapter,
                   bool train, std::optional<mx::array> dropout_key) {
  ParamView p = model.view(&overrides);
  const ModelConfig& c = model.config();
  int B = batch.ids.shape(0), L = batch.ids.shape(1);
  mx::array hidden = decoder_hidden(p, c, embed_tokens(p, batch.ids), batch.key_valid,
                                    model.active(adapter, train, std::move(dropout_key)));
  // Position t predicts token t+1.
  mx::array logits = lm_logits(p, c, mx::slice(hidden, {0, 0, 0}, {B, L - 1, c.hidden_size}));
  mx::array targets = mx::slice(batch.ids, {0, 1}, {B, L});
  mx::array mask = mx::slice(batch.loss_mask, {0, 1}, {B, L});
  MaskedLoss ce = masked_cross_entropy(logits, targets, mask);
  return {ce.loss, ce.tokens, {}};
}

}  // namespace clara
