// A loaded model: config, frozen base weights, named LoRA adapters and any extra embedding
// rows. Plain data; every computation is a free function in llama/lora/generate.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/params.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/weights.h"

namespace clara {

class Model {
 public:
  Model(ModelConfig config, Params base, mx::Dtype dtype);
  static Model load(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype);

  const ModelConfig& config() const { return config_; }
  mx::Dtype dtype() const { return dtype_; }
  const Params& base() const { return base_; }
  // Trainable-kind parameters: adapters and extra embedding rows, by flat name.
  Params& extra() { return extra_; }
  const Params& extra() const { return extra_; }

  void add_adapter(const std::string& name, const LoraConfig& lora, uint64_t seed);
  // Copies every tensor of adapter `from` into a new adapter `to` (CLaRa's query reasoner
  // starts as a copy of the compressor, spec §1.3).
  void copy_adapter(const std::string& from, const std::string& to);
  void remove_adapter(const std::string& name);
  bool has_adapter(const std::string& name) const { return adapters_.count(name) > 0; }
  const LoraConfig& adapter_config(const std::string& name) const;
  std::vector<std::string> adapter_names() const;
  // Registers an adapter whose tensors were put into extra() by set_parameters.
  void declare_adapter(const std::string& name, const LoraConfig& lora) { adapters_[name] = lora; }

  // Training forwards recompute each decoder layer in the backward pass (see ActiveAdapter).
  void set_checkpoint_layers(bool on) { checkpoint_layers_ = on; }

  // The adapter for one forward call ("" = base model).
  ActiveAdapter active(const std::string& name, bool train, std::optional<mx::array> key = std::nullopt) const;

  // overrides (e.g. a traced function's inputs) win over extra(), which wins over base().
  ParamView view(const Params* overrides = nullptr) const;

  // Flat names of extra() under `prefix` (all when empty), sorted.
  std::vector<std::string> parameter_names(const std::string& prefix = "") const;
  // Trainable-kind parameters named by `patterns`: an exact name, a prefix ending in '.', or an
  // adapter name (every "….lora.<name>.…" tensor).
  std::vector<std::string> parameters_matching(const std::vector<std::string>& patterns) const;

  // The id of the first token appended to the vocabulary (CLaRa's memory tokens): the tokenizer's
  // length, which is below the embedding table's row count when the base pads its vocabulary
  // (Qwen). 0 until set.
  int vocab_extension_start() const { return vocab_extension_start_; }
  void set_vocab_extension_start(int id) { vocab_extension_start_ = id; }

 private:
  ModelConfig config_;
  Params base_;
  Params extra_;
  std::map<std::string, LoraConfig> adapters_;
  mx::Dtype dtype_;
  int vocab_extension_start_ = 0;
  bool checkpoint_layers_ = false;
};

}  // namespace clara
