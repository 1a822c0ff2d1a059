/**
 * Efficiency measurements a model runner can offer (the native runtime implements this; the evaluation loop calls
 * it in the same run as the quality tasks). A model offers it through an `efficiency()` method.
 */
import type { EvalModel } from "./model.js";
import { quantileSorted, sorted } from "./stats.js";

export interface LatencyRequest {
  /** Prompt length in tokens (prefill). */
  contextLength: number;
  /** Sequences decoded together. */
  batchSize: number;
  /** Decode steps to time after the prefill. */
  decodeTokens: number;
}

export interface LatencyResult {
  /** Time to first token: prefill of contextLength tokens plus the first sampled token, ms. */
  ttftMs: number;
  /** Wall time of each decode step (one token for every sequence of the batch), ms. */
  decodeMs: number[];
}

export interface EfficiencyProbe {
  /** Bytes of resident weights as stored (packed low-bit plus scales/zeros). */
  weightBytes(): number;
  /** Bytes of KV cache for `batchSize` sequences of `contextLength` tokens in this setting's cache format. */
  kvCacheBytes(contextLength: number, batchSize: number): number;
  /** Peak device (or process) memory so far, bytes, when the runner can tell. */
  peakMemoryBytes?(): number;
  measureLatency(req: LatencyRequest): Promise<LatencyResult>;
}

export interface Measurable {
  efficiency(): EfficiencyProbe;
}

export function efficiencyProbeOf(model: EvalModel): EfficiencyProbe | undefined {
  const m = model as EvalModel & Partial<Measurable>;
  return typeof m.efficiency === "function" ? m.efficiency() : undefined;
}

export interface EfficiencyOptions {
  contextLengths: number[];
  batchSizes: number[];
  decodeTokens: number;
}

export interface EfficiencyReport {
  weightBytes: number;
  kvCacheBytes: { contextLength: number; batchSize: number; bytes: number }[];
  peakMemoryBytes?: number;
  latency: {
    contextLength: number;
    batchSize: number;
    ttftMs: number;
    decodeMsP50: number;
    decodeMsP90: number;
    /** Generated tokens per second over the timed decode steps (all sequences of the batch). */
    tokensPerSecond: number;
  }[];
  skipped: string[];
}

/** Runs the probe over context length × batch size; lengths over the model's maxContext are skipped with a note. */
export async function measureEfficiency(model: EvalModel, probe: EfficiencyProbe, opts: EfficiencyOptions): Promise<EfficiencyReport> {
  const report: EfficiencyReport = { weightBytes: probe.weightBytes(), kvCacheBytes: [], latency: [], skipped: [] };
  for (const ctx of opts.contextLengths) {
    if (ctx + opts.decodeTokens > model.maxContext) {
      report.skipped.push(`context ${ctx} + ${opts.decodeTokens} decode tokens exceeds maxContext ${model.maxContext}`);
      continue;
    }
    for (const bs of opts.batchSizes) {
      report.kvCacheBytes.push({ contextLength: ctx, batchSize: bs, bytes: probe.kvCacheBytes(ctx, bs) });
      const r = await probe.measureLatency({ contextLength: ctx, batchSize: bs, decodeTokens: opts.decodeTokens });
      const s = sorted(r.decodeMs);
      const total = r.decodeMs.reduce((a, b) => a + b, 0);
      report.latency.push({
        contextLength: ctx,
        batchSize: bs,
        ttftMs: r.ttftMs,
        decodeMsP50: quantileSorted(s, 0.5),
        decodeMsP90: quantileSorted(s, 0.9),
        tokensPerSecond: total > 0 ? (bs * r.decodeMs.length * 1000) / total : NaN,
      });
    }
  }
  report.peakMemoryBytes = probe.peakMemoryBytes?.();
  return report;
}
