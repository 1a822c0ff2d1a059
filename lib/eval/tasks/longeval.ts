/**
 * LongChat LongEval retrieval: `longeval_lines` (N lines "line <name>: REGISTER_CONTENT is <number>", asked for one
 * line's number; correct when the first integer of the answer is the expected number) and `longeval_topics`
 * (a multi-topic conversation, asked for the first topic; correct when the answer contains it, case-insensitive).
 * The prompt is the user turn of the model's chat template (plain transcript without one), greedy decoding.
 * Accuracy per length (file) in `groups` and over all evaluated cases; cases longer than the model's maxContext are
 * skipped with a note. `limit` is per file.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { generateBatched } from "../batching.js";
import { dataFile, jsonlRows } from "../data.js";
import { meanMetric, type Metric } from "../stats.js";
import { encodeChat, maxGen, PLAIN_CHAT_STOPS } from "./generation.js";
import type { EvalTask, TaskResult } from "./types.js";

interface Case {
  group: string;
  id: string;
  ids: number[];
  expected: string;
}

interface PreparedLongEval {
  cases: Case[];
  maxTokens: number;
  plain: boolean;
}

export function linesCorrect(output: string, expected: string): boolean {
  const m = /\d+/.exec(output);
  return m !== null && Number(m[0]) === Number(expected);
}

export function topicsCorrect(output: string, expected: string): boolean {
  return output.toLowerCase().includes(expected.toLowerCase());
}

function longEvalTask(kind: "lines" | "topics"): EvalTask<PreparedLongEval> {
  const name = `longeval_${kind}`;
  const correct = kind === "lines" ? linesCorrect : topicsCorrect;
  return {
    name,
    kind: "generation",
    display: [{ metric: "acc", higherIsBetter: true }],
    prepare(env) {
      const dir = dataFile(env.dataDir, `longeval/${kind}`);
      const files = readdirSync(dir)
        .filter((f) => new RegExp(`^\\d+_${kind}\\.jsonl$`).test(f))
        .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      const cases: Case[] = [];
      for (const f of files) {
        const rows = jsonlRows(join(dir, f));
        for (const r of rows.slice(0, env.options.limit ?? rows.length)) {
          const expected = kind === "lines" ? String(r.int("expected_number")) : r.strings("topics")[0];
          cases.push({ group: f.replace(/\.jsonl$/, ""), id: `longeval/${kind}/${f}:${r.line}`, ids: encodeChat(env.tok, [{ role: "user", content: r.string("prompt") }]).ids, expected });
        }
      }
      return { cases, maxTokens: env.options.maxGenTokens ?? 100, plain: !env.tok.applyChatTemplate };
    },
    async evaluate(p, model, env): Promise<TaskResult> {
      const run = p.cases.filter((c) => c.ids.length + 1 <= model.maxContext);
      const notes: string[] = [];
      const skipped = new Map<string, number>();
      for (const c of p.cases) if (!run.includes(c)) skipped.set(c.group, Math.max(skipped.get(c.group) ?? 0, c.ids.length));
      for (const [g, len] of skipped) notes.push(`${g}: skipped, prompts up to ${len} tokens exceed maxContext ${model.maxContext}`);
      const progress = env.progress(`${env.setting} ${name}`, run.length);
      const outs = await generateBatched(model, run.map((c) => c.ids), (i) => ({ maxTokens: maxGen(model, run[i].ids.length, p.maxTokens), stop: p.plain ? PLAIN_CHAT_STOPS : undefined, temperature: 0 }), env.batch, progress);
      progress.done();
      const scores = run.map((c, i) => (correct(outs[i].text, c.expected) ? 1 : 0));
      const groups: Record<string, { n: number; metrics: Record<string, Metric> }> = {};
      for (const g of [...new Set(run.map((c) => c.group))]) {
        const v = scores.filter((_, i) => run[i].group === g);
        groups[g] = { n: v.length, metrics: { acc: meanMetric(v) } };
      }
      return {
        n: run.length,
        metrics: run.length ? { acc: meanMetric(scores) } : {},
        groups,
        notes: notes.length ? notes : undefined,
        samples: env.samples ? run.map((c, i) => ({ id: c.id, expected: c.expected, output: outs[i].text, correct: scores[i] })) : undefined,
      };
    },
  };
}

export const longevalLines = longEvalTask("lines");
export const longevalTopics = longEvalTask("topics");
