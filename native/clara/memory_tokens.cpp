#include "clara/memory_tokens.h"

#include <algorithm>

#include "common/error.h"

namespace clara {

namespace {

// New rows ~ N(μ, 1e-9·Σ) over the rows of `table` [V, H] (transformers' mean resizing).
mx::array mean_resized_rows(const mx::array& table, int count, uint64_t seed) {
  mx::array e = mx::astype(table, mx::float32);
  mx::array mu = mx::mean(e, 0);                                                        // [H]
  mx::array centered = mx::subtract(e, mu);
  mx::array cov = mx::divide(mx::matmul(mx::transpose(centered), centered), mx::array(float(table.shape(0))));
  mx::array z = mx::random::normal({count, table.shape(1)}, mx::float32, 0.0f, 1.0f, mx::random::key(seed));
  try {
    // Cholesky runs on the CPU in every MLX backend; it throws when Σ is not positive definite.
    mx::array l = mx::linalg::cholesky(mx::multiply(cov, mx::array(1e-9f)), false, mx::Device::cpu);
    mx::array rows = mx::add(mu, mx::matmul(z, mx::transpose(l)));
    mx::eval(rows);
    bool finite = mx::all(mx::isfinite(rows)).item<bool>();
    if (finite) return mx::astype(rows, table.dtype());
  } catch (const std::exception&) {
  }
  return mx::astype(mx::broadcast_to(mu, {count, table.shape(1)}), table.dtype());
}

// The rows of ids [first_id, first_id + count) after resize_token_embeddings(first_id + count): a
// padded table (Qwen's) keeps its own rows where they exist, new rows are mean-resized.
mx::array appended_rows(const mx::array& table, int first_id, int count, uint64_t seed) {
  int kept = std::min(count, static_cast<int>(table.shape(0)) - first_id);
  if (kept <= 0) return mean_resized_rows(table, count, seed);
  mx::array own = mx::slice(table, {first_id, 0}, {first_id + kept, table.shape(1)});
  if (kept == count) return own;
  return mx::concatenate({own, mean_resized_rows(table, count - kept, seed)}, 0);
}

}  // namespace

void add_memory_tokens(Model& model, int n_mem, uint64_t seed, int first_id) {
  if (n_mem < 1) invalid_argument("memory_tokens", "the number of memory tokens must be at least 1");
  auto existing = model.extra().find(kMemRows);
  if (existing != model.extra().end()) {
    if (existing->second.shape(0) == n_mem) return;
    throw Error("E_CHECKPOINT_MISMATCH", "[clara] the model has " + std::to_string(existing->second.shape(0)) +
                                             " memory tokens, not " + std::to_string(n_mem));
  }
  ParamView p = model.view();
  const ModelConfig& c = model.config();
  if (first_id < 1 || first_id > p.at("model.embed_tokens.weight").shape(0)) {
    invalid_argument("memory_tokens", "the first new token id must be in 1..the embedding table's rows");
  }
  model.set_vocab_extension_start(first_id);
  mx::array embed_rows = appended_rows(p.at("model.embed_tokens.weight"), first_id, n_mem + 3, seed);
  model.extra().insert_or_assign(kMemRows, mx::slice(embed_rows, {0, 0}, {n_mem, c.hidden_size}));
  model.extra().insert_or_assign(kSpecialRows, mx::slice(embed_rows, {n_mem, 0}, {n_mem + 3, c.hidden_size}));
  if (!c.tie_word_embeddings) {
    model.extra().insert_or_assign(kHeadRows, appended_rows(p.at("lm_head.weight"), first_id, n_mem + 3, seed + 1));
  }
  std::vector<mx::array> made;
  for (const char* n : {kMemRows, kSpecialRows, kHeadRows}) {
    auto it = model.extra().find(n);
    if (it != model.extra().end()) made.push_back(it->second);
  }
  mx::eval(made);
}

VocabExtension memory_vocab(const ParamView& p, const Model& model) {
  if (model.vocab_extension_start() <= 0) invalid_argument("memory_tokens", "the model has no CLaRa tokens (claraInit first)");
  mx::array embed_rows = mx::concatenate({p.at(kMemRows), p.at(kSpecialRows)}, 0);
  if (model.config().tie_word_embeddings) return {embed_rows, embed_rows, model.vocab_extension_start()};
  return {embed_rows, p.at(kHeadRows), model.vocab_extension_start()};
}

}  // namespace clara
