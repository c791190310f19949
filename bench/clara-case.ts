// The case folder bench:clara writes for its peers (bench/peers/mlx_clara_step.py and
// torch_clara_step.py): one (stage, ρ) step, described so that another framework can rebuild
// exactly our forward pass and check its loss against ours before it times anything.
//
//   meta.json   the stage, shapes, conventions and our no-dropout loss on this batch
//   batch.npz   the NativeStageBatch tensors, as our trainer gives them to native code
//   params.npz  every tensor that is not in the base model file: the LoRA a/b of each adapter
//               and the appended vocabulary rows (names as Model.parameters() gives them)

import * as fs from "node:fs";
import * as path from "node:path";
import { Stage1Trainer, Stage2Trainer, Stage3Trainer, type ClaraModel, type EndToEndRecord, type InstructionRecord, type PretrainRecord, type StageOptions, type Tensor } from "../lib";
import { writeNpz } from "../lib/io";
import { ADAPTERS } from "../lib/model";
import { tensor } from "../lib/runtime";
import { Random } from "../lib/data/random";
import type { StagePlan } from "../lib/trainers/trainer";
// The addon's own argument types: the case is the native call's input, written out.
import type { NamedTensor, NativeClaraSpec, NativeStageBatch } from "../lib/native";

export const CASE_NOTES = [
  "Parameter names: <linear>.lora.<adapter>.a is lora_a [in, r], <linear>.lora.<adapter>.b is lora_b [r, out], where <linear> is " +
    "model.layers.<i>.self_attn.{q,k,v,o}_proj or model.layers.<i>.mlp.{gate,up,down}_proj (all 7 linears of every layer, never lm_head). " +
    "y = x W^T (+ bias) + (alpha/rank) * (dropout(x) @ lora_a) @ lora_b, with an independent dropout mask per linear. Exactly one adapter is active per pass.",
  "Appended vocabulary: ids baseVocab .. baseVocab+nMem-1 are <MEM0..>, then <AE>, <ENC>, <SEP>. Their input embeddings are " +
    "concat(clara.mem_embeddings [nMem, H], clara.special_embeddings [3, H]). The output head is [embed_tokens; those rows] when the base ties " +
    "embeddings, else [lm_head; clara.lm_head_rows [nMem+3, H]]. The head rows count in the CE softmax.",
  "Encoder rows (docs_ids, query_ids, candidates_ids) are left-padded <ENC><bos>text<eos> followed by the nMem memory tokens, so the memory " +
    "positions are the LAST nMem positions of every row. The compressed document is the post-final-RMSNorm hidden state at those positions [rows, nMem, H].",
  "Attention: causal, and a key is visible when its *_valid flag is 1 or it is the query position itself. RoPE positions are 0..L-1 along the padded row " +
    "(no shift for left padding), as mlx-lm computes them for an unpadded call. Encoder batches leave out the padding columns every row shares and " +
    "our RoPE positions start after them; RoPE depends on relative positions only, so 0..L-1 gives the same values to rounding.",
  "MSE (stages 1-2, weight mseWeight): mean over [rows, H] of (mean of hidden over valid non-memory positions - mean of hidden over memory positions)^2.",
  "Generator prompt: token embeddings, except that the k slots starting at the first <MEM0> (mem0Id) of each row take the compressed documents: slot j covers " +
    "positions p + j*(nMem+1) .. p + j*(nMem+1) + nMem - 1 and takes compressed row b*k + j; the <SEP> after each slot keeps its embedding.",
  "CE: prompt_loss_mask[b, t] = 1 means the hidden state at t-1 predicts prompt_ids[b, t]; the loss is the mean over those positions (t >= 1).",
  "Stage 3: query rows go through the query_reasoner adapter (with gradient), candidate rows [B*N] through the compressor under stop_gradient " +
    "(its dropout is on in training). scores = cosine(flatten(q) [B, nMem*H], flatten(docs) [B, N, nMem*H]) in float32; W = differentiable top-k " +
    "(s = scores/tau; for j < k: soft_j = softmax(s + log(1 - stop_gradient(taken) + 1e-8)); hard_j = one-hot of the j-th largest score (stable order); " +
    "taken += hard_j; W = hard + soft - stop_gradient(soft)) [B, k, N]; selected = W @ docs -> [B*k, nMem, H] fills the k slots in rank order. Loss = CE only.",
  "Stage 1-2 loss = CE + mseWeight * MSE; the compressor pass uses the compressor adapter, the generator pass the generator adapter, in one graph.",
  "Training: AdamW (bias-corrected, PyTorch semantics) at a constant lr, global-norm clipping at maxGradNorm, LoRA dropout on. 'trainable' lists " +
    "adapter names (every lora a/b of that adapter) and exact parameter names (clara.mem_embeddings).",
  "expected is our loss with dropout off (evalLosses) on this batch with params.npz, before any update; a peer must match it within 1e-3 relative.",
];

