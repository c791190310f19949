// Loading base-model weights from Hugging Face safetensors or a GGUF file into our names
// (the HF names). This file alone knows foreign spellings (GGUF's blk.N.attn_q, ...).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/params.h"
#include "model/config.h"

namespace clara {

// llama.cpp's per-frequency RoPE factors (Llama 3.1+ GGUF files), kept when present.
inline constexpr const char* kRopeFreqFactors = "model.rope_freq_factors";

// How the projection weights (q/k/v/o, gate/up/down) are held. Embeddings, the head and norms
// are always in the compute dtype; so are adapters and memory-token rows (QLoRA).
struct Quantization {
  // "float": everything dequantized to the compute dtype.
  // "source": projections kept in the file's own quantization (GGUF Q4_0/Q4_1/Q8_0 blocks, an
  //           MLX-quantized folder's groups); float projections stay float.
  // "affine": every projection in MLX affine groups of `bits`/`group_size`; source blocks with
  //           that bits and group size are kept as they are, others are dequantized and requantized.
  std::string mode;
  int bits;
  int group_size;
};

struct WeightSource {
  std::string format;              // "safetensors" | "gguf"
  std::vector<std::string> files;  // every shard, or the one .gguf
  // llama.cpp's converter permutes q/k rows of Llama-architecture models for its RoPE layout;
  // loading undoes that so one RoPE code path serves every source.
  bool gguf_rope_permuted;
  // An MLX-quantized folder's group size (config.json "quantization"); 0 for float folders.
  int source_group_size;
  Quantization quantization;
};

// Every tensor the forward pass reads, for this config (a quantized projection's ".weight" also
// brings ".scales" and ".biases").
std::vector<std::string> expected_tensor_names(const ModelConfig& c);

// A base tensor's float shape ([out, in] for a projection, [H] for a norm, ...).
mx::Shape expected_shape(const ModelConfig& c, const std::string& name);

// Whether `name` is one of the seven per-layer projection weights (the linears adapters wrap).
bool is_projection_weight(const std::string& name);

// The affine bits and group size of a quantized [out, in] weight, from its shapes:
// group = in / scales' width, bits = 32 · packed width / in.
struct QuantizedLayout {
  int bits;
  int group_size;
};
QuantizedLayout quantized_layout(const mx::array& packed, const mx::array& scales, int in_features);

// Loads, renames, dequantizes (GGUF Q4_0/Q4_1/Q8_0), casts to `dtype` and checks that every
// expected tensor is there with the right shape (E_MODEL_TENSOR names file and key otherwise).
Params load_weights(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype);

}  // namespace clara
