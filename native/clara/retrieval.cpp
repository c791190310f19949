#include "clara/retrieval.h"

#include <algorithm>

#include "common/error.h"

namespace clara {

mx::array cosine_scores(const mx::array& q, const mx::array& docs) {
  // torch.nn.functional.normalize: x / max(‖x‖, 1e-12)
  auto normalize = [](const mx::array& x) {
    mx::array x32 = mx::astype(x, mx::float32);
    return mx::divide(x32, mx::maximum(mx::sqrt(mx::sum(mx::square(x32), -1, true)), mx::array(1e-12f)));
  };
  mx::array qn = mx::expand_dims(normalize(q), 1);  // [B, 1, D]
  return mx::squeeze(mx::matmul(qn, mx::swapaxes(normalize(docs), 1, 2)), 1);  // [B, N]
}

TopK differentiable_topk(const mx::array& scores, int k, float tau) {
  int B = scores.shape(0), N = scores.shape(1);
  if (k < 1 || k > N) invalid_argument("differentiable_topk", "k = " + std::to_string(k) + " must be in 1.." + std::to_string(N));
  mx::array s = mx::divide(mx::astype(scores, mx::float32), mx::array(std::max(tau, 1e-6f)));
  // Descending order; argsort is stable, so ties keep the lower index first.
  mx::array indices = mx::slice(mx::argsort(mx::negative(mx::stop_gradient(s)), -1), {0, 0}, {B, k});  // [B, k]
  mx::array positions = mx::reshape(mx::arange(N, mx::int32), {1, 1, N});
  mx::array hard = mx::astype(mx::equal(mx::expand_dims(mx::astype(indices, mx::int32), -1), positions), mx::float32);  // [B, k, N]
  mx::array taken = mx::zeros({B, N}, mx::float32);
  std::vector<mx::array> soft;
  for (int j = 0; j < k; ++j) {
    mx::array mask = mx::log(mx::add(mx::subtract(mx::array(1.0f), mx::stop_gradient(taken)), mx::array(1e-8f)));
    soft.push_back(mx::softmax(mx::add(s, mask), -1));
    mx::array hard_j = mx::squeeze(mx::slice(hard, {0, j, 0}, {B, j + 1, N}), 1);
    taken = mx::minimum(mx::add(taken, hard_j), mx::array(1.0f));
  }
  mx::array k_soft = mx::stack(soft, 1);  // [B, k, N]
  return {mx::add(hard, mx::subtract(k_soft, mx::stop_gradient(k_soft))), indices};
}

}  // namespace clara