export interface CaseMeta {
  stage: 1 | 2 | 3;
  model: string;
  dtype: "float32";
  compressionRate: number;
  docMaxLength: number;
  nMem: number;
  k: number;
  numCandidates?: number;
  mem0Id: number;
  baseVocab: number;
  memRows: number;
  tieWordEmbeddings: boolean;
  padId: number;
  mseWeight: number;
  tau: number;
  lora: { rank: number; alpha: number; dropout: number };
  adapters: { compressor: string; generator: string; queryReasoner: string };
  trainable: string[];
  lr: number;
  adamw: { beta1: number; beta2: number; eps: number; weightDecay: number };
  maxGradNorm: number;
  steps: number;
  warmup: number;
  expected: { loss: number; ce: number; mse: number | null };
  notes: string[];
}

/** The batch tensors under the names the peers read. */
export function batchEntries(batch: NativeStageBatch): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const put = (prefix: string, b: NativeStageBatch["prompt"] | undefined) => {
    if (!b) return;
    out.set(`${prefix}_ids`, b.ids);
    if (b.keyValid) out.set(`${prefix}_valid`, b.keyValid);
    if (b.lossMask) out.set(`${prefix}_loss_mask`, b.lossMask);
  };
  put("docs", batch.docs);
  put("query", batch.query);
  put("candidates", batch.candidates);
  put("prompt", batch.prompt);
  return out;
}

export function writeCase(dir: string, meta: CaseMeta, batch: NativeStageBatch, params: NamedTensor[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
  writeNpz(path.join(dir, "batch.npz"), batchEntries(batch));
  writeNpz(path.join(dir, "params.npz"), new Map(params));
}

// ---------------------------------------------------------------------------------------
// Building a case from a stage trainer: shared by bench:clara and the golden files
// (__tests__/oracle/golden-cases.ts).

// The trainers' plans are protected: these expose the batch each trainer builds for training.
class PlannedStage1 extends Stage1Trainer {
  override plan() {
    return super.plan();
  }
}
class PlannedStage2 extends Stage2Trainer {
  override plan() {
    return super.plan();
  }
}
class PlannedStage3 extends Stage3Trainer {
  override plan() {
    return super.plan();
  }
}

export interface PlannedTrainer {
  plan(): Promise<StagePlan<unknown>>;
  run: Stage1Trainer["run"];
  config: Stage1Trainer["config"];
}

/** The stage's trainer on `clara` over `records`, with its plan callable. */
export function plannedTrainer(stage: 1 | 2 | 3, clara: ClaraModel, records: unknown[], options: StageOptions & { k?: number }): PlannedTrainer {
  const t =
    stage === 1
      ? new PlannedStage1(clara, records as PretrainRecord[], options)
      : stage === 2
        ? new PlannedStage2(clara, records as InstructionRecord[], options)
        : new PlannedStage3(clara, records as EndToEndRecord[], options);
  return t as unknown as PlannedTrainer;
}

/** Seeded values in ±scale for every lora_b: fresh adapters have B = 0, which hides the LoRA path (every lora_a gradient is 0). */
export async function perturbLoraB(clara: ClaraModel, seed: number, scale: number): Promise<void> {
  const rng = new Random(seed);
  const entries: NamedTensor[] = [];
  for (const [name, t] of await clara.model.parameters()) {
    if (!/\.lora\.[^.]+\.b$/.test(name)) continue;
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = (rng.float() * 2 - 1) * scale;
    entries.push([name, tensor("float32", t.shape, data)]);
  }
  await clara.model.setParameters(entries);
}

/** The fields of a case that describe the model, the stage and its loss on `batch` (the rest is the caller's optimizer). */
export function stageCaseFields(
  stage: 1 | 2 | 3,
  clara: ClaraModel,
  plan: StagePlan<unknown>,
  spec: NativeClaraSpec,
  batch: NativeStageBatch,
  expected: { loss: number; parts: Record<string, number> },
) {
  return {
    stage,
    dtype: "float32" as const,
    compressionRate: clara.compressionRate,
    docMaxLength: clara.docMaxLength,
    nMem: clara.nMem,
    k: plan.k,
    ...(stage === 3 ? { numCandidates: batch.numCandidates } : {}),
    mem0Id: spec.mem0Id,
    baseVocab: clara.templates.tokens.baseVocab,
    memRows: clara.nMem + 3,
    tieWordEmbeddings: clara.model.config.tie_word_embeddings,
    padId: clara.templates.padId,
    mseWeight: spec.mseWeight,
    tau: spec.tau,
    lora: clara.lora,
    adapters: { compressor: ADAPTERS.compressor, generator: ADAPTERS.generator, queryReasoner: ADAPTERS.queryReasoner },
    trainable: plan.trainable,
    expected: { loss: expected.loss, ce: expected.parts.ce, mse: expected.parts.mse ?? null },
    notes: CASE_NOTES,
  };
}
