/**
 * GPTQ timings on tinyllama-1.1b shapes (before/after comparisons of native/calib): gptqQuantize of one [N, K]
 * weight (w4g128) with a synthetic SPD Hessian H_ij = exp(-|i-j|/500) + δij (dense: no exact zeros for the kernels
 * to skip, so the work is the real one), against RTN of the same weight measured in the same run (the baseline;
 * the ratio is GPTQ / RTN). Medians of --reps runs.
 *
 *   npx tsx bench/gptq-parts.ts [--shapes 2048x2048,5632x2048,2048x5632] [--reps 1]
 */
import { Command } from "commander";
import { gptqQuantize, rtnQuantize } from "../lib/quant/numerics.js";

const o = new Command()
  .option("--shapes <list>", "N x K shapes", "2048x2048,5632x2048,2048x5632")
  .option("--reps <n>", "repetitions (median reported)", "1")
  .parse(process.argv)
  .opts<{ shapes: string; reps: string }>();

for (const s of o.shapes.split(",")) {
  const [N, K] = s.split("x").map(Number);
  const W = new Float32Array(N * K);
  let seed = 1;
  for (let i = 0; i < W.length; i++) {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    W[i] = (seed / 2 ** 32 - 0.5) * 0.05;
  }
  const H = new Float32Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] = Math.exp(-Math.abs(i - j) / 500) + (i === j ? 1 : 0);
  const fmt = { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f32" } as const;
  const median = async (f: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let r = 0; r < Number(o.reps); r++) {
      const t0 = performance.now();
      await f();
      times.push((performance.now() - t0) / 1000);
    }
    return times.sort((a, b) => a - b)[times.length >> 1];
  };
  const g = await median(() => gptqQuantize(W, N, K, H, fmt, { percdamp: 0.01, blockSize: 128 }));
  const r = await median(() => rtnQuantize(W, N, K, fmt));
  console.log(`${N}x${K} w4g128: gptq ${g.toFixed(3)} s, rtn ${r.toFixed(3)} s, ratio ${(g / r).toFixed(1)}`);
}
