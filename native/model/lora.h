// LoRA adapters as data (llama.cpp's view): for each adapted linear, an entry per adapter
// name "<linear>.lora.<name>.a" [in, r] and ".b" [r, out]. y = x·Wᵀ + s·(dropout(x)·A)·B,
// s = α/r, B = 0 at start (mlx-lm's orientation; PEFT stores Aᵀ and Bᵀ).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/params.h"
#include "model/config.h"

namespace clara {

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct LoraConfig {
  int rank = 0;
  float alpha = 0.0f;
  float dropout = 0.0f;
  float scale() const { return alpha / static_cast<float>(rank); }
};

// The adapter in force for one forward call: exactly one (or none), as in the reference.
struct ActiveAdapter {
  std::string name;                 // "" = base model
  LoraConfig config;
  bool train = false;               // dropout on
  // Recompute each decoder layer in the backward pass instead of keeping its activations
  // (training memory for compute, mlx-lm's --grad-checkpoint). Set by Model::active in train mode.
  bool checkpoint_layers = false;
  std::optional<mx::array> key;     // dropout randomness for this call
  // One key per adapted linear, split from `key` once per forward (see with_dropout_keys).
  std::optional<mx::array> dropout_keys;
};

// A copy of `adapter` whose dropout keys are ready for `num_linears` linears.
ActiveAdapter with_dropout_keys(const ActiveAdapter& adapter, int num_linears);

// Every linear the adapters wrap: all projections of every layer, never lm_head (spec §1.3).
std::vector<std::string> adapted_linears(const ModelConfig& c);

std::string lora_a_name(const std::string& linear, const std::string& adapter);
std::string lora_b_name(const std::string& linear, const std::string& adapter);

// A fresh adapter: A Kaiming-uniform (a = √5, i.e. U(±1/√in), PEFT's default), B zeros.
Params init_adapter(const ModelConfig& c, const std::string& name, const LoraConfig& lora,
                    uint64_t seed, mx::Dtype dtype);

// x·Wᵀ (+ bias) (+ the active adapter's low-rank term). `index` picks this linear's dropout key.
mx::array lora_linear(const ParamView& p, const std::string& linear, const mx::array& x, const ActiveAdapter& adapter,
                      int index);

}  // namespace clara
