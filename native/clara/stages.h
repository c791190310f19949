// The three CLaRa training losses (spec §2), each a plain function handed to the shared
// Trainer. Stage 1 (salient compressor pretraining) and stage 2 (instruction tuning) share one
// loss: compress k documents per prompt, fill the generator's memory slots, next-token CE
// + λ·MSE. Stage 3 adds the query reasoner and the differentiable top-k over N candidates.
// Shapes: B prompts, k documents per prompt, N candidates, n memory tokens, H hidden.
#pragma once

#include <optional>
#include <string>

#include "clara/compressor.h"
#include "train/lm_loss.h"
#include "train/trainer.h"

namespace clara {

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct ClaraSpec {
  int n_mem = 0;            // memory tokens per document (docMaxLength / ρ)
  int k = 0;                // documents per prompt (generation_top_k)
  int mem0_id = 0;          // token id of <MEM0>
  float mse_weight = 0.0f;  // λ (spec §2.0)
  float tau = 0.0f;         // stage-3 temperature (M:1452)
  // Adapter names (spec §1.3).
  std::string compressor;
  std::string generator;
  std::string query_reasoner;
};

struct Stage12Batch {
  EncoderBatch docs;   // B·k documents, prompt-major
  TokenBatch prompt;   // B generator prompts with the answer; the targets are answer + EOS
  mx::array slots;     // [B, L] memory_slot_sources of the prompt
};

struct Stage3Batch {
  EncoderBatch query;       // B questions in the document format
  EncoderBatch candidates;  // B·N documents, prompt-major
  int num_candidates = 0;   // N
  TokenBatch prompt;        // B prompts with k slots, filled in rank order
  mx::array slots;          // [B, L] memory_slot_sources of the prompt
};

// `train` turns LoRA dropout on; `key` seeds it.
LossTerms stage12_loss(const Model& model, const Params& overrides, const Stage12Batch& batch, const ClaraSpec& spec, bool train,
                       std::optional<mx::array> key);

LossTerms stage3_loss(const Model& model, const Params& overrides, const Stage3Batch& batch, const ClaraSpec& spec, bool train,
                      std::optional<mx::array> key);

// Query-reasoner retrieval without gradients: scores [B, N] and the top-k indices [B, k].
struct Retrieval {
  mx::array scores;
  mx::array indices;
  mx::array selected;  // [B·k, n, H] compressed documents in rank order
};
Retrieval retrieve(const Model& model, const EncoderBatch& query, const mx::array& candidates /*[B, N, n, H]*/,
                   const ClaraSpec& spec);

}  // namespace clara
