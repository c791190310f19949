// Model FLOPs of a Llama-family LoRA training step, counted from shapes, for the "fraction of
// the matmul peak" figures. Matmuls only (2 FLOPs per multiply-add); attention scores counted
// over the full L×L square because MLX computes it whole. A frozen base needs the forward and
// the backward pass for activations (2× forward); LoRA matrices also get weight gradients (3×).

import type { ModelConfig } from "../lib";

export interface FlopCount {
  forward: number;
  training: number;
}

export function llamaFlops(c: ModelConfig, batch: number, seq: number, loraRank: number): FlopCount {
  const D = c.head_dim;
  const H = c.hidden_size;
  const perLayerLinear = H * c.num_attention_heads * D * 2 + H * c.num_key_value_heads * D * 2 + 3 * H * c.intermediate_size;
  const perLayerLora =
    loraRank *
    (2 * (H + c.num_attention_heads * D) + 2 * (H + c.num_key_value_heads * D) + 3 * (H + c.intermediate_size));
  const tokens = batch * seq;
  const linear = 2 * tokens * (c.num_hidden_layers * perLayerLinear + c.vocab_size * H);
  const attention = c.num_hidden_layers * batch * 4 * c.num_attention_heads * D * seq * seq;
  const lora = 2 * tokens * c.num_hidden_layers * perLayerLora;
  const forward = linear + attention + lora;
  return { forward, training: 2 * (linear + attention) + 3 * lora };
}
