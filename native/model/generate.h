// Autoregressive decoding with a KV cache: greedy, or temperature + top-p sampling; from
// token ids or from input embeddings (CLaRa overwrites memory-token embeddings).
#pragma once

#include <optional>
#include <vector>

#include "model/llama.h"
#include "model/model.h"

namespace clara {

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct GenerateOptions {
  int max_tokens = 0;
  float temperature = 0.0f;  // 0: greedy
  float top_p = 0.0f;
  std::vector<int> stop_tokens;
  uint64_t seed = 0;
};

struct GenerateResult {
  std::vector<std::vector<int>> tokens;  // per row, stop token excluded
  std::vector<bool> stopped;             // row ended on a stop token (else max_tokens)
  int prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// embeddings: [B, L, H], key_valid: [B, L] (1 = token, 0 = left padding) or nullopt.
// `extension` supplies rows for tokens appended to the vocabulary (CLaRa), or nullptr.
GenerateResult generate(const Model& model, const mx::array& embeddings, const std::optional<mx::array>& key_valid,
                        const std::string& adapter, const GenerateOptions& options,
                        const VocabExtension* extension = nullptr);

}  // namespace clara
