// Loading base-model weights from Hugging Face safetensors or a GGUF file into our names
// (the HF names). This file alone knows foreign spellings (GGUF's blk.N.attn_q, ...).
#pragma once

#include <string>
#include <vector>

#include "common/params.h"
#include "model/config.h"

namespace clara {

// llama.cpp's per-frequency RoPE factors (Llama 3.1+ GGUF files), kept when present.
inline constexpr const char* kRopeFreqFactors = "model.rope_freq_factors";

struct WeightSource {
  std::string format;              // "safetensors" | "gguf"
  std::vector<std::string> files;  // every shard, or the one .gguf
  // llama.cpp's converter permutes q/k rows of Llama-architecture models for its RoPE layout;
  // loading undoes that so one RoPE code path serves every source.
  bool gguf_rope_permuted = false;
};

// Every tensor the forward pass reads, for this config.
std::vector<std::string> expected_tensor_names(const ModelConfig& c);

// Loads, renames, dequantizes (GGUF Q4_0/Q4_1/Q8_0), casts to `dtype` and checks that every
// expected tensor is there with the right shape (E_MODEL_TENSOR names file and key otherwise).
Params load_weights(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype);

}  // namespace clara
