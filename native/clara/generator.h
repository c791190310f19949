// The generator's input (spec §1.5): a chat-templated prompt whose memory placeholders — per
// document n <MEM> tokens then <SEP> — get their input embeddings overwritten by compressed
// vectors, document j of row b filling the j-th slot after the row's first <MEM0>.
// Shapes: B prompts, L tokens, k documents per prompt, n memory tokens, H hidden.
#pragma once

#include "common/host_tensor.h"
#include "model/model.h"

namespace clara {

// Which compressed row feeds each prompt position: [B, L] int32, −1 where the token keeps its
// own embedding. Read from the prompt's ids on the host when the batch is made, so that
// filling the slots is part of the loss's graph and never waits on the device.
mx::array memory_slot_sources(const HostTensor& ids, int mem0_id, int n_mem, int k);

// token_embeddings [B, L, H], sources from memory_slot_sources, compressed [B·k, n, H] -> [B, L, H].
// Gradients flow into `compressed` (and so into the compressor in stages 1–2).
mx::array fill_memory_slots(const mx::array& token_embeddings, const mx::array& sources, const mx::array& compressed, int n_mem,
                            int k);

}  // namespace clara
