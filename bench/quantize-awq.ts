/**
 * AWQ's scale search, per candidate α, on the scale groups of one tinyllama-1.1b decoder layer: scored with the
 * Hessian (N·K², the first session's method; the baseline) vs on a sample of n input rows (n·N·K, now the default
 * for K > n), on the same random weights and inputs. Prints the median seconds per candidate of each, the ratio, and
 * the search time per layer at the default grid of 20. The clipping search costs the same either way (it uses the
 * groups' diagonal blocks), so it is not compared here.
 *
 *   npx tsx bench/quantize-awq.ts [--samples 512] [--reps 3] [--out FILE]
 *
 * Groups (tinyllama: D = 2048, I = 5632, 4 KV heads of 64): q|k|v [2560 × 2048], gate|up [11264 × 2048],
 * down [2048 × 5632] (v→o is not a group under GQA). JSON: bench/results/cpu-quantize-awq-<date>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { native } from "../lib/native.js";
import { awqSearchScale, awqSearchScaleX, type WeightFormat } from "../lib/quant/numerics.js";
import { Rng } from "../lib/quant/random.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GROUPS = [
  { name: "q|k|v", N: 2560, K: 2048 },
  { name: "gate|up", N: 11264, K: 2048 },
  { name: "down", N: 2048, K: 5632 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const o = new Command()
    .option("--samples <n>", "sampled input rows", "512")
    .option("--reps <n>", "repetitions (median)", "3")
    .option("--out <file>", "JSON output")
    .parse(process.argv)
    .opts<{ samples: string; reps: string; out?: string }>();
  const n = Number(o.samples), reps = Number(o.reps);
  const fmt: WeightFormat = { bits: 4, groupSize: 128, symmetric: false };
  const rng = new Rng(1);
  const load0 = loadavg();
  const rows = [];
  for (const g of GROUPS) {
    const { N, K } = g;
    const W = Float32Array.from({ length: N * K }, () => (rng.next() - 0.5) * 0.05);
    // Inputs with a few outlier channels (what makes α > 0 worth searching).
    const X = Float32Array.from({ length: n * K }, (_, i) => (rng.next() - 0.5) * (i % K < 8 ? 20 : 1));
    const xm = new Float32Array(K);
    for (let t = 0; t < n; t++) for (let k = 0; k < K; k++) xm[k] += Math.abs(X[t * K + k]) / n;
    // A positive definite H of the right size (the search's cost does not depend on its values; XᵀX of 512 rows
    // of K = 5632 would take longer in JS than the search): a few of the rows' outer products plus a diagonal.
    const H = new Float32Array(K * K);
    for (let t = 0; t < 8; t++)
      for (let i = 0; i < K; i++) {
        const xi = X[t * K + i];
        for (let j = 0; j < K; j++) H[i * K + j] += xi * X[t * K + j];
      }
    for (let k = 0; k < K; k++) H[k * K + k] += n * xm[k] * xm[k];
    const tH: number[] = [], tX: number[] = [];
    for (let r = 0; r < reps; r++) {
      let t0 = performance.now();
      await awqSearchScale(W, N, K, H, xm, fmt, 1, n);
      tH.push((performance.now() - t0) / 1000);
      t0 = performance.now();
      await awqSearchScaleX(W, N, K, X, n, xm, fmt, 1);
      tX.push((performance.now() - t0) / 1000);
    }
    const row = { group: g.name, N, K, n, hessianSecondsPerCandidate: median(tH), sampleSecondsPerCandidate: median(tX), speedup: median(tH) / median(tX) };
    console.error(`  ${g.name}: H ${row.hessianSecondsPerCandidate.toFixed(3)} s, sample ${row.sampleSecondsPerCandidate.toFixed(3)} s`);
    rows.push(row);
  }
  const perLayerH = rows.reduce((a, r) => a + r.hessianSecondsPerCandidate, 0) * 20;
  const perLayerX = rows.reduce((a, r) => a + r.sampleSecondsPerCandidate, 0) * 20;
  const cpu = native().cpuInfo();
  const result = {
    bench: "quantize-awq-scale-search",
    date: new Date().toISOString(),
    machine: { isa: cpu.isa, threads: cpu.threads, loadavgStart: load0, loadavgEnd: loadavg() },
    format: "w4g128",
    reps,
    rows,
    perLayerGrid20: { hessianSeconds: perLayerH, sampleSeconds: perLayerX, speedup: perLayerH / perLayerX },
  };
  const out = o.out ?? path.join(root, "bench", "results", `cpu-quantize-awq-${new Date().toISOString().slice(0, 10)}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 1) + "\n");
  console.log(`AWQ scale search per candidate α, tinyllama-1.1b layer groups, w4g128, sample n = ${n} (median of ${reps})`);
  console.log("group      N      K      Hessian s  sample s  speedup");
  for (const r of rows)
    console.log(`${r.group.padEnd(9)} ${String(r.N).padStart(6)} ${String(r.K).padStart(6)}  ${r.hessianSecondsPerCandidate.toFixed(3).padStart(9)}  ${r.sampleSecondsPerCandidate.toFixed(3).padStart(8)}  ${r.speedup.toFixed(1).padStart(6)}x`);
  console.log(`per layer at grid 20: Hessian ${perLayerH.toFixed(1)} s, sample ${perLayerX.toFixed(1)} s (${(perLayerH / perLayerX).toFixed(1)}x); load ${load0.map((x) => x.toFixed(2)).join(" ")} → ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

await main();
