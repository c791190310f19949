// ClaraIndex: a corpus compressed once into an on-disk index, then searched with the query
// reasoner and answered from — CLaRa's point (documents serve retrieval and generation alike).
// Layout of an index folder:
//   index.json    format, counts, n, H, ρ, dtype, base-model and compressor fingerprints
//   vectors.npz   "vectors" [N, n, H] compressed documents (float32, or float16 to halve it)
//   docs.jsonl    one {id, text, source?, page?} per document, in vector order

import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError, invalidArgument } from "../errors";
import { writeFileAtomic } from "../io/atomic";
import { readNpz, writeNpz } from "../io/npz";
import { formatJsonl, readJsonl } from "../data/jsonl";
import { bfloat16ToFloat32, float16ToFloat32, float32ToFloat16, tensor, type Tensor } from "../tensor";
import { ADAPTERS, concatRows, type ClaraGenerateOptions, type ClaraModel } from "../clara/clara-model";
import { memoryInfo } from "../runtime";
import { nativeModel } from "../model/model";

export const INDEX_FORMAT = "clara-mlx-index";

export interface IndexDocument {
  id?: string;
  text: string;
  source?: string;
  page?: number;
}

interface StoredDocument {
  id: string;
  text: string;
  source?: string;
  page?: number;
}

export interface IndexMetadata {
  format: typeof INDEX_FORMAT;
  version: 1;
  count: number;
  nMem: number;
  hidden: number;
  compressionRate: number;
  docMaxLength: number;
  dtype: "float32" | "float16";
  base: { source: string; fingerprint: string };
  /** Hash of everything that shapes a compressed vector: compressor adapter and memory rows. */
  compressor: string;
  /** The checkpoint the index was built with (absolute path), when known. */
  checkpoint?: string;
  createdAt: string;
  updatedAt: string;
}

export interface BuildOptions {
  dtype?: "float32" | "float16";
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Answer {
  answer: string;
  sources: Array<{ id: string; score: number; text: string; source?: string; page?: number }>;
  timings: { queryMs: number; searchMs: number; generateMs: number; totalMs: number };
}

let nextName = 0;

export class ClaraIndex {
  private constructor(
    readonly dir: string,
    readonly clara: ClaraModel,
    private metadata: IndexMetadata,
    private docs: StoredDocument[],
    private vectors: Tensor[],
    private readonly nativeName: string,
  ) {}

  get size(): number {
    return this.docs.length;
  }

  get info(): IndexMetadata {
    return { ...this.metadata };
  }

  /**
   * Compresses `docs` in batches and writes a new index folder at `dir`. `checkpoint` is recorded
   * so tools can reopen the index with its model.
   */
  static async build(clara: ClaraModel, docs: IndexDocument[], dir: string, options: BuildOptions = {}, checkpoint?: string): Promise<ClaraIndex> {
    // Checks before the expensive part: an index is never overwritten, and one that search
    // could not use is not built.
    if (fs.existsSync(dir) && !(fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length === 0)) {
      throw new ClaraError("E_INDEX", `${dir} already exists; an index is never overwritten: choose another folder, or remove it first`, { file: dir, field: "out" });
    }
    if (!(await clara.hasAdapter(ADAPTERS.queryReasoner))) {
      throw new ClaraError("E_INVALID_ARGUMENT", "this model has no query_reasoner adapter, so its index could not be searched: build it from a stage-3 checkpoint", {
        file: checkpoint,
        field: "checkpoint",
      });
    }
    const now = new Date().toISOString();
    const meta: IndexMetadata = {
      format: INDEX_FORMAT,
      version: 1,
      count: 0,
      nMem: clara.nMem,
      hidden: clara.model.config.hidden_size,
      compressionRate: clara.compressionRate,
      docMaxLength: clara.docMaxLength,
      dtype: options.dtype ?? "float32",
      base: { source: clara.model.files.source, fingerprint: clara.model.fingerprint() },
      compressor: await compressorFingerprint(clara),
      ...(checkpoint ? { checkpoint: path.resolve(checkpoint) } : {}),
      createdAt: now,
      updatedAt: now,
    };
    const index = new ClaraIndex(dir, clara, meta, [], [], `index-${nextName++}`);
    await index.add(docs, options);
    return index;
  }

