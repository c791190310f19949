// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3, SmolLM2) as free functions over
// a ParamView. Shapes: B batch, L new positions, T = cache offset + L keys, H hidden,
// V vocab, nh/kvh query/key-value heads, D head dim.
#pragma once

#include <optional>
#include <vector>

#include "common/params.h"
#include "model/config.h"
#include "model/lora.h"

namespace clara {

// Per-layer keys and values for incremental decoding, preallocated to `capacity` positions.
struct KVCache {
  std::vector<mx::array> keys;    // [B, kvh, capacity, D] per layer
  std::vector<mx::array> values;
  int offset = 0;                 // positions already written
  int capacity = 0;
};

KVCache make_kv_cache(const ModelConfig& c, int batch, int capacity, mx::Dtype dtype);

// Tokens appended to the base vocabulary (CLaRa's memory and special tokens): their input
// embedding rows and their output-head rows, each [E, H]. Ids V..V+E-1 address them.
// first_id: the id of the first appended token. It may be below the table's row count (a padded
// vocabulary, e.g. Qwen's): then rows [first_id, V) are never addressed, and the logits leave
// them out, as the reference's resize_token_embeddings(len(tokenizer)) drops them.
struct VocabExtension {
  mx::array embed_rows;
  mx::array head_rows;
  int first_id;
};

// [B, L] token ids -> [B, L, H] input embeddings.
mx::array embed_tokens(const ParamView& p, const mx::array& ids, const VocabExtension* extension = nullptr);

// Runs every decoder layer on input embeddings and returns the final-norm hidden states
// [B, L, H] (the tensor that feeds lm_head; CLaRa's compressor output, spec §1.4).
// key_valid: [B, T] with 1 for real tokens and 0 for left padding, or nullopt when unpadded.
// position_offset: RoPE positions start there instead of at the cache offset's 0 — the positions
// a left-padded row would have had if `position_offset` more padding columns stood before it.
mx::array decoder_hidden(const ParamView& p, const ModelConfig& c, const mx::array& embeddings,
                         const std::optional<mx::array>& key_valid, const ActiveAdapter& adapter, KVCache* cache = nullptr,
                         int position_offset = 0);

// [B, L, H] -> [B, L, V] logits, or [B, L, first_id + E] with an extension: tied or untied head,
// then the extension's columns.
mx::array lm_logits(const ParamView& p, const ModelConfig& c, const mx::array& hidden,
                    const VocabExtension* extension = nullptr);

}  // namespace clara
