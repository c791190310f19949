// The tokenizer of a Llama-family model: Hugging Face's tokenizer.json run by
// @huggingface/tokenizers, and the chat template run by @huggingface/jinja. It comes from a
// model folder (tokenizer.json + tokenizer_config.json) or from a GGUF's own metadata.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError, invalidArgument } from "./errors";
import { writeFileAtomic } from "./io/atomic";
import { GgufValue, readGgufHeader } from "./io/gguf";
import { tokenizerFilesFromGguf } from "./tokenizer/gguf-vocab";
import { bosEosPostProcessor, readHfTokenizerFiles, tokenText } from "./tokenizer/hf-files";
import { addedToken, type TokenizerConfig, type TokenizerJson } from "./tokenizer/types";

// Both packages are ESM-typed but ship a CommonJS build under their "require" export; under
// node16 resolution TypeScript refuses a static import of them from a CommonJS file.
const { Tokenizer: HfTokenizer } = require("@huggingface/tokenizers") as typeof import("@huggingface/tokenizers", {
  with: { "resolution-mode": "import" },
});
const { Template } = require("@huggingface/jinja") as typeof import("@huggingface/jinja", {
  with: { "resolution-mode": "import" },
});
type HfTokenizer = InstanceType<typeof HfTokenizer>;
type Template = InstanceType<typeof Template>;

export type { TokenizerConfig, TokenizerJson } from "./tokenizer/types";

export interface ChatMessage {
  role: string;
  content: string;
}

/** Turn-ending tokens that chat models emit instead of (or as well as) their EOS. */
const STOP_TOKENS = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>", "<|end|>", "<end_of_turn>", "<EOT>"];
/** How templates that take no system turn refuse one (Gemma, Mistral v0.1). */
const SYSTEM_REJECTED = /system|roles must alternate/i;

export class Tokenizer {
  private readonly json: TokenizerJson;
  private readonly config: TokenizerConfig;
  private readonly source: string;
  private inner!: HfTokenizer;
  private size = 0;
  private template: Template | undefined;

  /** From the parsed contents of tokenizer.json and tokenizer_config.json. */
  constructor(tokenizerJson: TokenizerJson, tokenizerConfig: TokenizerConfig = {}, source = "the tokenizer") {
    if (typeof tokenizerJson !== "object" || tokenizerJson === null || typeof tokenizerJson.model !== "object")
      throw invalidArgument("tokenizerJson", "a parsed tokenizer.json object", tokenizerJson);
    if (typeof tokenizerConfig !== "object" || tokenizerConfig === null)
      throw invalidArgument("tokenizerConfig", "a parsed tokenizer_config.json object", tokenizerConfig);
    this.source = source;
    this.config = { ...tokenizerConfig };
    // Copies, because addSpecialTokens grows added_tokens and the caller's objects are theirs.
    this.json = { ...tokenizerJson, added_tokens: [...(tokenizerJson.added_tokens ?? [])] };
    this.json.post_processor = bosEosPostProcessor(this.json, this.config) ?? this.json.post_processor;
    this.rebuild();
  }

  static fromHfDir(dir: string): Tokenizer {
    const { tokenizerJson, tokenizerConfig } = readHfTokenizerFiles(dir);
    return new Tokenizer(tokenizerJson, tokenizerConfig, dir);
  }

  static fromGguf(file: string): Tokenizer {
    return Tokenizer.fromGgufMetadata(readGgufHeader(file).metadata, file);
  }

  static fromGgufMetadata(meta: Map<string, GgufValue>, file?: string): Tokenizer {
    const { tokenizerJson, tokenizerConfig } = tokenizerFilesFromGguf(meta, file);
    return new Tokenizer(tokenizerJson, tokenizerConfig, file ?? "the GGUF tokenizer");
  }

  /** Token ids of `text`; with addSpecialTokens, the BOS/EOS the model's config asks for. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw invalidArgument("text", "a string", text);
    return this.inner.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (typeof ids !== "object" || ids === null || typeof ids.length !== "number")
      throw invalidArgument("ids", "an array of token ids", ids);
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || this.inner.id_to_token(id) === undefined)
        throw invalidArgument("ids", `token ids in [0, ${this.size})`, id);
    }
    if (list.length === 0) return ""; // the library throws on an empty list
    return this.inner.decode(list, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      // transformers skips this clean-up for BPE: it deletes real spaces before punctuation.
      clean_up_tokenization_spaces: this.config.clean_up_tokenization_spaces === true && this.json.model.type !== "BPE",
    });
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /** Ids in use, added tokens included: the embedding rows the model needs. */
  get vocabSize(): number {
    return this.size;
  }

  get bosTokenId(): number | undefined {
    return this.configTokenId("bos_token");
  }

  get eosTokenId(): number | undefined {
    return this.configTokenId("eos_token");
  }

  /** The config's pad token, or undefined (as in transformers; no fallback to EOS or BOS). */
  get padTokenId(): number | undefined {
    return this.configTokenId("pad_token");
  }

  /**
   * The id batches are left-padded with: the pad token; else BOS, as the reference does when the
   * tokenizer has none (pad_token_id := bos_token_id, M:502-503); else EOS (a vocabulary without
   * BOS, as Hugging Face and mlx-lm training code pad), else 0. Pads are masked out either way.
   */
  get batchPadId(): number {
    return this.padTokenId ?? this.bosTokenId ?? this.eosTokenId ?? 0;
  }

  get unkTokenId(): number | undefined {
    return this.configTokenId("unk_token");
  }

