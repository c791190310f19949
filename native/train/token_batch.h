// A token batch as a loss takes it. What depends on the batch's values and not on the weights
// (which positions are supervised, by which token) is read once on the host when the batch is
// made, from the bytes that arrived. A loss over it is then one graph with no evaluation inside:
// no micro-batch waits on a copy back to the host, and the step can be compiled.
#pragma once

#include <optional>

#include "common/host_tensor.h"

namespace clara {

struct TokenBatch {
  mx::array ids;                       // [B, L] int32, left-padded
  std::optional<mx::array> key_valid;  // [B, L] bool, 1 = token, 0 = padding; nullopt = no padding
  mx::array target_rows;               // [M] int32: row b·L + t − 1 of the flattened [B·L] positions…
  mx::array targets;                   // [M] int32: …predicts ids[b, t], a supervised token
};

// ids [B, L] int32. key_valid and loss_mask [B, L] of an integer or bool dtype, or null (no
// padding; every position after the first supervised). loss_mask[b, t] = 1 makes ids[b, t] a
// target of position t − 1; column 0 has no predecessor and is never one.
TokenBatch make_token_batch(const HostTensor& ids, const HostTensor* key_valid, const HostTensor* loss_mask);

}  // namespace clara
