/**
 * Fixtures for the evaluation-loop tests: a tiny dataset folder written to a temp dir, and an independent
 * re-derivation of the toy bigram model's probabilities from raw counts, so expected metrics are computed by hand
 * in the tests rather than by the code under test.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { EvalModel, LoglikelihoodRequest } from "../../lib/eval/model.js";

export const TRAIN =
  "Question: what color is the sky? Answer: blue. the sky is blue and the grass is green. " +
  "the cat sat on the mat. the dog sat on the log. Yes, the sun is hot; no, the snow is not hot. " +
  "water flowed from the spout. she lost her appetite. it was a sunny day in the park.";

const V = 258;
const BOS = 256;

/** log p(b | a) of the add-½ bigram model of `train`, float32 like the model's table. */
export function refLogp(train: string, alpha = 0.5): (a: number, b: number) => number {
  const bytes = [BOS, ...Buffer.from(train, "utf8")];
  const pair = new Map<number, number>();
  const uni = new Map<number, number>();
  for (let i = 0; i + 1 < bytes.length; i++) {
    pair.set(bytes[i] * V + bytes[i + 1], (pair.get(bytes[i] * V + bytes[i + 1]) ?? 0) + 1);
    uni.set(bytes[i], (uni.get(bytes[i]) ?? 0) + 1);
  }
  return (a, b) => Math.fround(Math.log(((pair.get(a * V + b) ?? 0) + alpha) / ((uni.get(a) ?? 0) + alpha * V)));
}

/** Σ log p(continuation | context) with BOS before the context, by hand. */
export function refLl(lp: (a: number, b: number) => number, context: string, continuation: string): number {
  const ctx = [BOS, ...Buffer.from(context, "utf8")];
  let prev = ctx[ctx.length - 1];
  let s = 0;
  for (const b of Buffer.from(continuation, "utf8")) {
    s += lp(prev, b);
    prev = b;
  }
  return s;
}

/** Whether every continuation byte is the argmax (first on ties) after its predecessor. */
export function refGreedy(lp: (a: number, b: number) => number, context: string, continuation: string): boolean {
  const ctx = [BOS, ...Buffer.from(context, "utf8")];
  let prev = ctx[ctx.length - 1];
  for (const b of Buffer.from(continuation, "utf8")) {
    let best = 0;
    for (let j = 1; j < V; j++) if (lp(prev, j) > lp(prev, best)) best = j;
    if (best !== b) return false;
    prev = b;
  }
  return true;
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
export const stderr = (xs: number[]): number => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) / Math.sqrt(xs.length);
};
export const argmax = (xs: number[]): number => xs.reduce((bi, x, i) => (x > xs[bi] ? i : bi), 0);

/** Writes files {relative path: content} under a fresh temp dir; returns the dir. */
export function writeDataDir(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "quanteval-data-"));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

export const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

/** Wraps a model and records every log-likelihood request as decoded strings (BOS dropped). */
export function recording(model: EvalModel): { model: EvalModel; seen: { context: string; continuation: string }[] } {
  const seen: { context: string; continuation: string }[] = [];
  const wrapped: EvalModel = Object.create(model);
  wrapped.loglikelihood = async (reqs: readonly LoglikelihoodRequest[]) => {
    for (const r of reqs) seen.push({ context: model.decode(r.context), continuation: model.decode(r.continuation) });
    return model.loglikelihood(reqs);
  };
  return { model: wrapped, seen };
}
