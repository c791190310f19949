// Apple's released CLaRa checkpoints (apple/CLaRa-7B-{Base,Instruct,E2E}, each in
// compression-16 and compression-128 folders) read natively: config.json (the CLaRaConfig),
// adapters.pth ({adapter_name: PEFT state dict}) and decoder_first_last_layers.pth (the resized
// embed_tokens and lm_head), mapped onto this package's layout (spec §1.2, §1.3, §1.7):
//
//   encoder_adapter / decoder_adapter / query_reasoner_adapter → compressor / generator / query_reasoner
//   <linear>.lora_A.weight [r, in] → <linear>.lora.<ours>.a = Aᵀ [in, r]
//   <linear>.lora_B.weight [out, r] → <linear>.lora.<ours>.b = Bᵀ [r, out]; scale α/r, α = lora_alpha ?? 2·lora_r
//   embed_tokens rows V..V+n-1 → clara.mem_embeddings, rows V+n..V+n+2 (<AE>, <ENC>, <SEP>) → clara.special_embeddings
//   lm_head rows V..V+n+2 → clara.lm_head_rows (untied bases, Mistral among them)
//
// Every adapter in the file is kept: the reference's pure_inference loading, which its
// evaluation uses (without it, CLaRa-7B-Instruct silently runs a fresh generator). A stage-3
// checkpoint without a query reasoner gets a copy of the compressor, as the reference does.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import { writeCheckpoint, type CheckpointMetadata, type Stage } from "../io/checkpoint";
import { PthArchive, PthTensor, asStateDict } from "../io/pth";
import type { ModelConfig } from "../model/config";
import { locateModel, type ModelFiles } from "../model/files";
import { Model, modelFingerprint, type ComputeDType } from "../model/model";
import { resolveQuantization, type QuantizeOption } from "../model/quantization";
import { Tokenizer } from "../tokenizer";
import type { NamedTensor, NativeAdapterInfo } from "../native";
import { bfloat16ToFloat32, float16ToFloat32, type Tensor } from "../tensor";
import { ADAPTERS, ClaraModel } from "./clara-model";
import { memoryTokenCount, TEMPLATE_VERSION, type LoraOptions } from "./config";

export const REFERENCE_FILES = {
  config: "config.json",
  adapters: "adapters.pth",
  embeddings: "decoder_first_last_layers.pth",
} as const;

/** The reference's adapter names → ours. */
export const REFERENCE_ADAPTERS: Readonly<Record<string, string>> = {
  encoder_adapter: ADAPTERS.compressor,
  decoder_adapter: ADAPTERS.generator,
  query_reasoner_adapter: ADAPTERS.queryReasoner,
};

/** The reference's training_stage codes → our stages (spec §2: stage1, stage1_2, stage2). */
export const REFERENCE_STAGES: Readonly<Record<string, Stage>> = { stage1: "stage1", stage1_2: "stage2", stage2: "stage3" };

const PROJECTIONS: Record<string, "self_attn" | "mlp"> = {
  q_proj: "self_attn",
  k_proj: "self_attn",
  v_proj: "self_attn",
  o_proj: "self_attn",
  gate_proj: "mlp",
  up_proj: "mlp",
  down_proj: "mlp",
};

export interface ReferenceConfig {
  folder: string;
  compressionRate: number;
  docMaxLength: number;
  /** n = doc_max_length / compr_rate memory tokens. */
  nMem: number;
  lora: LoraOptions;
  /** The reference's code: stage1, stage1_2 or stage2. */
  trainingStage: string;
  stage: Stage;
  decoderModelName?: string;
  generationTopK?: number;
  /** A <KBTC> row follows <SEP> in the embeddings (kbtc_training; never used at inference). */
  kbtc: boolean;
  raw: Record<string, unknown>;
}

export interface ReferenceLoadOptions {
  /** The base model folder (Mistral-7B-Instruct-v0.2 for Apple's checkpoints). */
  basePath: string;
  dtype?: ComputeDType;
  /** How the base's projections are held: { bits: 4 } puts CLaRa-7B in about 4 GB of weights. */
  quantize?: QuantizeOption;
  /**
   * Compare sampled rows [0, V) of the checkpoint's embed_tokens / lm_head with the base
   * model's (default true): a checkpoint made on another base is refused, not run.
   */
  checkBase?: boolean;
  /** Receives notes (an uncovered linear, a skipped check); default: none. */
  onWarning?: (message: string) => void;
}

