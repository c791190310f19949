#include "train/losses.h"

namespace clara {

MaskedLoss masked_cross_entropy(const mx::array& logits, const mx::array& targets, const mx::array& mask) {
  mx::array lse = mx::logsumexp(logits, -1);  // [B, L]
  mx::array picked = mx::squeeze(mx::take_along_axis(logits, mx::expand_dims(targets, -1), -1), -1);
  mx::array m = mx::astype(mask, logits.dtype());
  mx::array tokens = mx::sum(m);
  mx::array loss = mx::divide(mx::sum(mx::multiply(mx::subtract(lse, picked), m)), mx::maximum(tokens, mx::array(1.0f, logits.dtype())));
  return {loss, tokens};
}

mx::array mse_of_means(const mx::array& hidden, const mx::array& a_mask, const mx::array& b_mask) {
  auto masked_mean = [&](const mx::array& mask) {
    mx::array m = mx::expand_dims(mx::astype(mask, hidden.dtype()), -1);  // [B, L, 1]
    mx::array count = mx::maximum(mx::sum(m, 1), mx::array(1.0f, hidden.dtype()));
    return mx::divide(mx::sum(mx::multiply(hidden, m), 1), count);  // [B, H]
  };
  return mx::mean(mx::square(mx::subtract(masked_mean(a_mask), masked_mean(b_mask))));
}

}  // namespace clara
