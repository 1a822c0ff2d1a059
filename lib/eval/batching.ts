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
  /** Tokens per model call for "auto" (default 16384, the runtime's own scoring batch). */
  tokenBudget?: number;
  /** Upper bound on requests per call for "auto" (default 256). */
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
  const budget = opts.tokenBudget ?? 16384;
  const maxBatch = opts.maxBatch ?? 256;
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

/** A runner that scores several continuations of one context with the context run once (see native_model.ts). */
export interface PrefixScorer {
  loglikelihoodGroups(groups: readonly { context: readonly number[]; continuations: readonly (readonly number[])[] }[]): Promise<LoglikelihoodResult[][]>;
}

function isPrefixScorer(m: EvalModel): m is EvalModel & PrefixScorer {
  return typeof (m as Partial<PrefixScorer>).loglikelihoodGroups === "function";
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
  const unique = new Map<string, { req: LoglikelihoodRequest; ctxKey: string; copies: number; result?: LoglikelihoodResult }>();
  const slot: string[] = [];
  for (const r of requests) {
    const k = key(r);
    const u = unique.get(k);
    if (u) u.copies++;
    else unique.set(k, { req: r, ctxKey: r.context.join(","), copies: 1 });
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
  if (isPrefixScorer(model)) {
    // Shared prefixes: one group per context, its continuations scored on top of the context's KV cache.
    const groups: (typeof order)[] = [];
    for (const e of order) {
      const last = groups[groups.length - 1];
      if (last && last[0].ctxKey === e.ctxKey) last.push(e);
      else groups.push([e]);
    }
    const tokensOf = (g: typeof order) => g[0].req.context.length + g.reduce((a, e) => a + e.req.continuation.length, 0);
    const groupOpts = opts.batchSize === undefined || opts.batchSize === "auto" ? opts : { ...opts, batchSize: Math.max(1, Math.ceil(opts.batchSize / 4)) };
    for (const batch of packBatches(groups, tokensOf, groupOpts)) {
      const res = await model.loglikelihoodGroups(batch.map((g) => ({ context: g[0].req.context, continuations: g.map((e) => e.req.continuation) })));
      batch.forEach((g, i) => g.forEach((e, j) => (e.result = res[i][j])));
      progress?.tick(batch.reduce((a, g) => a + g.reduce((b, e) => b + e.copies, 0), 0));
    }
    return slot.map((k) => unique.get(k)!.result!);
  }
  const batches = packBatches(order, (e) => requestLength(e.req), opts);
  for (const batch of batches) {
    const res = await model.loglikelihood(batch.map((e) => e.req));
    if (res.length !== batch.length) {
      throw new Error(`model ${model.name}: loglikelihood returned ${res.length} results for ${batch.length} requests`);
    }
    batch.forEach((e, i) => (e.result = res[i]));
    progress?.tick(batch.reduce((a, e) => a + e.copies, 0));
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

/** A runner that decodes several prompts in one batched loop (lib/model's LlamaModel.generateBatch). */
export interface BatchGenerator {
  generateBatch(prompts: readonly (readonly number[])[], opts: Omit<GenerateOptions, "onToken">): Promise<GenerateResult[]>;
}

function hasGenerateBatch(m: EvalModel): m is EvalModel & BatchGenerator {
  return typeof (m as Partial<BatchGenerator>).generateBatch === "function";
}

/**
 * Generation requests, results in input order. Greedy requests go to the runner's batched decode
 * (`generateBatch`) in groups of `batchSize` (auto: 16) prompts that share their options; sampled requests run one
 * at a time with their own seed, so a sample never depends on its batch. Calls to one model never overlap (a
 * runner's session is not re-entrant).
 */
export async function generateBatched(
  model: EvalModel,
  prompts: readonly (readonly number[])[],
  gen: GenerateOptions | ((index: number) => GenerateOptions),
  opts: BatchOptions = {},
  progress?: Progress,
): Promise<GenerateResult[]> {
  const width = opts.batchSize === undefined || opts.batchSize === "auto" ? 16 : opts.batchSize;
  const optsOf = (i: number) => (typeof gen === "function" ? gen(i) : gen);
  const out: GenerateResult[] = new Array(prompts.length);
  const greedy: number[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const o = optsOf(i);
    if (hasGenerateBatch(model) && !((o.temperature ?? 0) > 0) && !o.onToken && width > 1) greedy.push(i);
    else {
      out[i] = await model.generate(prompts[i], o);
      progress?.tick(1);
    }
  }
  if (greedy.length > 0 && hasGenerateBatch(model)) {
    // Group by identical options (maxTokens, stops), longest prompts first, then cut into batches.
    const groups = new Map<string, number[]>();
    for (const i of greedy) {
      const o = optsOf(i);
      const key = JSON.stringify([o.maxTokens, o.stop ?? []]);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(i);
    }
    for (const idx of groups.values()) {
      idx.sort((a, b) => prompts[b].length - prompts[a].length || a - b);
      for (let k = 0; k < idx.length; k += width) {
        const part = idx.slice(k, k + width);
        const { onToken: _drop, ...o } = optsOf(part[0]);
        const res = await model.generateBatch(part.map((i) => prompts[i]), { ...o, temperature: 0 });
        part.forEach((i, j) => (out[i] = res[j]));
        progress?.tick(part.length);
      }
    }
  }
  return out;
}