export interface ReferenceWeights {
  config: ReferenceConfig;
  entries: NamedTensor[];
  adapters: NativeAdapterInfo[];
  /** The reference adapter names found, in file order. */
  sourceAdapters: string[];
  warnings: string[];
}

function refError(file: string, message: string, field?: string, code: "E_CHECKPOINT" | "E_CHECKPOINT_MISMATCH" = "E_CHECKPOINT"): ClaraError {
  return new ClaraError(code, `${file}: ${message}`, { file, field });
}

function positiveInt(raw: Record<string, unknown>, key: string, file: string): number {
  const v = raw[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw refError(file, `${key} must be a positive integer (got ${JSON.stringify(v)})`, key);
  return v;
}

/** Reads and checks a reference folder's config.json. */
export function readReferenceConfig(folder: string): ReferenceConfig {
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
    throw new ClaraError(
      "E_CHECKPOINT",
      `${folder} is not a folder; pass a CLaRa checkpoint folder such as CLaRa-7B-Instruct/compression-16 (config.json, adapters.pth, decoder_first_last_layers.pth)`,
      { file: folder },
    );
  }
  const file = path.join(folder, REFERENCE_FILES.config);
  if (!fs.existsSync(file)) throw refError(file, "is missing; a CLaRa checkpoint folder holds config.json, adapters.pth and decoder_first_last_layers.pth");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ClaraError("E_CHECKPOINT", `${file} is not valid JSON: ${(e as Error).message}`, { file, cause: e });
  }
  if (typeof raw !== "object" || raw === null) throw refError(file, "does not hold a JSON object");
  if (raw.lora !== true) throw refError(file, "has lora != true: only LoRA checkpoints (all of Apple's) are supported", "lora");
  if (raw.different_mem_tokens === false) {
    throw refError(file, "has different_mem_tokens = false (one shared <MEM> token); this package implements the distinct <MEM0>…<MEM{n-1}> layout", "different_mem_tokens");
  }
  if (raw.sep === false) throw refError(file, "has sep = false; this package's generator layout puts <SEP> after every document slot (sep = true)", "sep");
  const compressionRate = positiveInt(raw, "compr_rate", file);
  const docMaxLength = positiveInt(raw, "doc_max_length", file);
  const nMem = memoryTokenCount({ compressionRate, docMaxLength });
  const rank = raw.lora_r === undefined ? 16 : positiveInt(raw, "lora_r", file);
  const alphaRaw = raw.lora_alpha ?? 2 * rank; // the reference's LoraConfig: lora_alpha = 2·lora_r
  if (typeof alphaRaw !== "number" || !(alphaRaw > 0)) throw refError(file, `lora_alpha must be a positive number (got ${JSON.stringify(alphaRaw)})`, "lora_alpha");
  const dropout = typeof raw.lora_dropout === "number" ? raw.lora_dropout : 0.1;
  const trainingStage = typeof raw.training_stage === "string" ? raw.training_stage : "";
  const stage = REFERENCE_STAGES[trainingStage];
  if (!stage) {
    throw refError(
      file,
      `training_stage '${trainingStage}' has no counterpart here (expected ${Object.keys(REFERENCE_STAGES).join(", ")})`,
      "training_stage",
    );
  }
  return {
    folder,
    compressionRate,
    docMaxLength,
    nMem,
    lora: { rank, alpha: alphaRaw, dropout },
    trainingStage,
    stage,
    decoderModelName: typeof raw.decoder_model_name === "string" ? raw.decoder_model_name : undefined,
    generationTopK: typeof raw.generation_top_k === "number" ? raw.generation_top_k : undefined,
    kbtc: raw.kbtc_training === true,
    raw,
  };
}

