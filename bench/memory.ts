// The memory a CLaRa training step needs, summed from shapes, to set beside MLX's peak-memory
// counter: frozen weights + appended vocabulary rows + every adapter + gradients and AdamW's m
// and v for the trained tensors + an activation estimate. All in the compute dtype's bytes.

import type { ModelConfig } from "../lib";
import { attentionPairs, type DecoderPass } from "./flops";

export interface MemoryEstimate {
  frozenWeights: number;
  extensionRows: number;
  adapters: number;
  gradients: number;
  adamState: number;
  activations: number;
  total: number;
}

/** Base parameters (embedding, head when untied, every layer's linears and norms, final norm). */
export function baseParameterCount(c: ModelConfig): number {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const perLayer = H * q * 2 + H * kv * 2 + 3 * H * c.intermediate_size + 2 * H;
  return c.vocab_size * H * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * perLayer + H;
}

/** Parameters of one adapter: r·(in + out) for each of the 7 linears of every layer. */
export function adapterParameterCount(c: ModelConfig, rank: number): number {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  return c.num_hidden_layers * rank * (2 * (H + q) + 2 * (H + kv) + 3 * (H + c.intermediate_size));
}

/**
 * What reverse-mode autodiff keeps alive until the backward pass reaches it, per layer and
 * token, in elements (dropout on: each LoRA input is a fresh masked copy):
 *   attention block: the norm's input and output (2H), three dropped copies for q/k/v (3H),
 *   q and k before and after RoPE and v (2q + 3kv), the attention output and its dropped copy
 *   for o_proj (2q), four rank-r LoRA middles (4r);
 *   MLP block: the norm's input and output (2H), dropped copies for gate/up (2H) and down (I),
 *   gate, up, sigmoid, SiLU and the product (5I), three LoRA middles (3r).
 * MLX's CPU attention materialises scores and probabilities (2 × heads × the pairs of
 * attentionPairs per sequence and layer). The head keeps the logits and the softmax of the supervised rows. A pass
 * without backward (stage 3's frozen compressor) frees each layer's intermediates once the next
 * layer has consumed them: it holds its output hidden states plus one layer's largest working
 * set, the residual and norm (2H), gate, up and their product (3I), and the scores and
 * probabilities.
 */
export function activationElements(c: ModelConfig, pass: DecoderPass, rank: number): number {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const I = c.intermediate_size;
  const perTokenLayer = 9 * H + 4 * q + 3 * kv + 6 * I + 7 * rank;
  const attention = 2 * c.num_attention_heads * attentionPairs(pass.seq) * pass.sequences;
  const tokens = pass.sequences * pass.seq;
  const held = pass.backward ? c.num_hidden_layers * (tokens * perTokenLayer + attention) : tokens * (2 * H + 3 * I) + attention;
  return held + tokens * H + 2 * pass.headRows * pass.headWidth;
}

export function claraMemoryEstimate(
  c: ModelConfig,
  o: { passes: DecoderPass[]; rank: number; adapters: number; extensionRows: number; trainableParameters: number; bytesPerElement: number },
): MemoryEstimate {
  const b = o.bytesPerElement;
  const e: Omit<MemoryEstimate, "total"> = {
    frozenWeights: baseParameterCount(c) * b,
    extensionRows: o.extensionRows * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) * b,
    adapters: o.adapters * adapterParameterCount(c, o.rank) * b,
    gradients: o.trainableParameters * b,
    adamState: 2 * o.trainableParameters * b,
    activations: o.passes.reduce((a, p) => a + activationElements(c, p, o.rank), 0) * b,
  };
  return { ...e, total: Object.values(e).reduce((a, v) => a + v, 0) };
}
