/**
 * CPU GEMM / GEMV benchmark on Llama projection shapes.
 *
 *   npm run bench:kernels            (node dist/bench/kernels.js; QUANTEVAL_THREADS caps the threads;
 *                                     QUANTEVAL_VNNI=off times the AVX2 *a8 kernels on a VNNI CPU)
 *   node dist/bench/kernels.js --shapes tinyllama --variants fp32,w4g128,w4g128a8 --ms 1,4,256
 *
 * For N x K in {4096x4096, 11008x4096, 4096x11008} (`--shapes llama7b`, the default; `tinyllama`: 2048x2048,
 * 5632x2048, 2048x5632, 32000x2048) and M in {1, 4, 16, 64, 256} it times (median of repeated native runs after a
 * warm-up, variants interleaved round by round; each run on the next of several copies of its weight spanning 128 MiB,
 * so that weights come from memory and not from the 32 MiB L3 — `--hot` times one copy) the project's fp32 `gemm` — the baseline — and the fused quantized
 * kernels: w8 (per channel), w4g128 (w4g128fma: the same on the fp32-FMA 4-bit GEMV, the A/B of the default integer
 * one at M = 1), w3g128, w2g64 (asymmetric, fp16 scales), W8A8 (8-bit per-channel weights,
 * per-token 8-bit activations), W4A8 (4-bit per-channel weights, same activations) and the grouped int8-activation
 * kernels w4g128a8, w3g128a8, w2g64a8, w8g128a8. Each row reports weight GB/s (packed bytes incl. scales and zeros /
 * time), GFLOP/s (2MNK / time), the speedup over fp32 at the same shape and M, for a8 variants the speedup over the
 * same weights with exact fp32 activations (`vsExact`), and the fraction of the machine's read bandwidth measured in
 * this run (all threads streaming a 1 GiB buffer; best of 6 passes). Writes JSON to bench/out/ and prints a summary
 * table last.
 */
import { Command } from "commander";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  memReadBandwidth,
  nGroups,
  packedBytes,
  rowBytes,
  timeGemm,
  type DenseWeight,
  type PackedWeight,
  type QuantFormat,
  type TimedGemm,
} from "../lib/kernels.js";
import { native, packageRoot } from "../lib/native.js";

const SHAPE_SETS: Record<string, [number, number][]> = {
  llama7b: [
    [4096, 4096],
    [11008, 4096],
    [4096, 11008],
  ],
  tinyllama: [
    [2048, 2048],
    [5632, 2048],
    [2048, 5632],
    [32000, 2048],
  ],
};

