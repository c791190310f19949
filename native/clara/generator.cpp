#include "clara/generator.h"

#include <vector>

#include "common/error.h"

namespace clara {

mx::array memory_slot_sources(const HostTensor& ids, int mem0_id, int n_mem, int k) {
  if (ids.shape.size() != 2) invalid_argument("memory_slot_sources", "prompt ids must be [B, L]");
  int B = ids.shape[0], L = ids.shape[1];
  std::vector<int32_t> id = host_ints(ids);
  // Slot j of row b starts at p + j·(n+1): n memory positions, then the <SEP> that keeps its embedding.
  std::vector<int32_t> source(static_cast<size_t>(B) * L, -1);
  for (int b = 0; b < B; ++b) {
    int p = -1;
    for (int t = 0; t < L; ++t) {
      if (id[static_cast<size_t>(b) * L + t] == mem0_id) {
        p = t;
        break;
      }
    }
    if (p < 0) invalid_argument("memory_slot_sources", "prompt " + std::to_string(b) + " has no <MEM0> placeholder");
    if (p + k * (n_mem + 1) - 1 > L) invalid_argument("memory_slot_sources", "prompt " + std::to_string(b) + " is too short for its k slots");
    for (int j = 0; j < k; ++j) {
      for (int m = 0; m < n_mem; ++m) {
        source[static_cast<size_t>(b) * L + p + j * (n_mem + 1) + m] = (b * k + j) * n_mem + m;
      }
    }
  }
  return mx::array(source.data(), {B, L}, mx::int32);
}

mx::array fill_memory_slots(const mx::array& token_embeddings, const mx::array& sources, const mx::array& compressed, int n_mem,
                            int k) {
  int B = sources.shape(0), H = token_embeddings.shape(2);
  if (compressed.shape(0) != B * k || compressed.shape(1) != n_mem) {
    invalid_argument("fill_memory_slots", "compressed must be [B·k, n, H] for " + std::to_string(B) + " prompts of k = " +
                                              std::to_string(k) + " documents");
  }
  mx::array flat = mx::reshape(compressed, {B * k * n_mem, H});
  mx::array gathered = mx::take(flat, mx::maximum(sources, mx::array(0)), 0);  // [B, L, H]
  return mx::where(mx::expand_dims(mx::greater_equal(sources, mx::array(0)), -1), mx::astype(gathered, token_embeddings.dtype()),
                   token_embeddings);
}

}  // namespace clara
