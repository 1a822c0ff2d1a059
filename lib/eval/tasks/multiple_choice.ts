/**
 * Multiple choice by log-likelihood, lm-evaluation-harness `output_type: multiple_choice`:
 * one request per choice, (context, target_delimiter + choice) — or, for partial scoring (WinoGrande), one
 * context per choice and a shared continuation. acc = [argmax ll == gold]; acc_norm = [argmax ll / len(choice) ==
 * gold] with len the choice string's length in characters (code points) as lm-eval computes it (= bytes for
 * ASCII text). Ties go to the first choice (numpy argmax). stderr = sample std / sqrt(n).
 *
 * Few-shot prompts are lm-eval's: description + Σ (text(ex) + " " + target(ex) + "\n\n") + text(doc).
 */
import { scoreLoglikelihood } from "../batching.js";
import type { EvalModel, LoglikelihoodRequest, LoglikelihoodResult } from "../model.js";
import { encodePair, type Tokenizer } from "../requests.js";
import { argmax, meanMetric, type Metric } from "../stats.js";
import { mulberry32 } from "../toy_model.js";
import type { RunEnv, TaskResult } from "./types.js";

export interface McDoc {
  /** Identifies the document in per-sample output (file line, subject/row …). */
  id: string;
  /** One (context, continuation) pair per choice, already formatted (delimiters included). */
  pairs: { context: string; continuation: string }[];
  gold: number;
  /** Lengths for acc_norm (lm-eval: len of each choice string). */
  normLengths: number[];
  /** Subject or other grouping (MMLU). */
  group?: string;
  /** Extra per-doc data for custom scoring (TruthfulQA MC2 labels). */
  labels?: number[];
}

export interface PreparedMc {
  docs: McDoc[];
  requests: LoglikelihoodRequest[];
  /** First request index of each doc. */
  offsets: number[];
  notes: string[];
}

export function prepareMc(tok: Tokenizer, docs: McDoc[], bos: boolean, notes: string[] = []): PreparedMc {
  const requests: LoglikelihoodRequest[] = [];
  const offsets: number[] = [];
  // The choices of a document share its context: encode it once (long few-shot prompts dominate the cost).
  const cache = new Map<string, number[]>();
  // (explicit fields: a runner's properties may be prototype getters, which a spread would drop)
  const cached: Tokenizer = {
    name: tok.name,
    vocabSize: tok.vocabSize,
    bosId: tok.bosId,
    eosIds: tok.eosIds,
    maxContext: tok.maxContext,
    encode: (text, o) => {
      if (o?.bos) return tok.encode(text, o);
      let ids = cache.get(text);
      if (!ids) {
        if (cache.size > 64) cache.clear();
        cache.set(text, (ids = tok.encode(text, o)));
      }
      return ids;
    },
    decode: tok.decode.bind(tok),
  };
  for (const d of docs) {
    offsets.push(requests.length);
    for (const p of d.pairs) requests.push(encodePair(cached, p.context, p.continuation, { bos }));
  }
  return { docs, requests, offsets, notes };
}

/** Per-document scores → metric values (each task picks its own; default acc + acc_norm). */
export type DocScorer = (doc: McDoc, res: LoglikelihoodResult[]) => Record<string, number>;

export const accScorer: DocScorer = (doc, res) => {
  const lls = res.map((r) => r.logprob);
  return {
    acc: argmax(lls) === doc.gold ? 1 : 0,
    acc_norm: argmax(lls.map((l, i) => l / doc.normLengths[i])) === doc.gold ? 1 : 0,
  };
};

export interface McEvalOptions {
  metrics: string[];
  scorer?: DocScorer;
  /** Custom aggregation per metric (default mean with stderr). */
  aggregate?: Record<string, (values: number[]) => Metric>;
  /** Report per-group metrics and also their unweighted average as `<metric>_macro`. */
  groups?: boolean;
}

export async function evaluateMc(prepared: PreparedMc, model: EvalModel, env: RunEnv, name: string, opts: McEvalOptions): Promise<TaskResult> {
  const progress = env.progress(`${env.setting} ${name}`, prepared.requests.length);
  const res = await scoreLoglikelihood(model, prepared.requests, env.batch, progress);
  progress.done();
  const scorer = opts.scorer ?? accScorer;
  const perMetric: Record<string, number[]> = Object.fromEntries(opts.metrics.map((m) => [m, []]));
  const byGroup = new Map<string, Record<string, number[]>>();
  const samples: unknown[] = [];
  prepared.docs.forEach((doc, i) => {
    const r = res.slice(prepared.offsets[i], prepared.offsets[i] + doc.pairs.length);
    const s = scorer(doc, r);
    for (const m of opts.metrics) perMetric[m].push(s[m]);
    if (opts.groups && doc.group !== undefined) {
      if (!byGroup.has(doc.group)) byGroup.set(doc.group, Object.fromEntries(opts.metrics.map((m) => [m, []])));
      for (const m of opts.metrics) byGroup.get(doc.group)![m].push(s[m]);
    }
    if (env.samples) {
      samples.push({ id: doc.id, gold: doc.gold, loglikelihoods: r.map((x) => x.logprob), isGreedy: r.map((x) => x.isGreedy), ...s });
    }
  });
  const agg = (m: string, v: number[]): Metric => (opts.aggregate?.[m] ?? meanMetric)(v);
  const metrics: Record<string, Metric> = {};
  for (const m of opts.metrics) metrics[m] = agg(m, perMetric[m]);
  const result: TaskResult = { n: prepared.docs.length, metrics, notes: prepared.notes.length ? prepared.notes : undefined };
  if (opts.groups) {
    result.groups = {};
    for (const [g, vals] of [...byGroup.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      result.groups[g] = { n: vals[opts.metrics[0]].length, metrics: Object.fromEntries(opts.metrics.map((m) => [m, agg(m, vals[m])])) };
    }
    for (const m of opts.metrics) {
      const gs = Object.values(result.groups).map((g) => g.metrics[m].value);
      metrics[`${m}_macro`] = { value: gs.reduce((a, b) => a + b, 0) / gs.length };
    }
  }
  if (env.samples) result.samples = samples;
  return result;
}

/**
 * lm-eval few-shot sampling when the examples come from the evaluated split itself: for each document draw k+1
 * candidates with a seeded generator (one generator per task, consumed in document order), drop the document
 * itself, keep k. Returns indices into `pool`.
 */
export function fewshotSampler(poolSize: number, seed: number): (k: number, exclude?: number) => number[] {
  const rnd = mulberry32(seed);
  return (k, exclude) => {
    if (k <= 0) return [];
    const want = Math.min(k + 1, poolSize);
    const picked: number[] = [];
    const seen = new Set<number>();
    while (picked.length < want) {
      const j = Math.floor(rnd() * poolSize);
      if (!seen.has(j)) {
        seen.add(j);
        picked.push(j);
      }
    }
    return picked.filter((j) => j !== exclude).slice(0, k);
  };
}

/** lm-eval prompt assembly: description + examples (each "text target") joined and ended by "\n\n" + text. */
export function fewshotPrompt(description: string, examples: { text: string; target: string }[], text: string, targetDelimiter = " "): string {
  const shots = examples.map((e) => `${e.text}${targetDelimiter}${e.target}\n\n`).join("");
  return `${description}${shots}${text}`;
}