  /** EOS and the turn-ending special tokens this vocabulary has: where generation stops. */
  get stopTokenIds(): number[] {
    const special = new Map(this.json.added_tokens.filter((t) => t.special).map((t) => [t.content, t.id]));
    const ids = [this.eosTokenId, ...STOP_TOKENS.map((t) => special.get(t))];
    return [...new Set(ids.filter((id): id is number => id !== undefined))];
  }

  /** The special tokens' texts, by id. */
  get specialTokens(): string[] {
    return this.json.added_tokens
      .filter((t) => t.special)
      .sort((a, b) => a.id - b.id)
      .map((t) => t.content);
  }

  get chatTemplate(): string | undefined {
    const t = this.config.chat_template;
    return Array.isArray(t) ? t.find((x) => x.name === "default")?.template : t;
  }

  /** Replaces the chat template (e.g. with a model's corrected one); later renders use it. */
  setChatTemplate(template: string): void {
    if (typeof template !== "string" || template.trim() === "") throw invalidArgument("template", "a non-empty Jinja template string", template);
    this.config.chat_template = template;
    this.template = undefined;
  }

  /**
   * The prompt text the model's chat template makes of `messages`. A template that refuses a
   * system turn gets it folded into the first user turn (`system + "\n" + user`) instead.
   */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (!Array.isArray(messages) || !messages.every((m) => typeof m?.role === "string" && typeof m?.content === "string"))
      throw invalidArgument("messages", "an array of {role, content} strings", messages);
    const render = (msgs: ChatMessage[]) =>
      this.compiledTemplate().render({
        ...this.specialTokenStrings(),
        messages: msgs,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    try {
      return render(messages);
    } catch (e) {
      if (e instanceof ClaraError) throw e;
      const folded = foldSystemTurn(messages);
      if (folded && SYSTEM_REJECTED.test((e as Error).message)) {
        try {
          return render(folded);
        } catch {
          // fall through: the first failure is the one that explains the problem
        }
      }
      throw this.error("the chat template failed", e);
    }
  }

  /**
   * Appends tokens as special tokens after the last id (vocabSize, vocabSize + 1, ...); encode
   * then keeps each whole and decode shows it unless skipSpecialTokens. A token the vocabulary
   * already has keeps its id. Returns the ids in the order given.
   */
  addSpecialTokens(tokens: string[]): number[] {
    if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string" && t !== ""))
      throw invalidArgument("tokens", "an array of non-empty strings", tokens);
    const added = new Map(this.json.added_tokens.map((t) => [t.content, t]));
    let next = this.size;
    let changed = false;
    const ids = tokens.map((content) => {
      const known = added.get(content);
      if (known?.special) return known.id;
      const id = known?.id ?? this.tokenToId(content) ?? next++;
      const token = addedToken(id, content, true);
      if (known) this.json.added_tokens[this.json.added_tokens.indexOf(known)] = token;
      else this.json.added_tokens.push(token);
      added.set(content, token);
      changed = true;
      return id;
    });
    if (changed) this.rebuild();
    return ids;
  }

  /** The tokenizer.json object, added tokens included (e.g. to hand to another tokenizer). */
  toJSON(): TokenizerJson {
    return structuredClone(this.json);
  }

  /** Writes tokenizer.json and tokenizer_config.json into `dir`, a folder fromHfDir reads. */
  save(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(path.join(dir, "tokenizer.json"), Buffer.from(JSON.stringify(this.json)));
    writeFileAtomic(path.join(dir, "tokenizer_config.json"), Buffer.from(JSON.stringify(this.config, null, 2)));
  }

  private rebuild(): void {
    try {
      this.inner = new HfTokenizer(this.json, this.config);
    } catch (e) {
      throw this.error("cannot build the tokenizer", e);
    }
    let max = -1;
    for (const id of this.inner.get_vocab(true).values()) if (id > max) max = id;
    this.size = max + 1;
  }

  private compiledTemplate(): Template {
    const source = this.chatTemplate;
    if (typeof source !== "string")
      throw new ClaraError(
        "E_TOKENIZER",
        `${this.source} has no chat template (chat_template in tokenizer_config.json, ` +
          `tokenizer.chat_template in a GGUF); ` +
          `format the prompt yourself or use the model's instruct variant`,
      );
    try {
      this.template ??= new Template(source);
    } catch (e) {
      throw this.error("the chat template does not parse", e);
    }
    return this.template;
  }

  private error(what: string, cause: unknown): ClaraError {
    return new ClaraError("E_TOKENIZER", `${this.source}: ${what}: ${(cause as Error).message}`, { cause });
  }

  private specialTokenStrings(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) {
      const text = tokenText(this.config[key]);
      if (text !== undefined) out[key] = text;
    }
    return out;
  }

  private configTokenId(key: "bos_token" | "eos_token" | "unk_token" | "pad_token"): number | undefined {
    const text = tokenText(this.config[key]);
    return text === undefined ? undefined : this.tokenToId(text);
  }
}

/** The CLaRa reference's fallback: the system text joins the first user turn. */
function foldSystemTurn(messages: ChatMessage[]): ChatMessage[] | undefined {
  if (messages[0]?.role !== "system") return undefined;
  const user = messages.findIndex((m) => m.role === "user");
  if (user < 0) return undefined;
  const rest = messages.slice(1);
  rest[user - 1] = { ...messages[user], content: `${messages[0].content}\n${messages[user].content}` };
  return rest;
}
