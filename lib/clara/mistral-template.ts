// The chat template Apple's CLaRa-7B checkpoints were trained with (spec §1.5): the one of
// mistralai/Mistral-7B-Instruct-v0.2 as updated in June 2024 (HF PR #136, aligned with
// mistral_common). It accepts a leading system message and renders
//   <s> [INST] {system}\n\n{user} [/INST]              (prompt)
//   <s> [INST] {system}\n\n{user} [/INST] {answer}</s>  (prompt + response)
// The template first published with v0.2 refuses a system turn ("Conversation roles must
// alternate…"), which would crash the reference; folding the system text into the user turn
// (our generic fallback, "system\nuser") would give prompts the checkpoints never saw.

import { ClaraError } from "../errors";
import type { Tokenizer } from "../tokenizer";

const { Template } = require("@huggingface/jinja") as typeof import("@huggingface/jinja", {
  with: { "resolution-mode": "import" },
});

/** tokenizer_config.json's chat_template of Mistral-7B-Instruct-v0.2 since June 2024. */
export const MISTRAL_V02_CHAT_TEMPLATE = [
  "{%- if messages[0]['role'] == 'system' %}",
  "    {%- set system_message = messages[0]['content'] %}",
  "    {%- set loop_messages = messages[1:] %}",
  "{%- else %}",
  "    {%- set loop_messages = messages %}",
  "{%- endif %}",
  "",
  "{{- bos_token }}",
  "{%- for message in loop_messages %}",
  "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}",
  "        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}",
  "    {%- endif %}",
  "    {%- if message['role'] == 'user' %}",
  "        {%- if loop.first and system_message is defined %}",
  "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}",
  "        {%- else %}",
  "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}",
  "        {%- endif %}",
  "    {%- elif message['role'] == 'assistant' %}",
  "        {{- ' ' + message['content'] + eos_token}}",
  "    {%- else %}",
  "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}",
  "    {%- endif %}",
  "{%- endfor %}",
].join("\n");

const PROBE = { system: "\u0001system\u0001", user: "\u0001user\u0001" };

/**
 * Whether the tokenizer's own template takes a system turn as its own: it renders system +
 * user without error and keeps the system text (rather than dropping it).
 */
export function templateAcceptsSystemTurn(tokenizer: Tokenizer): boolean {
  const source = tokenizer.chatTemplate;
  if (typeof source !== "string") return false;
  const token = (id: number | undefined) => (id === undefined ? "" : tokenizer.idToToken(id) ?? "");
  try {
    const out = new Template(source).render({
      messages: [
        { role: "system", content: PROBE.system },
        { role: "user", content: PROBE.user },
      ],
      bos_token: token(tokenizer.bosTokenId),
      eos_token: token(tokenizer.eosTokenId),
      add_generation_prompt: true,
    });
    return out.includes(PROBE.system) && out.includes(PROBE.user);
  } catch {
    return false;
  }
}

/**
 * Installs MISTRAL_V02_CHAT_TEMPLATE when the tokenizer has no chat template or its template
 * refuses a system turn (the original v0.2 one); a template that takes system turns is kept.
 * `force` installs it regardless. Returns whether it was installed.
 */
export function installMistralTemplate(tokenizer: Tokenizer, options: { force?: boolean } = {}): boolean {
  if (!options.force && templateAcceptsSystemTurn(tokenizer)) return false;
  tokenizer.setChatTemplate(MISTRAL_V02_CHAT_TEMPLATE);
  return true;
}

/** The prompt the reference renders for (system, user), and with the answer, via the template. */
export function renderMistralPrompt(system: string, user: string, answer?: string, tokens = { bos: "<s>", eos: "</s>" }): string {
  const messages = [
    { role: "system", content: system },
    { role: "user", content: user },
    ...(answer === undefined ? [] : [{ role: "assistant", content: answer }]),
  ];
  try {
    return new Template(MISTRAL_V02_CHAT_TEMPLATE).render({ messages, bos_token: tokens.bos, eos_token: tokens.eos, add_generation_prompt: answer === undefined });
  } catch (e) {
    throw new ClaraError("E_TOKENIZER", `the Mistral v0.2 chat template failed: ${(e as Error).message}`, { cause: e });
  }
}
