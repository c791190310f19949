#include "common/params.h"

#include <algorithm>

#include "common/error.h"

namespace clara {

const mx::array* ParamView::find(const std::string& name) const {
  for (const Params* p : layers_) {
    auto it = p->find(name);
    if (it != p->end()) return &it->second;
  }
  return nullptr;
}

const mx::array& ParamView::at(const std::string& name) const {
  const mx::array* a = find(name);
  if (a == nullptr) throw Error("E_MODEL_TENSOR", "[model] missing tensor '" + name + "'", {"", name, 0});
  return *a;
}

ParamView::Split ParamView::split_under(const std::string& prefix) const {
  Split out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    bool last = i + 1 == layers_.size();
    for (const auto& [name, value] : *layers_[i]) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      if (find(name) != &value) continue;  // shadowed by an earlier map
      if (last) out.frozen.insert_or_assign(name, value);
      else out.tunable.emplace_back(name, value);
    }
  }
  std::sort(out.tunable.begin(), out.tunable.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace clara
