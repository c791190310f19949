// Parameters are flat dotted names -> arrays, as mlx-lm's tree_flatten spells them
// ("model.layers.3.self_attn.q_proj.weight", "model.layers.3.self_attn.q_proj.lora.generator.a").
// A ParamView stacks several maps so a traced function can override trainable entries without
// copying the frozen base.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

using Params = std::unordered_map<std::string, mx::array>;

class ParamView {
 public:
  ParamView() = default;
  // Earlier maps win: {overrides, adapters, base}.
  explicit ParamView(std::vector<const Params*> layers) : layers_(std::move(layers)) {}

  const mx::array* find(const std::string& name) const;
  // Throws clara::Error E_MODEL_TENSOR naming the missing key.
  const mx::array& at(const std::string& name) const;

  // Every name under `prefix` with its winning value, split by where that value is held: the
  // last map (Model::view puts the frozen base there) or one above it (overrides and adapters,
  // which a gradient may reach). Sorted by name.
  struct Split {
    Params frozen;
    std::vector<std::pair<std::string, mx::array>> tunable;
  };
  Split split_under(const std::string& prefix) const;

 private:
  std::vector<const Params*> layers_;
};

}  // namespace clara
