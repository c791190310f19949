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

}  // namespace clara