interface Variant {
  name: string;
  format?: QuantFormat; // undefined: fp32 dense
  w8a8?: boolean;
  exact?: string; // the same weights with fp32 activations (a8 variants)
  gemv?: "int" | "fp32"; // the exact 4-/2-bit GEMV kernel at M = 1 (setGemv); else the one in use at start
}
const ALL_VARIANTS: Variant[] = [
  { name: "fp32" },
  { name: "w8", format: { bits: 8, groupSize: 0, symmetric: false, scaleDtype: "f16" } },
  { name: "w4g128", format: { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f16" } },
  // The same weights on the previous 4-bit GEMV (codes converted to fp32 for FMAs; QUANTEVAL_GEMV=fp32): at M = 1
  // the A/B of the integer kernel that w4g128 runs by default. Same kernels as w4g128 at M > 1. (w2g64fma: the same
  // for 2-bit.)
  { name: "w4g128fma", format: { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f16" }, gemv: "fp32" },
  { name: "w3g128", format: { bits: 3, groupSize: 128, symmetric: false, scaleDtype: "f16" } },
  { name: "w2g64", format: { bits: 2, groupSize: 64, symmetric: false, scaleDtype: "f16" } },
  { name: "w2g64fma", format: { bits: 2, groupSize: 64, symmetric: false, scaleDtype: "f16" }, gemv: "fp32" },
  { name: "w8a8", format: { bits: 8, groupSize: 0, symmetric: false, scaleDtype: "f16" }, w8a8: true, exact: "w8" },
  { name: "w4a8", format: { bits: 4, groupSize: 0, symmetric: false, scaleDtype: "f16" }, w8a8: true },
  { name: "w4g128a8", format: { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f16" }, w8a8: true, exact: "w4g128" },
  { name: "w3g128a8", format: { bits: 3, groupSize: 128, symmetric: false, scaleDtype: "f16" }, w8a8: true, exact: "w3g128" },
  { name: "w2g64a8", format: { bits: 2, groupSize: 64, symmetric: false, scaleDtype: "f16" }, w8a8: true, exact: "w2g64" },
  { name: "w8g128a8", format: { bits: 8, groupSize: 128, symmetric: false, scaleDtype: "f16" }, w8a8: true },
];

const cli = new Command()
  .option("--shapes <set>", `shape set: ${Object.keys(SHAPE_SETS).join(", ")}`, "llama7b")
  .option("--variants <list>", "comma-separated variant names (fp32 is always included: it is the baseline)")
  .option("--ms <list>", "comma-separated M values", "1,4,16,64,256")
  .option("--hot", "time one copy of each weight (it may stay in the last-level cache between runs)")
  .parse(process.argv);
const opts = cli.opts<{ shapes: string; variants?: string; ms: string; hot?: boolean }>();
const SHAPES = SHAPE_SETS[opts.shapes];
if (!SHAPES) throw new Error(`--shapes: expected one of ${Object.keys(SHAPE_SETS).join(", ")}, got '${opts.shapes}'`);
const MS = opts.ms.split(",").map((m) => {
  const v = Number(m);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--ms: expected positive integers, got '${m}'`);
  return v;
});
const VARIANTS: Variant[] = (() => {
  if (!opts.variants) return ALL_VARIANTS;
  const names = new Set(["fp32", ...opts.variants.split(",")]);
  for (const n of names)
    if (!ALL_VARIANTS.some((v) => v.name === n))
      throw new Error(`--variants: unknown '${n}' (known: ${ALL_VARIANTS.map((v) => v.name).join(", ")})`);
  return ALL_VARIANTS.filter((v) => names.has(v.name));
})();

/** Rounds per M (fewer at large M, where one run is long and the timing stable). */
function repsFor(M: number): number {
  return M <= 4 ? 6 : M <= 16 ? 6 : M <= 64 ? 4 : 3;
}

function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// Deterministic pseudo-random fill (xorshift): the kernels' speed does not depend on the values, only their
// validity (finite scales, codes in range).
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
function randomFloats(n: number, scale: number, seed: number): Float32Array {
  const b = randomBytes(n, seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((b[i] - 127.5) / 128) * scale;
  return out;
}
const F16_001 = 0x211f; // fp16 bits of ~0.01

function packedWeight(N: number, K: number, format: QuantFormat, seed: number): PackedWeight {
  const G = nGroups(K, format.groupSize);
  const codes = randomBytes(N * rowBytes(K, format.bits), seed);
  const scales = new Uint16Array(N * G).fill(F16_001);
  const zeros = randomBytes(N * G, seed + 1).map((z) => z % (1 << format.bits));
  return { N, K, format, codes, scales, zeros };
}

interface Row {
  N: number;
  K: number;
  M: number;
  variant: string;
  seconds: number;
  weightBytes: number;
  /** Copies of the weight cycled through (> 1: cold, each run reads its weight from memory). */
  weightCopies: number;
  gbps: number;
  gflops: number;
  speedupVsFp32: number;
  speedupVsExact: number | null; // a8 variants: time of the same weights with fp32 activations / this time
  fractionOfReadBw: number;
}

function cpuModel(): string {
  try {
    const m = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/);
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model ?? "unknown";
}
function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: packageRoot }).toString().trim();
  } catch {
    return "unknown";
  }
}

// Cold weights (default): each variant cycles through enough copies of its weight that they span COLD_BYTES, 4x this
// CPU's 32 MiB L3, so every run streams its weight from memory as a decode step does (a 4096x4096 w4g128 weight is
// 8.8 MB and would otherwise be read from L3 while the 67 MB fp32 baseline comes from memory).
const COLD_BYTES = 128 << 20;

async function main(): Promise<void> {
  const t0 = Date.now();
  const loadBefore = os.loadavg()[0];
  const info = native().cpuInfo();
  const gemvAtStart = info.gemv as "int" | "fp32";
  console.log(
    `quanteval kernel bench: ${cpuModel()}, ${info.threads} threads, ISA ${info.isa}, ` +
      `a8 dot (the *a8 variants) ${info.a8Dot}, AVX-512 kernels ${info.zmm}, 4-/2-bit GEMV at M = 1 ${info.gemv}`,
  );

  // Read bandwidth: all threads stream a buffer far larger than the last-level cache (huge-page advised); each round
  // times every read strategy of the probe (native/cpu/membw.cpp) and keeps the fastest.
  const bwBytes = 1 << 30;
  // The roofline is the best round: bandwidth is an upper bound and other load on the machine only lowers a round.
  const bwSecs = await memReadBandwidth(bwBytes, 7);
  const readGBps = bwBytes / Math.min(...bwSecs.subarray(1)) / 1e9;
  const readGBpsMedian = bwBytes / median(bwSecs.subarray(1)) / 1e9;
  console.log(`read bandwidth (1 GiB, best / median of 6 rounds): ${readGBps.toFixed(1)} / ${readGBpsMedian.toFixed(1)} GB/s`);

  // The machine may be shared: every round times each variant once (a few native runs) in turn, so the fp32 baseline
  // and the quantized kernels see the same background load; each figure is the median over its rounds' runs.
  const rows: Row[] = [];
  for (const [N, K] of SHAPES) {
    const Mmax = Math.max(...MS);
    const X = randomFloats(Mmax * K, 1, 7 + N + K);
    const dense: DenseWeight = { N, K, dtype: "f32", data: randomFloats(N * K, 0.02, 11 + N) };
    const weights = VARIANTS.map((v) => {
      // groupSize 0 in VARIANTS stands for per output channel (groupSize = K).
      const format = v.format && { ...v.format, groupSize: v.format.groupSize || K };
      return format ? packedWeight(N, K, format, 100 + N + K + v.name.length) : undefined;
    });
    const copies: (DenseWeight | PackedWeight)[][] = weights.map((W) => {
      const one: DenseWeight | PackedWeight = W ?? dense;
      const bytes = W ? packedBytes(W) : N * K * 4;
      const n = opts.hot ? 1 : Math.max(1, Math.ceil(COLD_BYTES / bytes));
      return Array.from({ length: n }, (_, c) =>
        c === 0
          ? one
          : "dtype" in one
            ? { ...one, data: (one.data as Float32Array).slice() }
            : { ...one, codes: one.codes.slice(), scales: one.scales.slice(), zeros: one.zeros?.slice() },
      );
    });
    for (const M of MS) {
      const Xm = X.subarray(0, M * K);
      const gemms: TimedGemm[][] = VARIANTS.map((v, i) =>
        copies[i].map((W) =>
          "dtype" in W
            ? { kind: "dense", X: Xm, xDtype: "f32", M, W }
            : v.w8a8
              ? { kind: "w8a8", X: Xm, M, W }
              : { kind: "q", X: Xm, xDtype: "f32", M, W },
        ),
      );
      const perRound = M <= 4 ? 3 : 1;
      const secs: number[][] = VARIANTS.map(() => []);
      for (const gs of gemms) for (const g of gs) await timeGemm(g, 1); // warm-up: page faults
      const next = VARIANTS.map(() => 0);
      for (let r = 0; r < repsFor(M); r++)
        for (let i = 0; i < gemms.length; i++) {
          native().setGemv(VARIANTS[i].gemv ?? gemvAtStart);
          for (let k = 0; k < perRound; k++)
            // Runs are timed natively (no Promise overhead in the figure); each on the next copy of the weight.
            secs[i].push(...(await timeGemm(gemms[i][next[i]++ % gemms[i].length], 1)).seconds);
        }
      native().setGemv(gemvAtStart);
      const base = median(secs[0]);
      VARIANTS.forEach((v, i) => {
        const seconds = median(secs[i]);
        const ei = v.exact ? VARIANTS.findIndex((e) => e.name === v.exact) : -1;
        const W = weights[i];
        const weightBytes = W ? packedBytes(W) : N * K * 4;
        const gbps = weightBytes / seconds / 1e9;
        const row: Row = {
          N, K, M, variant: v.name, seconds, weightBytes, weightCopies: copies[i].length, gbps,
          gflops: (2 * M * N * K) / seconds / 1e9,
          speedupVsFp32: base / seconds,
          speedupVsExact: ei >= 0 ? median(secs[ei]) / seconds : null,
          fractionOfReadBw: gbps / readGBps,
        };
        rows.push(row);
        console.log(
          `${N}x${K} M=${String(M).padStart(3)} ${v.name.padEnd(9)} ${(seconds * 1e3).toFixed(3).padStart(9)} ms ` +
            `${gbps.toFixed(1).padStart(6)} GB/s ${row.gflops.toFixed(1).padStart(7)} GFLOP/s ` +
            `x${row.speedupVsFp32.toFixed(2)} vs fp32, ${(100 * row.fractionOfReadBw).toFixed(0)}% of read bw` +
            (row.speedupVsExact !== null ? `, x${row.speedupVsExact.toFixed(2)} vs ${v.exact}` : ""),
        );
      });
    }
  }

  const date = new Date().toISOString();
  const result = {
    bench: "cpu-kernels",
    shapes: opts.shapes,
    commit: gitCommit(),
    date,
    cpu: cpuModel(),
    threads: info.threads,
    isa: info.isa,
    a8Dot: info.a8Dot,
    zmm: info.zmm,
    gemv: info.gemv,
    features: info.features,
    readBandwidthGBps: readGBps,
    readBandwidthMedianGBps: readGBpsMedian,
    readBandwidthSeconds: Array.from(bwSecs),
    coldWeights: !opts.hot,
    rows,
    wallSeconds: (Date.now() - t0) / 1e3,
    // 1-minute load average before and after: on a shared machine, how much else was running.
    loadAverage: { before: loadBefore, after: os.loadavg()[0] },
  };
  const outDir = path.join(packageRoot, "bench", "out");
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `kernels-${date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));

  // Summary: per shape, M = 1 (GEMV, memory bound) and M = 256 (GEMM, compute bound).
  console.log(`\nsummary (read bandwidth ${readGBps.toFixed(1)} GB/s measured in this run; baseline = fp32 gemm, same run)`);
  console.log("shape        M    variant    ms        GB/s   GFLOP/s  vs fp32  %read-bw  vs exact");
  const mLo = Math.min(...MS), mHi = Math.max(...MS);
  for (const r of rows) {
    if (r.M !== mLo && r.M !== mHi) continue;
    console.log(
      `${`${r.N}x${r.K}`.padEnd(11)} ${String(r.M).padStart(4)}  ${r.variant.padEnd(10)} ${(r.seconds * 1e3).toFixed(2).padStart(8)} ` +
        `${r.gbps.toFixed(1).padStart(7)} ${r.gflops.toFixed(1).padStart(8)}  ${r.speedupVsFp32.toFixed(2).padStart(6)}x ` +
        `${(100 * r.fractionOfReadBw).toFixed(0).padStart(6)}%` +
        (r.speedupVsExact !== null ? `  ${r.speedupVsExact.toFixed(2).padStart(6)}x` : ""),
    );
  }
  console.log("\nbars (this machine): w4g128 GEMV M=1 >= 60% of read bw and >= 5x fp32; W8A8 M=256 >= 2x fp32");
  for (const [N, K] of SHAPES) {
    const g = rows.find((r) => r.N === N && r.K === K && r.M === 1 && r.variant === "w4g128");
    const a = rows.find((r) => r.N === N && r.K === K && r.M === 256 && r.variant === "w8a8");
    if (!g && !a) continue;
    console.log(
      `${`${N}x${K}`.padEnd(11)}` +
        (g ? ` w4g128 M=1: ${(100 * g.fractionOfReadBw).toFixed(0)}% of read bw, ${g.speedupVsFp32.toFixed(2)}x fp32` : "") +
        (a ? ` | w8a8 M=256: ${a.speedupVsFp32.toFixed(2)}x fp32` : ""),
    );
  }
  console.log(`wrote ${path.relative(process.cwd(), file)} (${result.wallSeconds.toFixed(0)} s)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
