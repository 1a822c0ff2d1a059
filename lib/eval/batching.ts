/**
 * Request scheduling between the tasks and the model: identical requests are scored once, requests are sorted by
 * length (longest first, as lm-eval: padding waste is small and an out-of-memory shows up on the first batch) and
 * packed into batches either of a fixed number of requests or, with "auto", up to a token budget. Requests that
 * share a context are kept next to each other so a runner that caches the context's KV can reuse it.
 *
 * Results are mapped back to the caller's order. Because EvalModel promises batch-independent scores, the result
 * is identical whatever the batch size (tested).
 */
import type { EvalModel, GenerateOptions, GenerateResult, LoglikelihoodRequest, LoglikelihoodResult, WindowScore } from "./model.js";
import type { Progress } from "./progress.js";
import { requestLength } from "./requests.js";

export interface BatchOptions {
  /** Requests per model call, or "auto": as many as fit `tokenBudget` tokens (at most `maxBatch`). Default "auto". */
  batchSize?: number | "auto";
  /** Tokens per model call for "auto" (default 8192). */
  tokenBudget?: number;
  /** Upper bound on requests per call for "auto" (default 64). */
  maxBatch?: number;
}

/** Splits items (already sorted) into batches by count or by token budget. */
export function packBatches<T>(items: readonly T[], lengthOf: (t: T) => number, opts: BatchOptions = {}): T[][] {
  const out: T[][] = [];
  const bs = opts.batchSize ?? "auto";
  if (bs !== "auto") {
    if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`batchSize: expected a positive integer or "auto", got ${bs}`);
    for (let i = 0; i < items.length; i += bs) out.push(items.slice(i, i + bs));
    return out;
  }
  const budget = opts.tokenBudget ?? 8192;
  const maxBatch = opts.maxBatch ?? 64;
  let cur: T[] = [];
  let tokens = 0;
  for (const it of items) {
    const n = lengthOf(it);
    if (cur.length > 0 && (tokens + n > budget || cur.length >= maxBatch)) {
      out.push(cur);
      cur = [];
      tokens = 0;
    }
    cur.push(it);
    tokens += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function key(r: LoglikelihoodRequest): string {
  return `${r.context.join(",")}|${r.continuation.join(",")}`;
}

/** Scores all requests, deduplicated and batched; results in the order of `requests`. */
export async function scoreLoglikelihood(
  model: EvalModel,
  requests: readonly LoglikelihoodRequest[],
  opts: BatchOptions = {},
  progress?: Progress,
): Promise<LoglikelihoodResult[]> {
  const unique = new Map<string, { req: LoglikelihoodRequest; ctxKey: string; result?: LoglikelihoodResult }>();
  const slot: string[] = [];
  for (const r of requests) {
    const k = key(r);
    if (!unique.has(k)) unique.set(k, { req: r, ctxKey: r.context.join(",") });
    slot.push(k);
  }
  const entries = [...unique.values()];
  // Longest context group first; within a context, longest continuation first. Stable for equal lengths.
  const groupLen = new Map<string, number>();
  for (const e of entries) groupLen.set(e.ctxKey, Math.max(groupLen.get(e.ctxKey) ?? 0, requestLength(e.req)));
  const order = entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => {
      const ga = groupLen.get(a.e.ctxKey)!;
      const gb = groupLen.get(b.e.ctxKey)!;
      if (ga !== gb) return gb - ga;
      if (a.e.ctxKey !== b.e.ctxKey) return a.e.ctxKey < b.e.ctxKey ? -1 : 1;
      return requestLength(b.e.req) - requestLength(a.e.req) || a.i - b.i;
    })
    .map((x) => x.e);
  const batches = packBatches(order, (e) => requestLength(e.req), opts);
  for (const batch of batches) {
    const res = await model.loglikelihood(batch.map((e) => e.req));
    if (res.length !== batch.length) {
      throw new Error(`model ${model.name}: loglikelihood returned ${res.length} results for ${batch.length} requests`);
    }
    batch.forEach((e, i) => (e.result = res[i]));
    progress?.tick(batch.length);
  }
  return slot.map((k) => unique.get(k)!.result!);
}

/** Windows scored in batches (same packing rules); results in input order. */
export async function scoreWindowsBatched(
  model: EvalModel,
  windows: readonly Int32Array[],
  opts: BatchOptions & { logSoftmax?: boolean } = {},
  progress?: Progress,
): Promise<WindowScore[]> {
  const idx = windows.map((_, i) => i);
  const out: WindowScore[] = new Array(windows.length);
  for (const batch of packBatches(idx, (i) => windows[i].length, opts)) {
    const res = await model.scoreWindows(batch.map((i) => windows[i]), { logSoftmax: opts.logSoftmax });
    batch.forEach((i, j) => (out[i] = res[j]));
    progress?.tick(batch.length);
  }
  return out;
}

/**
 * Generation requests: `batchSize` prompts are in flight at once (a runner that batches decode steps across
 * concurrent sessions can use them; results do not depend on it). Results in input order.
 */
export async function generateBatched(
  model: EvalModel,
  prompts: readonly (readonly number[])[],
  gen: GenerateOptions | ((index: number) => GenerateOptions),
  opts: BatchOptions = {},
  progress?: Progress,
): Promise<GenerateResult[]> {
  const width = opts.batchSize === undefined || opts.batchSize === "auto" ? 8 : opts.batchSize;
  const out: GenerateResult[] = new Array(prompts.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < prompts.length) {
      const i = next++;
      out[i] = await model.generate(prompts[i], typeof gen === "function" ? gen(i) : gen);
      progress?.tick(1);
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, prompts.length) }, worker));
  return out;
}
