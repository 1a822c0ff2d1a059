/**
 * GPTQ step timings on tinyllama-1.1b shapes (before/after comparisons of native/calib): gptqQuantize of one
 * [N, K] weight with a synthetic SPD Hessian H_ij = exp(-|i-j|/500) + δij (dense: no exact zeros
 * for the kernels to skip, so the work is the real one), and
 * the Hessian capture of one decoder layer (the runtime's accumulate over nsamples × seqlen rows).
 *
 *   npx tsx bench/gptq-parts.ts [--shapes 2048x2048,5632x2048,2048x5632] [--reps 1]
 */
import { Command } from "commander";
import { gptqQuantize } from "../lib/quant/numerics.js";

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
  const times: number[] = [];
  for (let r = 0; r < Number(o.reps); r++) {
    const t0 = performance.now();
    await gptqQuantize(W, N, K, H, { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f32" }, { percdamp: 0.01, blockSize: 128 });
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  console.log(`gptq ${N}x${K} w4g128: ${times[times.length >> 1].toFixed(2)} s`);
}
