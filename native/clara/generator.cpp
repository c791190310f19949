#include "clara/generator.h"

#include <vector>

#include "common/error.h"

namespace clara {

mx::array fill_memory_slots(const mx::array& token_embeddings, mx::array ids, const mx::array& compressed, int mem0_id,
                            int n_mem, int k) {
  int B = ids.shape(0), L = ids.shape(1), H = token_embeddings.shape(2);
  if (compressed.shape(0) != B * k || compressed.shape(1) != n_mem) {
    invalid_argument("fill_memory_slots", "compressed must be [B·k, n, H] for " + std::to_string(B) + " prompts of k = " +
                                              std::to_string(k) + " documents");
  }
  // Which compressed row feeds each prompt position (-1: keep the token embedding). Slot j of
  // row b starts at p + j·(n+1): n memory positions, then the <SEP> that keeps its embedding.
  ids = mx::astype(ids, mx::int32);
  ids.eval();
  const int32_t* id = ids.data<int32_t>();
  std::vector<int32_t> source(static_cast<size_t>(B) * L, -1);
  for (int b = 0; b < B; ++b) {
    int p = -1;
    for (int t = 0; t < L; ++t) {
      if (id[b * L + t] == mem0_id) {
        p = t;
        break;
      }
    }
    if (p < 0) invalid_argument("fill_memory_slots", "prompt " + std::to_string(b) + " has no <MEM0> placeholder");
    if (p + k * (n_mem + 1) - 1 > L) invalid_argument("fill_memory_slots", "prompt " + std::to_string(b) + " is too short for its k slots");
    for (int j = 0; j < k; ++j) {
      for (int m = 0; m < n_mem; ++m) {
        source[static_cast<size_t>(b) * L + p + j * (n_mem + 1) + m] = (b * k + j) * n_mem + m;
      }
    }
  }
  mx::array src(source.data(), {B, L}, mx::int32);
  mx::array flat = mx::reshape(compressed, {B * k * n_mem, H});
  mx::array gathered = mx::take(flat, mx::maximum(src, mx::array(0)), 0);  // [B, L, H]
  return mx::where(mx::expand_dims(mx::greater_equal(src, mx::array(0)), -1), mx::astype(gathered, token_embeddings.dtype()),
                   token_embeddings);
}

}  // namespace clara
