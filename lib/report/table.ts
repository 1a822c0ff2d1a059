/**
 * The summary table: one row per setting, one column per (task, metric) shown by the task, each cell the value
 * (± standard error when there is one) and, for every setting but the baseline, the change from the baseline.
 */
import type { EvalTask } from "../eval/tasks/types.js";
import type { ResultsFile } from "./results.js";

function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "-";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return a >= 100 ? x.toFixed(2) : x.toFixed(4);
}

function fmtDelta(x: number): string {
  const s = fmt(Math.abs(x));
  return x > 0 ? `+${s}` : x < 0 ? `-${s}` : "±0";
}

export function renderTable(results: ResultsFile, tasks: EvalTask<unknown>[]): string {
  const settings = results.config.settings.map((s) => s.name);
  const baseline = settings[0];
  const cols: { task: string; metric: string }[] = [];
  for (const t of tasks) {
    for (const d of t.display) {
      if (settings.some((s) => results.results[s]?.[t.name]?.metrics[d.metric] !== undefined)) cols.push({ task: t.name, metric: d.metric });
    }
  }
  const header = ["setting", ...cols.map((c) => `${c.task} ${c.metric}`)];
  const rows = settings.map((s) => {
    const cells = cols.map(({ task, metric }) => {
      const m = results.results[s]?.[task]?.metrics[metric];
      if (!m) return "-";
      let cell = fmt(m.value) + (m.stderr !== undefined && Number.isFinite(m.stderr) ? `±${fmt(m.stderr)}` : "");
      const b = results.results[baseline]?.[task]?.metrics[metric];
      if (s !== baseline && b && Number.isFinite(b.value)) cell += ` (${fmtDelta(m.value - b.value)})`;
      return cell;
    });
    // A setting whose activations are fake-quantized (no integer kernel) is marked, never silently mixed in.
    const execution = (results.models?.[s] as { execution?: string } | undefined)?.execution;
    return [execution === "simulated" ? `${s} (simulated)` : s, ...cells];
  });
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join("  ");
  return [line(header), width.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
