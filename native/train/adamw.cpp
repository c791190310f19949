#include "train/adamw.h"

#include <cmath>

#include "common/error.h"

namespace clara {

AdamWState adamw_init(const std::vector<mx::array>& params) {
  AdamWState s;
  for (const auto& p : params) {
    s.m.push_back(mx::zeros_like(p));
    s.v.push_back(mx::zeros_like(p));
  }
  return s;
}

// https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
std::vector<mx::array> adamw_update(const std::vector<mx::array>& params, const std::vector<mx::array>& grads,
                                    AdamWState& state, float lr, const AdamWConfig& c) {
  if (params.size() != grads.size() || params.size() != state.m.size()) {
    invalid_argument("adamw", "parameters, gradients and optimizer state differ in count");
  }
  state.step += 1;
  float bias1 = 1.0f - std::pow(c.beta1, static_cast<float>(state.step));
  float bias2 = 1.0f - std::pow(c.beta2, static_cast<float>(state.step));
  // lr·m̂/(√v̂+ε) with the corrections folded into two scalars.
  float step_size = lr / bias1;
  float root_bias2 = std::sqrt(bias2);
  std::vector<mx::array> out;
  out.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const mx::array& g = grads[i];
    mx::Dtype dt = params[i].dtype();
    state.m[i] = mx::add(mx::multiply(mx::array(c.beta1, dt), state.m[i]), mx::multiply(mx::array(1.0f - c.beta1, dt), g));
    state.v[i] = mx::add(mx::multiply(mx::array(c.beta2, dt), state.v[i]),
                         mx::multiply(mx::array(1.0f - c.beta2, dt), mx::square(g)));
    mx::array p = params[i];
    if (c.weight_decay != 0) p = mx::multiply(p, mx::array(1.0f - lr * c.weight_decay, dt));
    mx::array denom = mx::add(mx::divide(mx::sqrt(state.v[i]), mx::array(root_bias2, dt)), mx::array(c.eps, dt));
    out.push_back(mx::subtract(p, mx::multiply(mx::array(step_size, dt), mx::divide(state.m[i], denom))));
  }
  return out;
}

}  // namespace clara
