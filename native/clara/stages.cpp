#include "clara/stages.h"

#include "clara/generator.h"
#include "clara/memory_input.h"
#include "clara/memory_tokens.h"
#include "clara/retrieval.h"
#include "common/error.h"
#include "model/llama.h"

namespace clara {

namespace {

// Distinct, reproducible dropout keys for the sub-forwards of one loss.
std::optional<mx::array> subkey(const std::optional<mx::array>& key, int i) {
  if (!key) return std::nullopt;
  return mx::take(mx::random::split(*key, 3), i, 0);
}

// Generator forward over a prompt whose slots hold `compressed`; masked next-token CE.
MaskedLoss generator_loss(const Model& model, const ParamView& p, const TokenBatch& prompt, const mx::array& slots,
                          const mx::array& compressed, const ClaraSpec& spec, int k, const ActiveAdapter& adapter) {
  const ModelConfig& c = model.config();
  VocabExtension vocab = memory_vocab(p, model);
  mx::array embeddings = fill_memory_slots(embed_tokens(p, prompt.ids, &vocab), slots, memory_input(p, compressed), spec.n_mem, k);
  mx::array hidden = decoder_hidden(p, c, embeddings, prompt.key_valid, adapter);
  return next_token_loss(p, c, hidden, prompt, &vocab);
}

}  // namespace

LossTerms stage12_loss(const Model& model, const Params& overrides, const Stage12Batch& batch, const ClaraSpec& spec, bool train,
                       std::optional<mx::array> key) {
  ParamView p = model.view(&overrides);
  int B = batch.prompt.ids.shape(0);
  if (batch.docs.ids.shape(0) != B * spec.k) {
    invalid_argument("stage12_loss", std::to_string(batch.docs.ids.shape(0)) + " documents for " + std::to_string(B) +
                                         " prompts of k = " + std::to_string(spec.k));
  }
  // Both adapters stay in the graph: CE reaches the compressor through the filled slots (spec §2.1).
  Compressed docs = compress(model, p, batch.docs, spec.n_mem, model.active(spec.compressor, train, subkey(key, 0)));
  MaskedLoss ce = generator_loss(model, p, batch.prompt, batch.slots, docs.vectors, spec, spec.k, model.active(spec.generator, train, subkey(key, 1)));
  mx::array loss = mx::add(ce.loss, mx::multiply(mx::array(spec.mse_weight, ce.loss.dtype()), mx::astype(docs.mse, ce.loss.dtype())));
  return {loss, ce.tokens, {{"ce", ce.loss}, {"mse", docs.mse}}};
}

LossTerms stage3_loss(const Model& model, const Params& overrides, const Stage3Batch& batch, const ClaraSpec& spec, bool train,
                      std::optional<mx::array> key) {
  ParamView p = model.view(&overrides);
  const ModelConfig& c = model.config();
  int B = batch.prompt.ids.shape(0), N = batch.num_candidates, n = spec.n_mem, H = c.hidden_size;
  if (batch.candidates.ids.shape(0) != B * N) invalid_argument("stage3_loss", "candidates must be B·N documents");
  // Query reasoner, with gradient: [B, n·H].
  Compressed q = compress(model, p, batch.query, n, model.active(spec.query_reasoner, train, subkey(key, 0)));
  // Frozen compressor: no gradient, but in train mode its dropout is on, as in the reference (spec §7 Q8).
  Compressed docs = compress(model, p, batch.candidates, n, model.active(spec.compressor, train, subkey(key, 1)));
  mx::array m = mx::stop_gradient(mx::reshape(docs.vectors, {B, N, n * H}));
  mx::array scores = cosine_scores(mx::reshape(q.vectors, {B, n * H}), m);  // [B, N]
  TopK top = differentiable_topk(scores, spec.k, spec.tau);
  // Selected documents in rank order: [B, k, n·H] -> [B·k, n, H].
  mx::array selected = mx::matmul(mx::astype(top.weights, m.dtype()), m);
  selected = mx::reshape(selected, {B * spec.k, n, H});
  MaskedLoss ce = generator_loss(model, p, batch.prompt, batch.slots, selected, spec, spec.k, model.active(spec.generator, train, subkey(key, 2)));
  // Stage 3 trains on the next-token loss alone (no MSE, no retrieval loss: spec §2.3).
  return {ce.loss, ce.tokens, {{"ce", ce.loss}}};
}

Retrieval retrieve(const Model& model, const EncoderBatch& query, const mx::array& candidates, const ClaraSpec& spec) {
  ParamView p = model.view();
  const ModelConfig& c = model.config();
  int B = candidates.shape(0), N = candidates.shape(1), n = spec.n_mem, H = c.hidden_size;
  if (candidates.ndim() != 4 || candidates.shape(2) != n || candidates.shape(3) != H) {
    invalid_argument("retrieve", "candidates must be [B, N, n, H]");
  }
  Compressed q = compress(model, p, query, n, model.active(spec.query_reasoner, false));
  mx::array m = mx::reshape(candidates, {B, N, n * H});
  mx::array scores = cosine_scores(mx::reshape(q.vectors, {B, n * H}), m);
  int k = std::min(spec.k, N);
  TopK top = differentiable_topk(scores, k, spec.tau);
  mx::array selected = mx::reshape(mx::matmul(mx::astype(top.weights, m.dtype()), m), {B * k, n, H});
  return {scores, top.indices, selected};
}

}  // namespace clara
