/** Shared pieces of the generation tasks: prompt encoding (chat template or plain), and lm-eval-style filters. */
import type { EvalModel } from "../model.js";
import type { Tokenizer } from "../requests.js";

export type Message = { role: "system" | "user" | "assistant"; content: string };

/**
 * Messages → prompt ids: the model's chat template when it has one, else a plain "USER: …\nASSISTANT:" transcript
 * (FastChat's one-shot style), which is what a base model without a template gets.
 */
export function encodeChat(tok: Tokenizer, messages: Message[], useTemplate = true): { ids: number[]; templated: boolean } {
  if (useTemplate && tok.applyChatTemplate) return { ids: tok.applyChatTemplate(messages), templated: true };
  const text =
    messages.map((m) => (m.role === "system" ? `${m.content}\n\n` : m.role === "user" ? `USER: ${m.content}\n` : `ASSISTANT: ${m.content}\n`)).join("") + "ASSISTANT:";
  return { ids: tok.encode(text, { bos: true }), templated: false };
}

/** Stop strings for the plain transcript. */
export const PLAIN_CHAT_STOPS = ["USER:", "</s>", "<|im_end|>", "<|eot_id|>"];

/** lm-eval RegexFilter: the `groupSelect`-th match (negative from the end); with several groups the first non-empty. */
export function regexFilter(text: string, pattern: RegExp, groupSelect = 0, fallback = "[invalid]"): string {
  const re = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
  const matches = [...text.matchAll(re)];
  if (matches.length === 0) return fallback;
  const m = matches[groupSelect < 0 ? matches.length + groupSelect : groupSelect];
  if (!m) return fallback;
  const groups = m.slice(1);
  const pick = groups.length === 0 ? m[0] : groups.find((g) => g !== undefined && g !== "") ?? fallback;
  return pick.trim();
}

/** lm-eval exact_match with ignore_case and regexes_to_ignore applied to both sides. */
export function exactMatch(pred: string, ref: string, ignore: RegExp[], ignoreCase = true): boolean {
  const norm = (s: string) => {
    for (const r of ignore) s = s.replace(new RegExp(r.source, r.flags.includes("g") ? r.flags : `${r.flags}g`), "");
    return ignoreCase ? s.toLowerCase() : s;
  };
  return norm(pred) === norm(ref);
}

export function maxGen(model: Pick<EvalModel, "maxContext">, promptLength: number, want: number): number {
  return Math.max(0, Math.min(want, model.maxContext - promptLength));
}
