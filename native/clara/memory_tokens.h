// CLaRa's vocabulary extension (spec §1.2): n memory tokens <MEM0>…<MEM{n-1}>, then <AE>,
// <ENC>, <SEP>, appended after the base vocabulary V. Their rows are parameters of their own:
// the memory rows [n, H] (trained in stage 1) and the three special rows [3, H] (never trained),
// plus output-head rows for untied models. Shapes: n memory tokens, H hidden.
#pragma once

#include "common/params.h"
#include "model/llama.h"
#include "model/model.h"

namespace clara {

inline constexpr const char* kMemRows = "clara.mem_embeddings";          // [n, H]
inline constexpr const char* kSpecialRows = "clara.special_embeddings";  // [3, H]: <AE>, <ENC>, <SEP>
inline constexpr const char* kHeadRows = "clara.lm_head_rows";           // [n + 3, H], untied models only

// Adds the rows as transformers' resize_token_embeddings(mean_resizing=True) does: samples from
// N(μ, 1e-9·Σ) of the existing rows (falling back to μ when Σ is not positive definite).
// `first_id` is the first new token's id (the tokenizer's length, spec §1.2). Once only: on a model
// that has the rows already it does nothing, and refuses another count (E_CHECKPOINT_MISMATCH).
void add_memory_tokens(Model& model, int n_mem, uint64_t seed, int first_id);

// The extension as the forward pass consumes it, from (possibly overridden) parameters.
VocabExtension memory_vocab(const ParamView& p, const Model& model);

}  // namespace clara
