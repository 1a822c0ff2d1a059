/**
 * Evaluation-loop throughput: multiple-choice items/s (ARC-Easy prompts) and perplexity tokens/s (TinyStories
 * windows of 512) on stories260K — one request at a time (the baseline, measured in the same run) against batched
 * requests and, for multiple choice, batched with shared prefixes (each context run once). With `--tinyllama`, the
 * same on a synthetic TinyLlama-1.1B (random weights, Llama-2 tokenizer), with fewer items and reps/3 repetitions.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/eval.js [--reps 3] [--tinyllama]
 *
 * Prints a table (median of reps, baseline, ratio) and writes bench/results/cpu-eval-<date>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { scoreLoglikelihood, scoreWindowsBatched } from "../lib/eval/batching.js";
import { dataRoot, repoRoot, sharedRoot } from "../lib/eval/data.js";
import type { EvalModel } from "../lib/eval/model.js";
import { loadModel } from "../lib/eval/model_factory.js";
import { getTask } from "../lib/eval/tasks/registry.js";
import type { PreparedMc } from "../lib/eval/tasks/multiple_choice.js";
import type { PreparedPpl } from "../lib/eval/tasks/perplexity_task.js";
import { collectEnvironment } from "../lib/report/environment.js";

interface Row {
  model: string;
  workload: string;
  mode: string;
  unit: string;
  median: number;
  baseline: number;
  ratio: number;
  samples: number[];
}

const args = process.argv.slice(2);
const reps = Number(args[args.indexOf("--reps") + 1] ?? 3) || 3;
const withTinyllama = args.includes("--tinyllama");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The model without its shared-prefix path, so requests are scored from position 0 one by one. */
function withoutPrefixSharing(m: EvalModel): EvalModel {
  return Object.assign(Object.create(m) as EvalModel, { loglikelihoodGroups: undefined });
}

let currentReps = reps;

async function timeIt(fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < currentReps; r++) {
    const t0 = performance.now();
    const items = await fn();
    out.push(items / ((performance.now() - t0) / 1000));
  }
  return out;
}

async function benchModel(label: string, model: EvalModel, mcDocs: number, windows: number, seqLen: number): Promise<Row[]> {
  const rows: Row[] = [];
  const mcTask = getTask("arc_easy");
  const mc = (await mcTask.prepare({ tok: model, dataDir: dataRoot(), options: { limit: mcDocs } })) as PreparedMc;
  const plain = withoutPrefixSharing(model);
  const one = await timeIt(async () => (await scoreLoglikelihood(plain, mc.requests, { batchSize: 1 }), mc.docs.length));
  const batched = await timeIt(async () => (await scoreLoglikelihood(plain, mc.requests, { batchSize: "auto" }), mc.docs.length));
  const shared = await timeIt(async () => (await scoreLoglikelihood(model, mc.requests, { batchSize: "auto" }), mc.docs.length));
  const b = median(one);
  rows.push({ model: label, workload: `arc_easy MC (${mc.docs.length} items)`, mode: "one request at a time", unit: "items/s", median: b, baseline: b, ratio: 1, samples: one });
  rows.push({ model: label, workload: `arc_easy MC (${mc.docs.length} items)`, mode: "batched", unit: "items/s", median: median(batched), baseline: b, ratio: median(batched) / b, samples: batched });
  rows.push({ model: label, workload: `arc_easy MC (${mc.docs.length} items)`, mode: "batched + shared prefix", unit: "items/s", median: median(shared), baseline: b, ratio: median(shared) / b, samples: shared });

  const ppl = (await getTask("tinystories").prepare({ tok: model, dataDir: dataRoot(), options: { limit: windows, seqLen } })) as PreparedPpl;
  const toks = ppl.windows.reduce((a, w) => a + w.tokens.length - 1, 0);
  const wins = ppl.windows.map((w) => w.tokens);
  const p1 = await timeIt(async () => (await scoreWindowsBatched(model, wins, { batchSize: 1 }), toks));
  const pb = await timeIt(async () => (await scoreWindowsBatched(model, wins, { batchSize: "auto" }), toks));
  const pb1 = median(p1);
  const wl = `tinystories ppl (${wins.length}×${seqLen})`;
  rows.push({ model: label, workload: wl, mode: "one window at a time", unit: "tokens/s", median: pb1, baseline: pb1, ratio: 1, samples: p1 });
  rows.push({ model: label, workload: wl, mode: "batched", unit: "tokens/s", median: median(pb), baseline: pb1, ratio: median(pb) / pb1, samples: pb });
  return rows;
}

const rows: Row[] = [];
const stories = join(sharedRoot(), "data/models/stories260K");
rows.push(...(await benchModel("stories260K", await loadModel(stories, null), 64, 32, 512)));
if (withTinyllama) {
  // A 1.1B model on CPU is slow: one repetition per mode (a third of --reps).
  currentReps = Math.max(1, Math.floor(reps / 3));
  const tl = await loadModel("synthetic:tinyllama-1.1b", null, { tokenizer: join(sharedRoot(), "data/tokenizers/llama2") });
  rows.push(...(await benchModel("synthetic tinyllama-1.1b", tl, 4, 2, 256)));
}

const header = ["model", "workload", "mode", "median", "unit", "baseline (1 at a time)", "ratio"];
const table = rows.map((r) => [r.model, r.workload, r.mode, r.median.toPrecision(4), r.unit, r.baseline.toPrecision(4), `${r.ratio.toFixed(2)}x`]);
const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
console.log([header, w.map((n) => "-".repeat(n)), ...table].map((r) => (Array.isArray(r) ? r : [r]).map((c, i) => String(c).padEnd(w[i])).join("  ")).join("\n"));

const date = new Date().toISOString().slice(0, 10);
const dir = join(repoRoot(), "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `cpu-eval-${date}.json`);
writeFileSync(file, JSON.stringify({ bench: "eval", date: new Date().toISOString(), reps, environment: collectEnvironment(), rows }, null, 2) + "\n");
console.log(`\nresults: ${file}`);
