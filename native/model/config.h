// ModelConfig: the Llama-family hyperparameters, with Hugging Face config.json field names.
// lib/ reads config.json or GGUF metadata and fills it; native code never parses JSON.
#pragma once

#include <string>

namespace clara {

struct RopeScaling {
  std::string type = "default";  // "default" | "linear" | "llama3"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type = "llama";  // llama | mistral | qwen2 | qwen3
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  // 0: hidden_size / num_attention_heads
  int vocab_size = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // Which linears carry biases. HF spells these per architecture (Qwen2: q/k/v; Llama and Qwen3
  // attention_bias: q/k/v/o; Llama mlp_bias); lib/model/config.ts resolves them.
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;  // per-head RMSNorm on q and k (Qwen3)

  int resolved_head_dim() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
};

// Throws E_MODEL_CONFIG naming the first field that cannot be right.
void validate(const ModelConfig& c);

}  // namespace clara
