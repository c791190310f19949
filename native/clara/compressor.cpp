#include "clara/compressor.h"

#include "clara/memory_tokens.h"
#include "common/error.h"
#include "model/llama.h"
#include "train/losses.h"

namespace clara {

Compressed compress(const Model& model, const ParamView& p, const EncoderBatch& batch, int n_mem, const ActiveAdapter& adapter) {
  const ModelConfig& c = model.config();
  int B = batch.ids.shape(0), L = batch.ids.shape(1);
  if (L <= n_mem) invalid_argument("compress", "encoder inputs must be longer than the memory tokens");
  VocabExtension vocab = memory_vocab(p, model);
  mx::array hidden = decoder_hidden(p, c, embed_tokens(p, batch.ids, &vocab), batch.key_valid, adapter, nullptr,
                                    batch.position_offset);  // [B, L, H]
  mx::array vectors = mx::slice(hidden, {0, L - n_mem, 0}, {B, L, c.hidden_size});                     // [B, n, H]
  // Memory positions vs the real (non-padding) document positions before them.
  mx::array position = mx::arange(L, mx::int32);
  mx::array is_mem = mx::broadcast_to(mx::greater_equal(position, mx::array(L - n_mem)), {B, L});
  mx::array doc = mx::logical_and(batch.key_valid, mx::logical_not(is_mem));
  return {vectors, mse_of_means(hidden, doc, mx::logical_and(is_mem, batch.key_valid))};
}

}  // namespace clara
