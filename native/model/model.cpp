#include "model/model.h"

#include <algorithm>

#include "common/error.h"

namespace clara {

namespace {
bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
std::string adapter_marker(const std::string& name) {
  return ".lora." + name + ".";
}
}  // namespace

Model::Model(ModelConfig config, Params base, mx::Dtype dtype)
    : config_(std::move(config)), base_(std::move(base)), dtype_(dtype) {}

Model Model::load(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype) {
  return Model(config, load_weights(source, config, dtype), dtype);
}

void Model::add_adapter(const std::string& name, const LoraConfig& lora, uint64_t seed) {
  if (name.empty() || name.find('.') != std::string::npos) invalid_argument("adapter", "name must be non-empty and dot-free");
  if (has_adapter(name)) invalid_argument("adapter", "adapter '" + name + "' already exists");
  for (auto& [k, v] : init_adapter(config_, name, lora, seed, dtype_)) extra_.insert_or_assign(k, v);
  adapters_[name] = lora;
}

void Model::copy_adapter(const std::string& from, const std::string& to) {
  const LoraConfig& lora = adapter_config(from);
  if (has_adapter(to)) remove_adapter(to);
  std::string marker = adapter_marker(from);
  Params copies;
  for (const auto& [k, v] : extra_) {
    auto at = k.find(marker);
    if (at != std::string::npos) copies.insert_or_assign(k.substr(0, at) + adapter_marker(to) + k.substr(at + marker.size()), v);
  }
  for (auto& [k, v] : copies) extra_.insert_or_assign(k, v);
  adapters_[to] = lora;
}

void Model::remove_adapter(const std::string& name) {
  std::string marker = adapter_marker(name);
  for (auto it = extra_.begin(); it != extra_.end();) {
    it = it->first.find(marker) != std::string::npos ? extra_.erase(it) : std::next(it);
  }
  adapters_.erase(name);
}

const LoraConfig& Model::adapter_config(const std::string& name) const {
  auto it = adapters_.find(name);
  if (it == adapters_.end()) invalid_argument("adapter", "no adapter named '" + name + "'");
  return it->second;
}

std::vector<std::string> Model::adapter_names() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : adapters_) out.push_back(k);
  return out;
}

ActiveAdapter Model::active(const std::string& name, bool train, std::optional<mx::array> key) const {
  ActiveAdapter a;
  a.checkpoint_layers = train && checkpoint_layers_;
  if (name.empty()) return a;
  a.name = name;
  a.config = adapter_config(name);
  a.train = train;
  a.key = std::move(key);
  return a;
}

ParamView Model::view(const Params* overrides) const {
  if (overrides) return ParamView({overrides, &extra_, &base_});
  return ParamView({&extra_, &base_});
}

std::vector<std::string> Model::parameters_matching(const std::vector<std::string>& patterns) const {
  std::vector<std::string> names;
  for (const auto& n : parameter_names()) {
    for (const auto& p : patterns) {
      if (n == p || (!p.empty() && p.back() == '.' && starts_with(n, p)) || n.find(".lora." + p + ".") != std::string::npos) {
        names.push_back(n);
        break;
      }
    }
  }
  return names;
}

std::vector<std::string> Model::parameter_names(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& [k, _] : extra_) {
    if (starts_with(k, prefix)) out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace clara
