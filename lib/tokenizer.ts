// The tokenizer of a Llama-family model: Hugging Face's tokenizer.json run by
// @huggingface/tokenizers, and the chat template run by @huggingface/jinja. It comes from a
// model folder (tokenizer.json + tokenizer_config.json) or from a GGUF's own metadata.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError, invalidArgument } from "./errors";
import { writeFileAtomic } from "./io/atomic";
import { GgufValue, readGgufHeader } from "./io/gguf";
import { tokenizerFilesFromGguf } from "./tokenizer/gguf-vocab";
import type { AddedTokenJson, ConfigToken, TokenizerConfig, TokenizerJson } from "./tokenizer/types";

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
    // transformers rebuilds the post-processor from these flags when the config sets them.
    if ("add_bos_token" in this.config || "add_eos_token" in this.config || this.json.post_processor == null)
      this.json.post_processor = this.bosEosTemplate();
    this.rebuild();
  }

  static fromHfDir(dir: string): Tokenizer {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
      throw new ClaraError("E_MODEL_FILES", `Model folder ${dir} does not exist`, { file: dir });
    const read = (name: string, required: boolean): unknown => {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) {
        if (!required) return undefined;
        throw new ClaraError(
          "E_MODEL_FILES",
          `${dir} has no ${name}. Tokenizer.fromHfDir needs tokenizer.json and tokenizer_config.json: download ` +
            `them with the model (hf download <repo> tokenizer.json tokenizer_config.json --local-dir ${dir}) or ` +
            `write them from Python with AutoTokenizer.from_pretrained(<repo>).save_pretrained(dir). ` +
            `A .gguf model carries its own tokenizer: use Tokenizer.fromGguf.`,
          { file },
        );
      }
      const text = fs.readFileSync(file, "utf8");
      if (name.endsWith(".jinja")) return text;
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new ClaraError("E_MODEL_FILES", `${file} is not valid JSON (${(e as Error).message}); download it again`, {
          file,
          cause: e,
        });
      }
    };
    const json = read("tokenizer.json", true) as TokenizerJson;
    const config = read("tokenizer_config.json", true) as TokenizerConfig;
    // Older saves keep the special tokens apart; newer ones keep the chat template apart.
    const map = (read("special_tokens_map.json", false) ?? {}) as TokenizerConfig;
    for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) config[key] ??= map[key];
    config.chat_template ??=
      (read("chat_template.jinja", false) as string | undefined) ??
      ((read("chat_template.json", false) as TokenizerConfig | undefined)?.chat_template);
    return new Tokenizer(json, config, dir);
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
      throw new ClaraError("E_TOKENIZER", `${this.source}: the chat template failed: ${(e as Error).message}`, { cause: e });
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
      const token: AddedTokenJson = { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
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
      throw new ClaraError("E_TOKENIZER", `${this.source}: cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
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
        `${this.source} has no chat template (tokenizer_config.json chat_template, or tokenizer.chat_template in a GGUF); ` +
          `format the prompt yourself or use the model's instruct variant`,
      );
    try {
      this.template ??= new Template(source);
    } catch (e) {
      throw new ClaraError("E_TOKENIZER", `${this.source}: the chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    return this.template;
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

  /** TemplateProcessing as transformers' update_post_processor builds it from add_bos/eos_token. */
  private bosEosTemplate(): object {
    const seq = (id: "A" | "B", typeId: number) => ({ Sequence: { id, type_id: typeId } });
    const specials: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
    const use = (flag: unknown, key: "bos_token" | "eos_token") => {
      const text = tokenText(this.config[key]);
      const id = text === undefined ? undefined : idInJson(this.json, text);
      if (flag !== true || text === undefined || id === undefined) return undefined;
      specials[text] = { id: text, ids: [id], tokens: [text] };
      return (typeId: number) => ({ SpecialToken: { id: text, type_id: typeId } });
    };
    const bos = use(this.config.add_bos_token, "bos_token");
    const eos = use(this.config.add_eos_token, "eos_token");
    const part = (id: "A" | "B", typeId: number) =>
      [bos?.(typeId), seq(id, typeId), eos?.(typeId)].filter((x) => x !== undefined);
    return { type: "TemplateProcessing", single: part("A", 0), pair: [...part("A", 0), ...part("B", 1)], special_tokens: specials };
  }
}

function tokenText(t: ConfigToken): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof t.content === "string") return t.content;
  return undefined;
}

function idInJson(json: TokenizerJson, text: string): number | undefined {
  const added = json.added_tokens.find((t) => t.content === text);
  if (added) return added.id;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) {
    const i = vocab.findIndex((entry) => (Array.isArray(entry) ? entry[0] : entry) === text);
    return i < 0 ? undefined : i;
  }
  const id = vocab && typeof vocab === "object" ? (vocab as Record<string, unknown>)[text] : undefined;
  return typeof id === "number" && Object.prototype.hasOwnProperty.call(vocab, text) ? id : undefined;
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