  /** Opens an index folder for `clara`; an index made with another model, compressor or ρ is refused. */
  static async open(dir: string, clara: ClaraModel): Promise<ClaraIndex> {
    const metaFile = path.join(dir, "index.json");
    if (!fs.existsSync(metaFile)) throw new ClaraError("E_INDEX", `${dir} is not a CLaRa index (no index.json)`, { file: metaFile });
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as IndexMetadata;
    if (meta.format !== INDEX_FORMAT) throw new ClaraError("E_INDEX", `${metaFile} is not a CLaRa index file`, { file: metaFile, field: "format" });
    const expect = (field: string, ours: unknown, theirs: unknown, what: string) => {
      if (ours !== theirs) {
        throw new ClaraError("E_CHECKPOINT_MISMATCH", `${dir} was built with ${what} ${String(theirs)}, this model has ${String(ours)}; rebuild the index`, {
          file: metaFile,
          field,
        });
      }
    };
    expect("compressionRate", clara.compressionRate, meta.compressionRate, "compression rate");
    expect("nMem", clara.nMem, meta.nMem, "memory tokens per document");
    expect("base.fingerprint", clara.model.fingerprint(), meta.base.fingerprint, "base model");
    expect("compressor", await compressorFingerprint(clara), meta.compressor, "compressor checkpoint");
    const docs = readJsonl(path.join(dir, "docs.jsonl")).map((l) => l.value as StoredDocument);
    const stored = readNpz(path.join(dir, "vectors.npz")).get("vectors");
    if (!stored || stored.shape[0] !== docs.length) {
      throw new ClaraError("E_INDEX", `${dir}: vectors.npz and docs.jsonl disagree on the number of documents`, { file: path.join(dir, "vectors.npz") });
    }
    const vectors = toFloat32(stored);
    const index = new ClaraIndex(dir, clara, meta, docs, [vectors], `index-${nextName++}`);
    await nativeModel(clara.model).indexAdd(index.nativeName, flatten(vectors));
    return index;
  }

  /** Compresses only the new documents, appends them and rewrites the folder atomically. */
  async add(docs: IndexDocument[], options: BuildOptions = {}): Promise<void> {
    if (!Array.isArray(docs)) throw invalidArgument("docs", "an array of {text, id?, source?, page?}", docs);
    const seen = new Set(this.docs.map((d) => d.id));
    const fresh: StoredDocument[] = docs.map((d, i) => {
      if (typeof d?.text !== "string" || d.text.length === 0) throw invalidArgument(`docs[${i}].text`, "a non-empty string", d?.text);
      const id = d.id ?? `doc-${this.docs.length + i}`;
      if (seen.has(id)) throw new ClaraError("E_INVALID_ARGUMENT", `document id "${id}" is already in the index`, { field: `docs[${i}].id` });
      seen.add(id);
      return { id, text: d.text, ...(d.source ? { source: d.source } : {}), ...(d.page !== undefined ? { page: d.page } : {}) };
    });
    let batchSize = options.batchSize ?? 8;
    for (let i = 0; i < fresh.length; ) {
      batchSize = await this.fitBatch(batchSize);
      const texts = fresh.slice(i, i + batchSize).map((d) => d.text);
      const v = await this.clara.compressDocuments(texts, { batchSize });
      await nativeModel(this.clara.model).indexAdd(this.nativeName, flatten(v));
      this.vectors.push(v);
      i += texts.length;
      options.onProgress?.(i, fresh.length);
    }
    this.docs.push(...fresh);
    this.metadata = { ...this.metadata, count: this.docs.length, updatedAt: new Date().toISOString() };
    this.save();
  }

  /** The k best documents for each query, by the query reasoner's cosine (spec §1.6). */
  async search(queries: string[], k = 5): Promise<Array<Array<{ index: number; score: number }>>> {
    this.checkK(k);
    const q = await this.encodeQueries(queries);
    const hits = await nativeModel(this.clara.model).indexSearch(this.nativeName, flatten(q), k);
    return this.hitsOf(hits, queries.length);
  }

  /** Retrieves the k best documents and answers from their compressed vectors. */
  async answer(question: string, options: { k?: number } & ClaraGenerateOptions = {}): Promise<Answer> {
    this.checkK(options.k ?? 5);
    const t0 = performance.now();
    const q = await this.encodeQueries([question]);
    const t1 = performance.now();
    const hits = await nativeModel(this.clara.model).indexSearch(this.nativeName, flatten(q), options.k ?? 5);
    const t2 = performance.now();
    const [found] = this.hitsOf(hits, 1);
    const rows = hits.rows; // [1, k, n·H]
    const selected = tensor("float32", [found.length, this.metadata.nMem, this.metadata.hidden], rows.data as Float32Array);
    const [answer] = await this.clara.generateFromCompressed([question], [selected], options);
    const t3 = performance.now();
    return {
      answer,
      sources: found.map((h) => ({ ...this.docs[h.index], score: h.score })),
      timings: { queryMs: t1 - t0, searchMs: t2 - t1, generateMs: t3 - t2, totalMs: t3 - t0 },
    };
  }

