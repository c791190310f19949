#include "train/grad.h"

namespace clara {

mx::array global_norm(const std::vector<mx::array>& grads) {
  mx::array total = mx::array(0.0f);
  for (const auto& g : grads) total = mx::add(total, mx::sum(mx::square(mx::astype(g, mx::float32))));
  return mx::sqrt(total);
}

std::vector<mx::array> clip_by_global_norm(const std::vector<mx::array>& grads, const mx::array& norm, float max_norm) {
  if (max_norm <= 0) return grads;
  mx::array factor = mx::minimum(mx::divide(mx::array(max_norm), mx::add(norm, mx::array(1e-6f))), mx::array(1.0f));
  std::vector<mx::array> out;
  out.reserve(grads.size());
  for (const auto& g : grads) out.push_back(mx::multiply(g, mx::astype(factor, g.dtype())));
  return out;
}

}  // namespace clara