/** A PEFT key → [our linear name, "A" | "B"], or undefined when it is no LoRA weight. */
export function parsePeftKey(key: string, adapter: string): { linear: string; part: "A" | "B" } | undefined {
  let k = key;
  for (const prefix of ["base_model.model.", "base_model."]) if (k.startsWith(prefix)) k = k.slice(prefix.length);
  // PEFT keeps the adapter name in module paths (lora_A.<adapter>.weight); get_peft_model_state_dict drops it.
  k = k.replace(`.lora_A.${adapter}.`, ".lora_A.").replace(`.lora_B.${adapter}.`, ".lora_B.");
  const m = /^(?:model\.)?(?:model\.)?layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_(A|B)\.weight$/.exec(k);
  if (!m || PROJECTIONS[m[3]] !== m[2]) return undefined;
  return { linear: `model.layers.${m[1]}.${m[2]}.${m[3]}`, part: m[4] as "A" | "B" };
}

/** [in, out] of each adapted linear of the base. */
function linearShapes(c: ModelConfig): Record<string, [number, number]> {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const I = c.intermediate_size;
  return { q_proj: [H, q], k_proj: [H, kv], v_proj: [H, kv], o_proj: [q, H], gate_proj: [H, I], up_proj: [H, I], down_proj: [I, H] };
}

/** A full embedding or output table that PEFT saved inside an adapter's dict. */
interface TableCopy {
  adapter: string;
  key: string;
  table: "embed_tokens.weight" | "lm_head.weight";
}

function embeddingTableOf(key: string): TableCopy["table"] | undefined {
  if (key === "embed_tokens.weight" || key.endsWith(".embed_tokens.weight")) return "embed_tokens.weight";
  if (key === "lm_head.weight" || key.endsWith(".lm_head.weight")) return "lm_head.weight";
  return undefined;
}

/**
 * Checks that every table copy in adapters.pth equals the table of decoder_first_last_layers.pth
 * bit for bit, a block of rows at a time (a 7B table is ~250 MB: never two whole copies in memory).
 */
function checkTableCopies(adaptersFile: string, embeddingsFile: string, copies: TableCopy[], tied: boolean): void {
  if (copies.length === 0) return;
  const adapters = PthArchive.open(adaptersFile);
  const tables = PthArchive.open(embeddingsFile);
  try {
    const state = tables.stateDict();
    const find = (table: string) => [...state.entries()].find(([k]) => k === table || k.endsWith(`.${table}`))?.[1];
    for (const copy of copies) {
      const t = asStateDict((adapters.root as Map<string, unknown>).get(copy.adapter), `${adaptersFile} (${copy.adapter})`).get(copy.key)!;
      // A tied base's decoder_first_last_layers.pth may hold no separate lm_head: the embedding is the head.
      const ref = find(copy.table) ?? (tied && copy.table === "lm_head.weight" ? find("embed_tokens.weight") : undefined);
      const where = `adapter ${copy.adapter} holds '${copy.key}'`;
      if (!ref) throw refError(adaptersFile, `${where}, but ${embeddingsFile} has no ${copy.table} to check it against`, copy.key);
      if (t.dtype !== ref.dtype || t.shape.join(",") !== ref.shape.join(",")) {
        throw refError(
          adaptersFile,
          `${where} as ${t.dtype} [${t.shape.join(", ")}], but ${embeddingsFile} has ${ref.dtype} [${ref.shape.join(", ")}]: the two files are not from one save`,
          copy.key,
          "E_CHECKPOINT_MISMATCH",
        );
      }
      const block = Math.max(1, Math.floor((1 << 22) / Math.max(1, t.numel / Math.max(1, t.shape[0]))));
      for (let row = 0; row < t.shape[0]; row += block) {
        const count = Math.min(block, t.shape[0] - row);
        const a = t.narrow(row, count).load().data;
        const b = ref.narrow(row, count).load().data;
        if (!bytesEqual(a, b)) {
          throw refError(
            adaptersFile,
            `${where}, which differs from ${copy.table} in ${embeddingsFile} (from row ${row}): the two files are not from one save; ` +
              "re-save the checkpoint or use the decoder_first_last_layers.pth written with these adapters",
            copy.key,
            "E_CHECKPOINT_MISMATCH",
          );
        }
      }
    }
  } finally {
    adapters.close();
    tables.close();
  }
}

