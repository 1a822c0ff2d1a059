/**
 * `efficiency`: memory and speed of each setting in the same run as its quality metrics, through the model's
 * EfficiencyProbe (../efficiency.ts): weight bytes, KV-cache bytes, peak memory, TTFT and per-token decode latency
 * (p50/p90) by batch size and context length, decode throughput. A model without a probe gets a note, not a number.
 */
import { efficiencyProbeOf, measureEfficiency } from "../efficiency.js";
import type { Metric } from "../stats.js";
import type { EvalTask, TaskResult } from "./types.js";

interface PreparedEfficiency {
  contextLengths: number[];
  batchSizes: number[];
  decodeTokens: number;
}

export const efficiency: EvalTask<PreparedEfficiency> = {
  name: "efficiency",
  kind: "efficiency",
  display: [
    { metric: "weight_mib", higherIsBetter: false },
    { metric: "decode_ms_p50", higherIsBetter: false },
    { metric: "decode_tok_s", higherIsBetter: true },
  ],
  prepare(env) {
    return {
      // Defaults sized for a CPU run of a ~1B model; --context-lengths / --decode-batch-sizes for more.
      contextLengths: env.options.contextLengths ?? [128, 512],
      batchSizes: env.options.batchSizes ?? [1, 4],
      decodeTokens: Math.min(env.options.maxGenTokens ?? 16, 128),
    };
  },
  async evaluate(p, model, env): Promise<TaskResult> {
    const probe = efficiencyProbeOf(model);
    if (!probe) return { n: 0, metrics: {}, notes: [`model ${model.name} offers no efficiency probe`] };
    const progress = env.progress(`${env.setting} efficiency`, 1);
    const report = await measureEfficiency(model, probe, p);
    progress.tick();
    progress.done();
    const first = report.latency[0];
    const metrics: Record<string, Metric> = { weight_mib: { value: report.weightBytes / 2 ** 20 } };
    if (first) {
      metrics.ttft_ms = { value: first.ttftMs };
      metrics.decode_ms_p50 = { value: first.decodeMsP50 };
      metrics.decode_ms_p90 = { value: first.decodeMsP90 };
      metrics.decode_tok_s = { value: Math.max(...report.latency.map((l) => l.tokensPerSecond)) };
    }
    if (report.peakMemoryBytes !== undefined) metrics.peak_mib = { value: report.peakMemoryBytes / 2 ** 20 };
    return { n: report.latency.length, metrics, notes: report.skipped.length ? report.skipped : undefined, details: report };
  },
};
