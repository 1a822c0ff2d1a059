/**
 * Perplexity tasks: `wikitext2` (raw test split joined the GPTQ way), `tinystories` (the staged validation subset),
 * `text:<file>` (any UTF-8 file). The whole text is encoded once (one BOS first) and cut into windows by the
 * protocol in ../perplexity.ts: non-overlapping windows of `seqLen` (default), or sliding windows with `stride`.
 * `limit` caps the number of windows.
 *
 * Several settings are evaluated window chunk by window chunk (`evaluateMany`) so that each setting's log-softmax
 * rows meet the baseline's rows of the same windows: KL divergence, top-1 agreement and Δp (../kl.ts) come out of
 * the same pass as the perplexities, holding at most ~256 MB of rows at a time.
 */
import { resolve } from "node:path";
import { scoreWindowsBatched } from "../batching.js";
import { dataFile, readText } from "../data.js";
import { AgreementAccumulator } from "../kl.js";
import type { EvalModel } from "../model.js";
import { accumulateNll, nonOverlappingWindows, slidingWindows, wikitext2GptqText, type PplWindow } from "../perplexity.js";
import type { Metric } from "../stats.js";
import type { EvalTask, PrepareEnv, RunEnv, TaskResult } from "./types.js";

export interface PreparedPpl {
  source: string;
  streamTokens: number;
  seqLen: number;
  stride?: number;
  windows: PplWindow[];
  kl: boolean;
}

const ROWS_BUDGET_BYTES = 256 * 2 ** 20;

function perplexityTask(name: string, source: (env: PrepareEnv) => { file: string; text: string }): EvalTask<PreparedPpl> {
  const task: EvalTask<PreparedPpl> = {
    name,
    kind: "perplexity",
    display: [
      { metric: "ppl", higherIsBetter: false },
      { metric: "kl_mean", higherIsBetter: false },
      { metric: "top1", higherIsBetter: true },
    ],
    prepare(env) {
      const { file, text } = source(env);
      const stream = Int32Array.from(env.tok.encode(text, { bos: true }));
      const seqLen = env.options.seqLen ?? Math.min(512, env.tok.maxContext);
      if (seqLen > env.tok.maxContext) throw new RangeError(`seqLen: ${seqLen} exceeds the model's maxContext ${env.tok.maxContext}`);
      const stride = env.options.stride;
      let windows = stride === undefined ? nonOverlappingWindows(stream, seqLen) : slidingWindows(stream, seqLen, stride);
      if (env.options.limit !== undefined) windows = windows.slice(0, env.options.limit);
      return { source: file, streamTokens: stream.length, seqLen, stride, windows, kl: env.options.kl ?? true };
    },
    async evaluate(p, model, env) {
      return (await task.evaluateMany!(p, [{ setting: env.setting, model, record: true }], env))[0];
    },
    async evaluateMany(p, models, env) {
      const kl = p.kl && models.length > 1;
      const V = models[0].model.vocabSize;
      for (const m of models) {
        if (m.model.vocabSize !== V) throw new Error(`setting ${m.setting}: vocabSize ${m.model.vocabSize} differs from the baseline's ${V}`);
      }
      const rowBytes = (p.seqLen - 1) * V * 4 * 2;
      const chunk = kl ? Math.max(1, Math.floor(ROWS_BUDGET_BYTES / rowBytes)) : p.windows.length;
      const nll = models.map(() => ({ nll: 0, count: 0 }));
      const agree = models.map(() => new AgreementAccumulator(V));
      const progress = env.progress(`${models.map((m) => m.setting).join("+")} ${name}`, p.windows.length * models.length);
      for (let c = 0; c < p.windows.length; c += chunk) {
        const ws = p.windows.slice(c, c + chunk);
        const toks = ws.map((w) => w.tokens);
        let base: Float32Array[] = [];
        for (let mi = 0; mi < models.length; mi++) {
          const scores = await scoreWindowsBatched(models[mi].model, toks, { ...env.batch, logSoftmax: kl }, progress);
          const a = accumulateNll(ws, scores.map((s) => s.logprobs));
          nll[mi].nll += a.nll;
          nll[mi].count += a.count;
          if (!kl) continue;
          const rows = scores.map((s, i) => {
            const r = s.logSoftmax;
            if (!r || r.length !== (ws[i].tokens.length - 1) * V) {
              throw new Error(`setting ${models[mi].setting}: scoreWindows(logSoftmax) returned ${r?.length ?? "no"} values, expected ${(ws[i].tokens.length - 1) * V}`);
            }
            return r;
          });
          if (mi === 0) base = rows;
          else ws.forEach((w, i) => agree[mi].add(base[i], rows[i], w.tokens.subarray(1), w.scoreFrom - 1, w.tokens.length - 1));
        }
      }
      progress.done();
      return models.map((m, mi): TaskResult => {
        const { nll: s, count } = nll[mi];
        const metrics: Record<string, Metric> = { ppl: { value: Math.exp(s / count) }, nll: { value: s / count } };
        const res: TaskResult = {
          n: count,
          metrics,
          details: { source: p.source, streamTokens: p.streamTokens, seqLen: p.seqLen, stride: p.stride ?? null, windows: p.windows.length, nllSum: s, predictedTokens: count },
        };
        if (kl && mi > 0) {
          const st = agree[mi].result();
          metrics.kl_mean = st.kl.mean;
          metrics.kl_p99 = { value: st.kl.p99 };
          metrics.top1 = st.top1;
          metrics.delta_p_mean = st.deltaP.mean;
          metrics.delta_p_rms = { value: st.deltaP.rms };
          metrics.ln_ppl_ratio = st.lnPplRatio;
          (res.details as Record<string, unknown>).agreement = { baseline: models[0].setting, ...st };
        }
        return res;
      });
    },
  };
  return task;
}

export const wikitext2 = perplexityTask("wikitext2", (env) => {
  const file = dataFile(env.dataDir, "wikitext2_raw/wiki.test.raw");
  return { file, text: wikitext2GptqText(file) };
});

export const tinystories = perplexityTask("tinystories", (env) => {
  const file = dataFile(env.dataDir, "tinystories_val_subset/tinystories_val_subset.txt");
  return { file, text: readText(file) };
});

/** `text:<path>`: perplexity of any UTF-8 text file (path relative to the working directory). */
export function textPerplexity(path: string): EvalTask<PreparedPpl> {
  return perplexityTask(`text:${path}`, () => {
    const file = resolve(path);
    return { file, text: readText(file) };
  });
}

export type { EvalModel };
