#include "train/lm_loss.h"


namespace clara {

MaskedLoss next_token_loss(const ParamView& p, const ModelConfig& c, const mx::array& hidden, const TokenBatch& batch,
                           const VocabExtension* extension) {
  int B = batch.ids.shape(0), L = batch.ids.shape(1);
  // Rows of hidden (flattened to [B·L, H]) that predict a supervised token: position t predicts t+1.
  mx::array mask = mx::astype(batch.loss_mask, mx::int32);
  mx::array ids = mx::astype(batch.ids, mx::int32);
  mx::eval(mask, ids);
  const int32_t* m = mask.data<int32_t>();
  const int32_t* id = ids.data<int32_t>();
  std::vector<int32_t> rows, targets;
  for (int b = 0; b < B; ++b) {
    for (int t = 1; t < L; ++t) {
      if (m[b * L + t]) {
        rows.push_back(b * L + t - 1);
        targets.push_back(id[b * L + t]);
      }
    }
  }
  if (rows.empty()) return {mx::array(0.0f, hidden.dtype()), mx::array(0.0f, hidden.dtype())};
  int M = static_cast<int>(rows.size());
  mx::array picked = mx::take(mx::reshape(hidden, {B * L, c.hidden_size}), mx::array(rows.data(), {M}, mx::int32), 0);
  mx::array logits = lm_logits(p, c, mx::reshape(picked, {1, M, c.hidden_size}), extension);  // [1, M, V]
  return masked_cross_entropy(logits, mx::array(targets.data(), {1, M}, mx::int32), mx::ones({1, M}, mx::int32));
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
