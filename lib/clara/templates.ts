// CLaRa's text layouts as token ids (spec §1.4–1.6): the compressor's document input, the
// query reasoner's question input, and the generator prompts of the three stages with their
// loss masks. The system prompts and user layouts are the reference's exactly, so checkpoints
// stay format-compatible; the paraphrase instructions are this project's own.

import type { Tokenizer } from "../tokenizer";
import { memoryTokenNames, type ClaraTokens } from "./tokens";

export const SYSTEM_PROMPTS = {
  qa: "You are a helpful assistant. Given a document, your task is to generate some single questions to cover all key information of the document and answer them sequentially.",
  paraphrase: "You are a helpful assistant. Your task is follow the instructions to paraphrase the background information.",
  answer:
    "You are a helpful assistant. Your task is to extract relevant information from provided documents and to answer to questions as briefly as possible.",
} as const;

/** Our own paraphrase instructions; `{docs}` stands for the memory placeholders. */
export const PARAPHRASE_INSTRUCTIONS: readonly string[] = [
  "Background: {docs}\nRestate the background above in your own words.",
  "Background: {docs}\nRewrite this passage so that it says the same thing with different wording.",
  "{docs}\nExpress the information above again, keeping every fact.",
  "Here is some background: {docs}\nPut it another way.",
  "Background: {docs}\nGive a faithful rewording of the text.",
  "Read this: {docs}\nNow tell me the same content in different sentences.",
  "{docs}\nParaphrase the passage.",
  "Background: {docs}\nSay this again in plain, fresh language without leaving anything out.",
  "Consider the following text. {docs}\nA rephrased version of it is:",
  "(1) {docs} (2)",
  "Background: {docs}\nReformulate the passage; the meaning must stay the same.",
  "Take this background: {docs}\nWrite it anew, sentence by sentence, in other words.",
  "{docs}\nIn other words,",
];

export interface EncodedExample {
  tokens: number[];
  /** 1 where tokens[t] is supervised (the answer and the end-of-turn token). */
  lossMask: number[];
}

export interface EncoderInput {
  /** docMaxLength + 3 + n ids: left padding, <ENC> BOS text EOS (truncated), then the memory tokens. */
  ids: number[];
  /** 1 for real tokens, 0 for padding. */
  valid: number[];
  truncated: boolean;
}

export class ClaraTemplates {
  constructor(
    readonly tokenizer: Tokenizer,
    readonly tokens: ClaraTokens,
    readonly docMaxLength: number,
    readonly padId: number,
  ) {}

  get nMem(): number {
    return this.tokens.mem.length;
  }

  /** `<ENC><bos>text<eos>`, right-truncated and left-padded to docMaxLength + 3, then <MEM0..n-1> (spec §1.4). */
  encoderInput(text: string): EncoderInput {
    const t = this.tokenizer;
    const bos = t.bosTokenId === undefined ? "" : t.idToToken(t.bosTokenId) ?? "";
    const eos = t.eosTokenId === undefined ? "" : t.idToToken(t.eosTokenId) ?? "";
    const width = this.docMaxLength + 3;
    let body = t.encode(`<ENC>${bos}${text}${eos}`);
    const truncated = body.length > width;
    if (truncated) body = body.slice(0, width);
    const pad = width - body.length;
    return {
      ids: [...new Array(pad).fill(this.padId), ...body, ...this.tokens.mem],
      valid: [...new Array(pad).fill(0), ...new Array(body.length + this.nMem).fill(1)],
      truncated,
    };
  }

  /** Memory placeholders for k documents: n <MEM> tokens then <SEP>, k times (spec §1.5). */
  memorySlots(k: number): string {
    return (memoryTokenNames(this.nMem).join("") + "<SEP>").repeat(k);
  }

  /** Stage 1, data_type "qa": every QA pair of the document in one target. */
  qaExample(questions: string[], answers: string[], maxLength: number): EncodedExample {
    const target = questions.map((q, i) => `Question: ${q}\nAnswer: ${answers[i]}`).join("\n");
    return this.example(SYSTEM_PROMPTS.qa, `Background:\n${this.memorySlots(1)}`, target, maxLength);
  }

  /** Stage 1, data_type "paraphrase": instruction chosen by `pick` (seeded by the caller). */
  paraphraseExample(paraphrase: string, pick: number, maxLength: number): EncodedExample {
    const instruction = PARAPHRASE_INSTRUCTIONS[pick % PARAPHRASE_INSTRUCTIONS.length];
    return this.example(SYSTEM_PROMPTS.paraphrase, instruction.replace("{docs}", this.memorySlots(1)), paraphrase, maxLength);
  }

  /** Stages 2 and 3: k compressed documents, the question, the answer. */
  answerExample(question: string, answer: string, k: number, maxLength: number): EncodedExample {
    return this.example(SYSTEM_PROMPTS.answer, this.answerUser(question, k), answer, maxLength);
  }

  /** The stage 2/3 prompt alone, ending where the answer starts (for generation). */
  answerPrompt(question: string, k: number): number[] {
    return this.prompt(SYSTEM_PROMPTS.answer, this.answerUser(question, k));
  }

  /**
   * Stage 1's QA prompt with one question already written as the start of the answer, so the
   * generator's continuation up to the next line is its answer: how a stage-1 model (never
   * trained on the stage-2 template) is asked about a compressed document. `earlier` pairs are
   * written before it, as stage 1 trains: a record's later questions always follow its earlier
   * ones there, so asked alone they would be out of place.
   */
  qaProbePrompt(question: string, earlier: { questions: string[]; answers: string[] } = { questions: [], answers: [] }): number[] {
    const prefix = this.prompt(SYSTEM_PROMPTS.qa, `Background:\n${this.memorySlots(1)}`);
    const pairs = earlier.questions.map((q, i) => `Question: ${q}\nAnswer: ${earlier.answers[i]}\n`).join("");
    return [...prefix, ...this.tokenizer.encode(`${pairs}Question: ${question}\nAnswer:`)];
  }

  /** The paraphrase prompt alone (compression-quality evaluation). */
  paraphrasePrompt(pick = 0): number[] {
    const instruction = PARAPHRASE_INSTRUCTIONS[pick % PARAPHRASE_INSTRUCTIONS.length];
    return this.prompt(SYSTEM_PROMPTS.paraphrase, instruction.replace("{docs}", this.memorySlots(1)));
  }

  private answerUser(question: string, k: number): string {
    return `Background:\n${this.memorySlots(k)}\n\nQuestion:${question}`;
  }

  private prompt(system: string, user: string): number[] {
    const text = this.tokenizer.applyChatTemplate(
      [
        { role: "system", content: system },
        { role: "user", content: user },
      ],
      { addGenerationPrompt: true },
    );
    return this.tokenizer.encode(text);
  }

  /** Prompt + answer; only what follows the prompt is supervised (spec §1.5: answer and EOS). */
  private example(system: string, user: string, answer: string, maxLength: number): EncodedExample {
    const promptLength = this.prompt(system, user).length;
    const full = this.tokenizer.encode(
      this.tokenizer.applyChatTemplate([
        { role: "system", content: system },
        { role: "user", content: user },
        { role: "assistant", content: answer },
      ]),
    );
    const tokens = full.slice(0, maxLength);
    return { tokens, lossMask: tokens.map((_, i) => (i >= promptLength ? 1 : 0)) };
  }
}
