// Model FLOPs of a Llama-family LoRA training step, counted from shapes, for the "fraction of
// the matmul peak" figures. Matmuls only (2 FLOPs per multiply-add); attention scores counted
// over the (query, key) pairs our attention computes (attentionPairs). A frozen base needs the forward and
// the backward pass for activations (2× forward); LoRA matrices also get weight gradients (3×).

import type { ModelConfig } from "../lib";

export interface FlopCount {
  forward: number;
  training: number;
}

/** One run of the decoder stack over `sequences` rows of `seq` tokens (padding included: MLX computes it). */
export interface DecoderPass {
  sequences: number;
  seq: number;
  /** Rows that go through the output head: every token for a plain LM step, the supervised ones for CLaRa, 0 for a compressor. */
  headRows: number;
  /** Output rows of the head: the base vocabulary plus any appended rows. */
  headWidth: number;
  /** Whether gradients flow back through this pass (false: a frozen compressor under stop_gradient). */
  backward: boolean;
}

/**
 * (query, key) pairs scored per sequence and head. native/model/llama.cpp runs sequences of 256+
 * tokens in even query blocks of at most 128, block [s, e) against keys [0, e); shorter ones
 * score the full L×L square (as MLX's CPU attention does for any length).
 */
export function attentionPairs(seq: number): number {
  const QUERY_BLOCK = 128;
  if (seq < 2 * QUERY_BLOCK) return seq * seq;
  const blocks = Math.ceil(seq / QUERY_BLOCK);
  const size = Math.ceil(seq / blocks);
  let pairs = 0;
  for (let s = 0; s < seq; s += size) {
    const e = Math.min(seq, s + size);
    pairs += (e - s) * e;
  }
  return pairs;
}

export function passFlops(c: ModelConfig, pass: DecoderPass, loraRank: number): FlopCount {
  const D = c.head_dim;
  const H = c.hidden_size;
  const perLayerLinear = H * c.num_attention_heads * D * 2 + H * c.num_key_value_heads * D * 2 + 3 * H * c.intermediate_size;
  const perLayerLora =
    loraRank *
    (2 * (H + c.num_attention_heads * D) + 2 * (H + c.num_key_value_heads * D) + 3 * (H + c.intermediate_size));
  const tokens = pass.sequences * pass.seq;
  const linear = 2 * tokens * c.num_hidden_layers * perLayerLinear + 2 * pass.headRows * pass.headWidth * H;
  const attention = c.num_hidden_layers * pass.sequences * 4 * c.num_attention_heads * D * attentionPairs(pass.seq);
  const lora = 2 * tokens * c.num_hidden_layers * perLayerLora;
  const forward = linear + attention + lora;
  return { forward, training: pass.backward ? 2 * (linear + attention) + 3 * lora : forward };
}

export function llamaFlops(c: ModelConfig, batch: number, seq: number, loraRank: number): FlopCount {
  return passFlops(c, { sequences: batch, seq, headRows: batch * seq, headWidth: c.vocab_size, backward: true }, loraRank);
}

/**
 * A CLaRa stage step: the compressor (or query reasoner) passes and the generator pass, summed.
 * Every pass keeps one adapter active, so LoRA FLOPs count once per pass. The output head only
 * runs on the generator's supervised rows (the loss picks them before the head), over the base
 * vocabulary plus the appended memory and special rows.
 */
export function claraStageFlops(c: ModelConfig, passes: DecoderPass[], loraRank: number): FlopCount & { perPass: FlopCount[] } {
  const perPass = passes.map((p) => passFlops(c, p, loraRank));
  return {
    forward: perPass.reduce((a, f) => a + f.forward, 0),
    training: perPass.reduce((a, f) => a + f.training, 0),
    perPass,
  };
}
