#include "train/token_batch.h"

#include <vector>

#include "common/error.h"

namespace clara {

namespace {

mx::array int_vector(const std::vector<int32_t>& v) {
  if (v.empty()) return mx::zeros({0}, mx::int32);
  return mx::array(v.data(), {static_cast<int>(v.size())}, mx::int32);
}

}  // namespace

TokenBatch make_token_batch(const HostTensor& ids, const HostTensor* key_valid, const HostTensor* loss_mask) {
  if (ids.dtype != mx::int32 || ids.shape.size() != 2) invalid_argument("make_token_batch", "ids must be an int32 [B, L] tensor");
  for (const HostTensor* t : {key_valid, loss_mask}) {
    if (t && t->shape != ids.shape) invalid_argument("make_token_batch", "masks must have the shape of ids");
  }
  int B = ids.shape[0], L = ids.shape[1];
  std::vector<int32_t> id = host_ints(ids);
  std::vector<int32_t> mask = loss_mask ? host_ints(*loss_mask) : std::vector<int32_t>(id.size(), 1);
  std::vector<int32_t> rows, targets;
  for (int b = 0; b < B; ++b) {
    for (int t = 1; t < L; ++t) {
      if (mask[static_cast<size_t>(b) * L + t]) {
        rows.push_back(b * L + t - 1);
        targets.push_back(id[static_cast<size_t>(b) * L + t]);
      }
    }
  }
  std::optional<mx::array> valid;
  if (key_valid) valid = mx::astype(to_array(*key_valid), mx::bool_);
  return {to_array(ids), valid, int_vector(rows), int_vector(targets)};
}

}  // namespace clara
