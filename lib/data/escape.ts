// Breaking literal special-token strings inside record text (spec §7 Q17).
//
// CLaRa builds its prompts as strings ("<ENC><s>" + doc + "</s>", "<MEM0>…<MEM7><SEP>" slots)
// and a HF-style tokenizer turns every occurrence of an added special token in the text into
// that token. A document that happens to contain "<MEM0>" would therefore get an extra memory
// slot, and the compressor's MEM mask and the generator's slot replacement (which look for the
// token ids) would be corrupted; a literal "</s>" would end a document early.
//
// The fix: insert U+200B ZERO WIDTH SPACE right after the "<" (or, for an extra token, after its
// first character). Why this character:
// - added-token matching is an exact string match on the raw text, so "<\u200BMEM0>" can never
//   match "<MEM0>"; every other character of the text is left alone;
// - it is invisible, so a human reading the data (or a model reading the tokens) still sees the
//   same text; the tokenizer encodes it as ordinary text (SentencePiece byte fallback
//   <0xE2><0x80><0x8B>, or a byte-level BPE piece);
// - Unicode normalisers used by tokenizers (NFC, NFKC) keep U+200B, whereas a look-alike such as
//   the fullwidth "＜" (U+FF1C) is folded back to "<" by NFKC and would re-create the token;
// - it is idempotent: an escaped occurrence no longer matches, so escaping twice changes
//   nothing and nothing is counted twice.
// The cost is a few extra tokens per escaped occurrence, which is negligible.

/** The character inserted to break a special-token string. */
export const ESCAPE_MARK = "\u200B";

/**
 * The strings broken by default: CLaRa's own added tokens (<MEM0>…<MEMn>, <AE>, <ENC>, <SEP>,
 * and the unused <KBTC>), the SentencePiece control tokens of Mistral/Llama-2 (<s>, </s>, <unk>,
 * <pad>), and "<|…|>" control tokens (Llama 3, Qwen, Phi: <|im_start|>, <|endoftext|>, …).
 * Matching is case-sensitive, as the tokenizer's is. The match covers the "<" only (the rest is
 * look-ahead), so the mark is inserted right after it.
 */
const DEFAULT_PATTERN = /<(?=(?:MEM\d+|AE|ENC|SEP|KBTC|s|\/s|unk|pad)>|\|[^|<>\s]{1,64}\|>)/g;

export interface EscapeResult {
  text: string;
  /** Number of occurrences broken. */
  escaped: number;
}

/**
 * Breaks every literal special-token string in `text` (see the file header) and counts them.
 * `extraTokens` adds tokenizer-specific strings (e.g. "[INST]"); each is broken after its first
 * character.
 */
export function escapeSpecialTokensCounted(text: string, extraTokens: readonly string[] = []): EscapeResult {
  let escaped = 0;
  let out = text.replace(DEFAULT_PATTERN, () => {
    escaped++;
    return "<" + ESCAPE_MARK;
  });
  for (const token of extraTokens) {
    if (token.length < 2) continue; // a one-character token cannot be broken by insertion
    const broken = token[0] + ESCAPE_MARK + token.slice(1);
    const parts = out.split(token);
    if (parts.length > 1) {
      escaped += parts.length - 1;
      out = parts.join(broken);
    }
  }
  return { text: out, escaped };
}

/** `text` with every literal special-token string broken by a zero-width space (see above). */
export function escapeSpecialTokens(text: string, extraTokens: readonly string[] = []): string {
  return escapeSpecialTokensCounted(text, extraTokens).text;
}
