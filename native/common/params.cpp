#include "common/params.h"

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

}  // namespace clara