  /** k documents must exist to be retrieved (the reference raises for k > N as well). */
  private checkK(k: number): void {
    if (!Number.isInteger(k) || k < 1 || k > this.docs.length) throw invalidArgument("k", `an integer from 1 to ${this.docs.length} (the documents in the index)`, k);
  }

  document(i: number): StoredDocument {
    return this.docs[i];
  }

  /** Frees the native copy of the vectors. */
  close(): Promise<void> {
    return nativeModel(this.clara.model).indexDrop(this.nativeName);
  }

  private async encodeQueries(queries: string[]): Promise<Tensor> {
    if (!(await this.clara.hasAdapter(ADAPTERS.queryReasoner))) {
      throw new ClaraError("E_INVALID_ARGUMENT", "searching an index needs a query_reasoner adapter: use a stage-3 checkpoint", { field: "checkpoint" });
    }
    const r = await nativeModel(this.clara.model).claraCompress({ docs: this.clara.encoderBatch(queries), spec: this.clara.spec(1), adapter: ADAPTERS.queryReasoner });
    return r.vectors;
  }

  private hitsOf(hits: { scores: Tensor; indices: Tensor }, B: number) {
    const k = hits.scores.shape[1];
    return Array.from({ length: B }, (_, b) =>
      Array.from({ length: k }, (_, j) => ({ index: (hits.indices.data as Int32Array)[b * k + j], score: (hits.scores.data as Float32Array)[b * k + j] })),
    );
  }

  /** Halves the batch while its estimated activations would exceed MLX's memory limit. */
  private async fitBatch(batchSize: number): Promise<number> {
    const { limit, active } = await memoryInfo();
    const L = this.metadata.docMaxLength + 3 + this.metadata.nMem;
    const c = this.clara.model.config;
    // Per document: hidden states and MLP activations of one layer at a time, attention scores, logits-free.
    const perDoc = 4 * L * (6 * c.hidden_size + 3 * c.intermediate_size) + 4 * c.num_attention_heads * L * L * 2;
    let b = batchSize;
    while (b > 1 && active + b * perDoc > 0.8 * limit) b = Math.floor(b / 2);
    if (active + b * perDoc > 0.8 * limit) {
      throw new ClaraError("E_MEMORY", `compressing even one document needs about ${(perDoc / 2 ** 30).toFixed(1)} GiB over MLX's limit; lower docMaxLength`, {
        field: "batchSize",
      });
    }
    return b;
  }

  private save(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const all = concatRows(this.vectors);
    this.vectors = [all];
    const stored = this.metadata.dtype === "float16" ? toFloat16(all) : all;
    writeNpz(path.join(this.dir, "vectors.npz"), { vectors: stored });
    writeFileAtomic(path.join(this.dir, "docs.jsonl"), new TextEncoder().encode(formatJsonl(this.docs)));
    // index.json last: a folder whose index.json counts N documents has N vectors and N docs.
    writeFileAtomic(path.join(this.dir, "index.json"), new TextEncoder().encode(JSON.stringify(this.metadata, null, 2) + "\n"));
  }
}

/** Hash of the tensors that decide compressed vectors: the compressor adapter and the memory rows. */
export async function compressorFingerprint(clara: ClaraModel): Promise<string> {
  const h = crypto.createHash("sha256").update(clara.model.fingerprint());
  const params = await clara.model.parameters();
  for (const [name, t] of params.sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (name.includes(`.lora.${ADAPTERS.compressor}.`) || name.startsWith("clara.mem_embeddings") || name.startsWith("clara.special_embeddings")) {
      h.update(name).update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  }
  return h.digest("hex").slice(0, 16);
}

function flatten(v: Tensor): Tensor {
  return { ...v, shape: [v.shape[0], v.shape.slice(1).reduce((a, b) => a * b, 1)] };
}

function toFloat16(t: Tensor): Tensor {
  return tensor("float16", t.shape, float32ToFloat16(t.data as Float32Array));
}

function toFloat32(t: Tensor): Tensor {
  if (t.dtype === "float32") return t;
  if (t.dtype === "bfloat16") return tensor("float32", t.shape, bfloat16ToFloat32(t.data as Uint16Array));
  if (t.dtype === "float16") return tensor("float32", t.shape, float16ToFloat32(t.data as Uint16Array));
  throw new ClaraError("E_INDEX", `index vectors of dtype ${t.dtype} are not supported`, { field: "vectors" });
}
