/**
 * Needle in a haystack (gkamradt/LLMTest_NeedleInAHaystack): the Paul Graham essays (sorted by file name,
 * concatenated) are cut to each context length, the needle is inserted at each depth (moved back to the end of the
 * preceding sentence, as the original does) and the model is asked the retrieval question. A cell scores 1 when
 * the answer contains the needle's value ("eat a sandwich and sit in Dolores Park", case-insensitive).
 * Context lengths are whole prompts in tokens; lengths over the model's maxContext are skipped with a note.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { generateBatched } from "../batching.js";
import { dataFile, readText } from "../data.js";
import { meanMetric, type Metric } from "../stats.js";
import { encodeChat, maxGen, PLAIN_CHAT_STOPS, type Message } from "./generation.js";
import type { Tokenizer } from "../requests.js";
import type { EvalTask, TaskResult } from "./types.js";

export const NEEDLE = "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";
export const NEEDLE_VALUE = "eat a sandwich and sit in Dolores Park";
export const QUESTION = "What is the best thing to do in San Francisco?";
const SYSTEM = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct";

export const DEFAULT_LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768];
export const DEFAULT_DEPTHS = [0, 25, 50, 75, 100];

interface Cell {
  length: number;
  depth: number;
  ids: number[];
}

interface PreparedNeedle {
  cells: Cell[];
  notes: string[];
  maxTokens: number;
  plain: boolean;
}

function messages(context: string): Message[] {
  return [
    { role: "system", content: SYSTEM },
    { role: "user", content: `${context}\n\n${QUESTION} Don't give information outside the document or repeat your findings` },
  ];
}

/** Haystack tokens cut to `budget`, needle inserted at `depth` % (backed up to just after a period). */
export function buildContext(tok: Tokenizer, hay: number[], budget: number, depth: number): string {
  const needle = tok.encode(NEEDLE, { bos: false });
  const room = Math.max(0, budget - needle.length);
  const ctx = hay.slice(0, room);
  let at = depth >= 100 ? ctx.length : Math.floor((ctx.length * depth) / 100);
  if (at < ctx.length) {
    const period = new Set(tok.encode(".", { bos: false }));
    while (at > 0 && !period.has(ctx[at - 1])) at--;
  }
  return tok.decode([...ctx.slice(0, at), ...needle, ...ctx.slice(at)]);
}

export const needleHaystack: EvalTask<PreparedNeedle> = {
  name: "needle",
  kind: "generation",
  display: [{ metric: "acc", higherIsBetter: true }],
  prepare(env) {
    const dir = dataFile(env.dataDir, "needle_haystack_pg_essays/essays");
    const files = readdirSync(dir).filter((f) => f.endsWith(".txt")).sort();
    const lengths = env.options.contextLengths ?? DEFAULT_LENGTHS;
    const depths = env.options.depths ?? DEFAULT_DEPTHS;
    const maxTokens = env.options.maxGenTokens ?? 64;
    const notes: string[] = [];
    const usable = lengths.filter((l) => l <= env.tok.maxContext);
    for (const l of lengths) if (l > env.tok.maxContext) notes.push(`context length ${l} skipped: exceeds maxContext ${env.tok.maxContext}`);
    // Tokenize only as much haystack as the longest context needs (characters ≥ tokens for every tokenizer here).
    const longest = Math.max(0, ...usable);
    let text = "";
    for (const f of files) {
      if (text.length > longest * 8) break;
      text += readText(join(dir, f));
    }
    const hay = env.tok.encode(text, { bos: false });
    const cells: Cell[] = [];
    for (const length of usable) {
      const overhead = encodeChat(env.tok, messages("")).ids.length;
      const budget = length - overhead - maxTokens;
      if (budget <= 0) {
        notes.push(`context length ${length} skipped: prompt overhead ${overhead} + ${maxTokens} answer tokens leave no room`);
        continue;
      }
      if (hay.length < budget) notes.push(`context length ${length}: haystack has only ${hay.length} tokens`);
      for (const depth of depths) cells.push({ length, depth, ids: encodeChat(env.tok, messages(buildContext(env.tok, hay, budget, depth))).ids });
    }
    return { cells, notes, maxTokens, plain: !env.tok.applyChatTemplate };
  },
  async evaluate(p, model, env): Promise<TaskResult> {
    const progress = env.progress(`${env.setting} needle`, p.cells.length);
    const outs = await generateBatched(model, p.cells.map((c) => c.ids), (i) => ({ maxTokens: maxGen(model, p.cells[i].ids.length, p.maxTokens), stop: p.plain ? PLAIN_CHAT_STOPS : undefined, temperature: 0 }), env.batch, progress);
    progress.done();
    const scores = outs.map((o) => (o.text.toLowerCase().includes(NEEDLE_VALUE.toLowerCase()) ? 1 : 0));
    const groups: Record<string, { n: number; metrics: Record<string, Metric> }> = {};
    p.cells.forEach((c, i) => (groups[`L${c.length}_d${c.depth}`] = { n: 1, metrics: { acc: { value: scores[i] } } }));
    for (const l of [...new Set(p.cells.map((c) => c.length))]) {
      const v = scores.filter((_, i) => p.cells[i].length === l);
      groups[`L${l}`] = { n: v.length, metrics: { acc: meanMetric(v) } };
    }
    return {
      n: p.cells.length,
      metrics: p.cells.length ? { acc: meanMetric(scores) } : {},
      groups,
      notes: p.notes.length ? p.notes : undefined,
      samples: env.samples ? p.cells.map((c, i) => ({ length: c.length, depth: c.depth, promptTokens: c.ids.length, output: outs[i].text, correct: scores[i] })) : undefined,
    };
  },
};