function bytesEqual(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** adapters.pth → our LoRA entries (Aᵀ, Bᵀ) for every adapter it holds. */
export function mapReferenceAdapters(
  file: string,
  config: ReferenceConfig,
  base: ModelConfig,
  warn: (m: string) => void = () => {},
): { entries: NamedTensor[]; adapters: NativeAdapterInfo[]; sourceAdapters: string[]; tableCopies: TableCopy[] } {
  const archive = PthArchive.open(file);
  try {
    const root = archive.root;
    if (!(root instanceof Map) || root.size === 0) throw refError(file, "does not hold a dict of adapters ({adapter_name: state_dict})");
    const shapes = linearShapes(base);
    const entries: NamedTensor[] = [];
    const adapters: NativeAdapterInfo[] = [];
    const sourceAdapters: string[] = [];
    const tableCopies: TableCopy[] = [];
    for (const [name, value] of root) {
      const ours = typeof name === "string" ? REFERENCE_ADAPTERS[name] : undefined;
      if (!ours) {
        throw refError(file, `holds adapter '${String(name)}'; expected ${Object.keys(REFERENCE_ADAPTERS).join(", ")}`, String(name));
      }
      const state = asStateDict(value, `${file} (${name})`);
      const pairs = new Map<string, { A?: PthTensor; B?: PthTensor }>();
      for (const [key, t] of state) {
        const table = embeddingTableOf(key);
        if (table) {
          // PEFT's save_embedding_layers="auto" puts the resized tables into the dict of every
          // adapter made with add_adapter; they must equal decoder_first_last_layers.pth
          // (checked by checkTableCopies), and are not kept.
          tableCopies.push({ adapter: name, key, table });
          continue;
        }
        const parsed = parsePeftKey(key, name);
        if (!parsed) {
          throw refError(file, `adapter ${name} holds '${key}', which is not a LoRA weight of a q/k/v/o/gate/up/down projection this package maps`, key);
        }
        const layer = Number(/layers\.(\d+)\./.exec(parsed.linear)![1]);
        if (layer >= base.num_hidden_layers) {
          throw refError(file, `adapter ${name}: '${key}' is for layer ${layer}, but the base model has ${base.num_hidden_layers} layers`, key, "E_CHECKPOINT_MISMATCH");
        }
        const [inF, outF] = shapes[parsed.linear.split(".").pop()!];
        const expected = parsed.part === "A" ? [config.lora.rank, inF] : [outF, config.lora.rank];
        if (t.shape.length !== 2 || t.shape[0] !== expected[0] || t.shape[1] !== expected[1]) {
          throw refError(
            file,
            `adapter ${name}: '${key}' has shape [${t.shape.join(", ")}], expected [${expected.join(", ")}] ` +
              `(lora_r ${config.lora.rank} from config.json and the base model's dimensions)`,
            key,
            "E_CHECKPOINT_MISMATCH",
          );
        }
        if (t.dtype === "int64") throw refError(file, `adapter ${name}: '${key}' is an integer tensor`, key);
        const slot = pairs.get(parsed.linear) ?? {};
        if (slot[parsed.part]) throw refError(file, `adapter ${name} holds lora_${parsed.part} of ${parsed.linear} twice`, key);
        slot[parsed.part] = t;
        pairs.set(parsed.linear, slot);
      }
      for (const [linear, { A, B }] of pairs) {
        if (!A || !B) throw refError(file, `adapter ${name} has lora_${A ? "A" : "B"} of ${linear} without its lora_${A ? "B" : "A"}`, linear);
        entries.push([`${linear}.lora.${ours}.a`, A.transpose().load()]);
        entries.push([`${linear}.lora.${ours}.b`, B.transpose().load()]);
      }
      const expectedLinears = base.num_hidden_layers * 7;
      if (pairs.size < expectedLinears) {
        warn(`adapter ${name} covers ${pairs.size} of the base model's ${expectedLinears} projections; the others run without it`);
      }
      adapters.push({ name: ours, ...config.lora });
      sourceAdapters.push(name);
    }
    // Stage 3 without a query reasoner: the reference loads a copy of the compressor (M:1315-1342).
    if (config.stage === "stage3" && !adapters.some((a) => a.name === ADAPTERS.queryReasoner) && adapters.some((a) => a.name === ADAPTERS.compressor)) {
      const tag = `.lora.${ADAPTERS.compressor}.`;
      for (const [k, t] of entries.filter(([k]) => k.includes(tag))) {
        entries.push([k.replace(tag, `.lora.${ADAPTERS.queryReasoner}.`), { ...t, data: t.data.slice() } as Tensor]);
      }
      adapters.push({ name: ADAPTERS.queryReasoner, ...config.lora });
      warn("the checkpoint has no query_reasoner_adapter; the query reasoner starts as a copy of the compressor, as in the reference");
    }
    if (!adapters.some((a) => a.name === ADAPTERS.compressor)) throw refError(file, "has no encoder_adapter (the compressor)", "encoder_adapter");
    return { entries, adapters, sourceAdapters, tableCopies };
  } finally {
    archive.close();
  }
}

/** Float32 values of a loaded floating-point tensor (for comparisons). */
function asFloat32(t: Tensor): Float32Array {
  if (t.dtype === "float32") return t.data as Float32Array;
  if (t.dtype === "bfloat16") return bfloat16ToFloat32(t.data as Uint16Array);
  if (t.dtype === "float16") return float16ToFloat32(t.data as Uint16Array);
  throw new ClaraError("E_CHECKPOINT", `expected a floating-point tensor, got ${t.dtype}`);
}

interface SafetensorsEntry {
  file: string;
  dtype: string;
  shape: number[];
  start: number;
}

/** Where `name` lives among safetensors files (header only), or undefined. */
function findSafetensor(files: string[], name: string): SafetensorsEntry | undefined {
  for (const file of files) {
    const fd = fs.openSync(file, "r");
    try {
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const len = Number(lenBuf.readBigUInt64LE(0));
      if (len <= 0 || len > 100 * 2 ** 20) continue;
      const head = Buffer.alloc(len);
      fs.readSync(fd, head, 0, len, 8);
      const header = JSON.parse(head.toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
      const e = header[name];
      if (e) return { file, dtype: e.dtype, shape: e.shape, start: 8 + len + e.data_offsets[0] };
    } finally {
      fs.closeSync(fd);
    }
  }
  return undefined;
}

function readSafetensorRow(e: SafetensorsEntry, row: number): { bits: Uint8Array; values: Float32Array } {
  const item = e.dtype === "F32" ? 4 : 2;
  const cols = e.shape[1];
  const bits = new Uint8Array(cols * item);
  const fd = fs.openSync(e.file, "r");
  try {
    fs.readSync(fd, bits, 0, bits.length, e.start + row * cols * item);
  } finally {
    fs.closeSync(fd);
  }
  const values =
    e.dtype === "F32"
      ? new Float32Array(bits.buffer.slice(0))
      : e.dtype === "BF16"
        ? bfloat16ToFloat32(new Uint16Array(bits.buffer))
        : float16ToFloat32(new Uint16Array(bits.buffer));
  return { bits, values };
}

/** Rows to compare: both ends, the middle and a few spread between (deterministic). */
function sampleRows(V: number): number[] {
  const rows = new Set([0, 1, 2, V - 1, V - 2, Math.floor(V / 2)]);
  for (let i = 1; i <= 10; i++) rows.add(Math.floor((V * i * 0.6180339887) % V));
  return [...rows].filter((r) => r >= 0 && r < V).sort((a, b) => a - b);
}

/** Compares sampled base rows of a checkpoint table with the base model's own (exact when dtypes match). */
function checkBaseRows(file: string, label: string, table: PthTensor, base: ModelFiles, baseName: string, rows: number, warn: (m: string) => void): void {
  if (base.format !== "safetensors") {
    warn(`${label}: the base model is a GGUF file, so its rows were not compared with the checkpoint's`);
    return;
  }
  const entry = findSafetensor(base.files, baseName);
  if (!entry || !["F32", "BF16", "F16"].includes(entry.dtype)) {
    warn(`${label}: ${baseName} was not found as an F32/BF16/F16 tensor in the base model's safetensors; rows not compared`);
    return;
  }
  const sameType = { F32: "float32", BF16: "bfloat16", F16: "float16" }[entry.dtype] === table.dtype;
  for (const row of sampleRows(rows)) {
    const ours = table.narrow(row, 1).load();
    const theirs = readSafetensorRow(entry, row);
    const a = asFloat32(ours);
    let equal = true;
    if (sameType) {
      const ob = new Uint8Array(ours.data.buffer, ours.data.byteOffset, ours.data.byteLength);
      equal = ob.length === theirs.bits.length && ob.every((b, i) => b === theirs.bits[i]);
    } else {
      for (let i = 0; i < a.length && equal; i++) {
        const x = a[i];
        const y = theirs.values[i];
        equal = Math.abs(x - y) <= 1e-2 * Math.max(Math.abs(x), Math.abs(y)) + 1e-6;
      }
    }
    if (!equal) {
      throw new ClaraError(
        "E_CHECKPOINT_MISMATCH",
        `${file}: row ${row} of ${label} differs from the base model's ${baseName} (${base.source}); ` +
          `the checkpoint was made on another base model (Apple's: mistralai/Mistral-7B-Instruct-v0.2). ` +
          `Pass checkBase: false (--no-check-base) only if you know the base is right.`,
        { file, field: label },
      );
    }
  }
}

/** The tokenizer's length (ids 0..length-1), as len(tokenizer) counts it. */
function tokenizerLength(base: ModelFiles): number {
  const tok = base.format === "gguf" ? Tokenizer.fromGgufMetadata(base.ggufMetadata!, base.source) : Tokenizer.fromHfDir(base.source);
  return tok.vocabSize;
}

/** decoder_first_last_layers.pth → clara.mem_embeddings, clara.special_embeddings (+ clara.lm_head_rows). */
export function mapReferenceEmbeddings(
  file: string,
  config: ReferenceConfig,
  base: ModelFiles,
  options: { checkBase?: boolean; warn?: (m: string) => void } = {},
): NamedTensor[] {
  const warn = options.warn ?? (() => {});
  const archive = PthArchive.open(file);
  try {
    const state = archive.stateDict();
    const pick = (suffix: string) => {
      const keys = [...state.keys()].filter((k) => k === suffix || k.endsWith(`.${suffix}`));
      if (keys.length > 1) throw refError(file, `holds several ${suffix} tensors (${keys.join(", ")})`, suffix);
      return keys.length === 1 ? { key: keys[0], t: state.get(keys[0])! } : undefined;
    };
    const embed = pick("embed_tokens.weight");
    if (!embed) throw refError(file, `has no embed_tokens.weight (keys: ${[...state.keys()].join(", ")})`, "embed_tokens.weight");
    const head = pick("lm_head.weight");
    const c = base.config;
    // The reference adds its tokens after the tokenizer's last id and resizes the table to
    // len(tokenizer) + new: for a padded vocabulary (Qwen) that is below config vocab_size.
    const V = tokenizerLength(base);
    const n = config.nMem;
    const rows = V + n + 3 + (config.kbtc ? 1 : 0);
    const check = (label: string, t: PthTensor) => {
      if (t.dtype === "int64") throw refError(file, `${label} is an integer tensor`, label);
      if (t.shape.length !== 2 || t.shape[1] !== c.hidden_size || t.shape[0] !== rows) {
        const baseRows = t.shape[0] - n - 3 - (config.kbtc ? 1 : 0);
        throw refError(
          file,
          `${label} has shape [${t.shape.join(", ")}], expected [${rows}, ${c.hidden_size}]: the base vocabulary (${V}) + ${n} memory tokens + <AE>, <ENC>, <SEP>` +
            (config.kbtc ? " + <KBTC>" : "") +
            (t.shape.length === 2 && baseRows !== V ? `. The checkpoint's base vocabulary is ${baseRows}, the base model's ${V}: another base model` : ""),
          label,
          "E_CHECKPOINT_MISMATCH",
        );
      }
    };
    check(embed.key, embed.t);
    if (options.checkBase ?? true) checkBaseRows(file, embed.key, embed.t, base, "model.embed_tokens.weight", V, warn);
    const entries: NamedTensor[] = [
      ["clara.mem_embeddings", embed.t.narrow(V, n).load()],
      ["clara.special_embeddings", embed.t.narrow(V + n, 3).load()],
    ];
    if (!c.tie_word_embeddings) {
      if (!head) throw refError(file, "has no lm_head.weight, but the base model's output head is untied", "lm_head.weight");
      check(head.key, head.t);
      if (options.checkBase ?? true) checkBaseRows(file, head.key, head.t, base, "lm_head.weight", V, warn);
      entries.push(["clara.lm_head_rows", head.t.narrow(V, n + 3).load()]);
    } else if (head) {
      warn(`${head.key} is ignored: the base model ties its output head to the embeddings`);
    }
    return entries;
  } finally {
    archive.close();
  }
}

/** Reads a reference folder against a base model (config only; the weights are not loaded). */
export function readReferenceCheckpoint(folder: string, base: ModelFiles, options: { checkBase?: boolean; onWarning?: (m: string) => void } = {}): ReferenceWeights {
  const config = readReferenceConfig(folder);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  for (const f of [REFERENCE_FILES.adapters, REFERENCE_FILES.embeddings]) {
    if (!fs.existsSync(path.join(folder, f))) {
      throw new ClaraError("E_CHECKPOINT", `${path.join(folder, f)} is missing; a CLaRa checkpoint folder holds config.json, adapters.pth and decoder_first_last_layers.pth`, {
        file: path.join(folder, f),
      });
    }
  }
  const adapters = mapReferenceAdapters(path.join(folder, REFERENCE_FILES.adapters), config, base.config, warn);
  const embeddings = mapReferenceEmbeddings(path.join(folder, REFERENCE_FILES.embeddings), config, base, { checkBase: options.checkBase, warn });
  checkTableCopies(path.join(folder, REFERENCE_FILES.adapters), path.join(folder, REFERENCE_FILES.embeddings), adapters.tableCopies, base.config.tie_word_embeddings === true);
  return { config, entries: [...adapters.entries, ...embeddings], adapters: adapters.adapters, sourceAdapters: adapters.sourceAdapters, warnings };
}

/** Opens a reference folder as a ClaraModel on `basePath` (ClaraModel.fromReference in the docs). */
export async function loadReferenceClara(folder: string, options: ReferenceLoadOptions): Promise<ClaraModel> {
  const files = locateModel(options.basePath);
  const weights = readReferenceCheckpoint(folder, files, options);
  const model = await Model.load(options.basePath, { dtype: options.dtype, quantize: options.quantize });
  try {
    // (ClaraModel installs the June 2024 Mistral v0.2 chat template for Mistral bases when theirs refuses a system turn.)
    return await ClaraModel.fromParameters(model, {
      compressionRate: weights.config.compressionRate,
      docMaxLength: weights.config.docMaxLength,
      lora: weights.config.lora,
      entries: weights.entries,
      adapters: weights.adapters,
    });
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

export interface ConvertResult {
  file: string;
  stage: Stage;
  nMem: number;
  compressionRate: number;
  adapters: string[];
  tensors: number;
  warnings: string[];
}

/**
 * Converts a reference folder into this package's checkpoint (.npz + metadata), which
 * ClaraModel.load opens. The base model's weights are not loaded: only its config,
 * tokenizer-independent fingerprint and (for the check) a few embedding rows are read.
 */
export function convertReferenceCheckpoint(
  folder: string,
  basePath: string,
  outFile: string,
  options: { checkBase?: boolean; onWarning?: (m: string) => void; quantize?: QuantizeOption } = {},
): ConvertResult {
  const files = locateModel(basePath);
  // Recorded, not applied: ClaraModel.load reloads the base this way unless told otherwise.
  const quantization = resolveQuantization(options.quantize, files.format, files.sourceQuantization);
  const weights = readReferenceCheckpoint(folder, files, options);
  const c = weights.config;
  const metadata: CheckpointMetadata = {
    format: "clara-mlx-checkpoint",
    version: 1,
    stage: c.stage,
    step: 0,
    complete: true,
    base: { source: path.resolve(basePath), fingerprint: modelFingerprint(files), modelType: files.config.model_type, quantization },
    clara: { compressionRate: c.compressionRate, docMaxLength: c.docMaxLength, nMem: c.nMem, templateVersion: TEMPLATE_VERSION },
    adapters: weights.adapters,
    config: {
      convertedFrom: {
        folder: path.resolve(folder),
        training_stage: c.trainingStage,
        decoder_model_name: c.decoderModelName,
        generation_top_k: c.generationTopK,
        adapters: weights.sourceAdapters,
      },
    },
    createdAt: new Date().toISOString(),
  };
  fs.mkdirSync(path.dirname(path.resolve(outFile)), { recursive: true });
  writeCheckpoint(outFile, weights.entries, metadata);
  return {
    file: outFile,
    stage: c.stage,
    nMem: c.nMem,
    compressionRate: c.compressionRate,
    adapters: weights.adapters.map((a) => a.name),
    tensors: weights.entries.length,
    warnings: weights.warnings,
  };
}
