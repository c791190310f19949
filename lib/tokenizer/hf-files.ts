// A Hugging Face model folder's tokenizer files, and the one piece of transformers' loading
// logic that changes ids: the BOS/EOS post-processor it derives from tokenizer_config.json.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import type { ConfigToken, TokenizerConfig, TokenizerFiles, TokenizerJson } from "./types";

export function readHfTokenizerFiles(dir: string): TokenizerFiles {
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
  const tokenizerJson = read("tokenizer.json", true) as TokenizerJson;
  const tokenizerConfig = read("tokenizer_config.json", true) as TokenizerConfig;
  // Older saves keep the special tokens apart; newer ones keep the chat template apart.
  const map = (read("special_tokens_map.json", false) ?? {}) as TokenizerConfig;
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) tokenizerConfig[key] ??= map[key];
  tokenizerConfig.chat_template ??=
    (read("chat_template.jinja", false) as string | undefined) ??
    (read("chat_template.json", false) as TokenizerConfig | undefined)?.chat_template;
  return { tokenizerJson, tokenizerConfig };
}

/** The text of a special token as tokenizer_config.json spells it (a string or an AddedToken). */
export function tokenText(t: ConfigToken): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof t.content === "string") return t.content;
  return undefined;
}

/**
 * transformers (TokenizersBackend.update_post_processor) replaces tokenizer.json's post-processor
 * with this TemplateProcessing when the config sets add_bos_token or add_eos_token, or when
 * there is none; otherwise tokenizer.json's own decides what encode adds. Returns undefined then.
 */
export function bosEosPostProcessor(json: TokenizerJson, config: TokenizerConfig): object | undefined {
  if (!("add_bos_token" in config) && !("add_eos_token" in config) && json.post_processor != null) return undefined;
  const specials: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  const special = (flag: unknown, key: "bos_token" | "eos_token") => {
    const text = tokenText(config[key]);
    const id = text === undefined ? undefined : idInJson(json, text);
    if (flag !== true || text === undefined || id === undefined) return undefined;
    specials[text] = { id: text, ids: [id], tokens: [text] };
    return (typeId: number) => ({ SpecialToken: { id: text, type_id: typeId } });
  };
  const bos = special(config.add_bos_token, "bos_token");
  const eos = special(config.add_eos_token, "eos_token");
  const part = (id: "A" | "B", typeId: number) =>
    [bos?.(typeId), { Sequence: { id, type_id: typeId } }, eos?.(typeId)].filter((x) => x !== undefined);
  return {
    type: "TemplateProcessing",
    single: part("A", 0),
    pair: [...part("A", 0), ...part("B", 1)],
    special_tokens: specials,
  };
}

function idInJson(json: TokenizerJson, text: string): number | undefined {
  const added = json.added_tokens.find((t) => t.content === text);
  if (added) return added.id;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [piece, score] pairs, indexed by id.
    const i = vocab.findIndex((entry) => (Array.isArray(entry) ? entry[0] : entry) === text);
    return i < 0 ? undefined : i;
  }
  if (!vocab || typeof vocab !== "object" || !Object.prototype.hasOwnProperty.call(vocab, text)) return undefined;
  const id = (vocab as Record<string, unknown>)[text];
  return typeof id === "number" ? id : undefined;
}
