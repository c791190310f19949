// The generator's input (spec §1.5): a chat-templated prompt whose memory placeholders — per
// document n <MEM> tokens then <SEP> — get their input embeddings overwritten by compressed
// vectors, document j of row b filling the j-th slot after the row's first <MEM0>.
// Shapes: B prompts, L tokens, k documents per prompt, n memory tokens, H hidden.
#pragma once

#include "model/model.h"

namespace clara {

// token_embeddings [B, L, H], ids [B, L] (evaluated), compressed [B·k, n, H] -> [B, L, H].
// Gradients flow into `compressed` (and so into the compressor in stages 1–2).
mx::array fill_memory_slots(const mx::array& token_embeddings, mx::array ids, const mx::array& compressed, int mem0_id,
                            int n_mem, int k);

}  // namespace clara
