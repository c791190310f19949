// The compressor (spec §1.4): <ENC> BOS doc EOS, left-padded to docMaxLength + 3, then the n
// memory tokens; the compressed document is the final-norm hidden states at those n positions.
// The query reasoner encodes questions the same way with its own adapter (spec §1.6).
// Shapes: B documents, L = docMaxLength + 3 + n, n memory tokens, H hidden.
#pragma once

#include "model/lora.h"
#include "model/model.h"

namespace clara {

struct EncoderBatch {
  mx::array ids;        // [B, L] int32; the last n columns are <MEM0>…<MEM{n-1}>
  mx::array key_valid;  // [B, L] bool; left padding is 0
  // Padding columns every row had and the batch left out (RoPE positions start after them): the
  // vectors are those of the full-width batch, without computing its all-padding columns.
  int position_offset;
};

struct Compressed {
  mx::array vectors;  // [B, n, H]
  mx::array mse;      // scalar: MSE between mean document-token and mean memory-token states
};

Compressed compress(const Model& model, const ParamView& p, const EncoderBatch& batch, int n_mem, const ActiveAdapter& adapter);

}  // namespace clara
