/**
 * Is the quantized GEMV (M = 1) bound by compute or by memory? Times each format on
 *  - a cache-resident weight (N = 128 rows of K = 4096: 256 KiB at 4 bits, inside one core's 512 KiB L2), hot, and
 *  - a streaming weight (4096 x 4096) cycled through copies spanning 128 MiB, 4x the L3, so every run reads from memory,
 * with 1 thread and with all threads. Figures: codes per second (Gcode/s), weight GB/s, and streaming / resident
 * (~1: compute bound, the streaming shape runs at the in-cache rate; well below 1: memory bound). The read bandwidth
 * probe of the same run gives the memory roofline. Medians of interleaved rounds; a shared machine lowers them.
 *
 *   node dist/bench/gemv-bound.js [--formats w4g128,w8] [--json out.json]
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { Command } from "commander";
import { memReadBandwidth, nGroups, packedBytes, rowBytes, timeGemm, type PackedWeight, type QuantFormat, type TimedGemm } from "../lib/kernels.js";
import { native } from "../lib/native.js";

const FORMATS: Record<string, QuantFormat> = {
  w8: { bits: 8, groupSize: 4096, symmetric: false, scaleDtype: "f16" },
  w4g128: { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f16" },
  w3g128: { bits: 3, groupSize: 128, symmetric: false, scaleDtype: "f16" },
  w2g64: { bits: 2, groupSize: 64, symmetric: false, scaleDtype: "f16" },
};
const K = 4096;
const COLD_BYTES = 128 << 20;

const cli = new Command()
  .option("--formats <list>", "comma-separated formats", Object.keys(FORMATS).join(","))
  .option("--json <file>", "also write the figures as JSON")
  .parse(process.argv);
const opts = cli.opts<{ formats: string; json?: string }>();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
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
function weight(N: number, format: QuantFormat, seed: number): PackedWeight {
  const G = nGroups(K, format.groupSize);
  return {
    N, K, format,
    codes: randomBytes(N * rowBytes(K, format.bits), seed),
    scales: new Uint16Array(N * G).fill(0x211f), // fp16 ~0.01
    zeros: randomBytes(N * G, seed + 1).map((z) => z % (1 << format.bits)),
  };
}

interface Row { format: string; threads: number; shape: string; seconds: number; gcodes: number; gbps: number }

async function main(): Promise<void> {
  const addon = native();
  const allThreads = addon.cpuInfo().threads;
  const X = Float32Array.from({ length: K }, (_, i) => Math.sin(i * 0.37));
  const names = opts.formats.split(",");
  for (const n of names) if (!FORMATS[n]) throw new Error(`--formats: unknown ${n}, expected some of ${Object.keys(FORMATS).join(",")}`);
  const bw = Array.from(await memReadBandwidth(1 << 30, 5));
  const readBest = (1 << 30) / Math.min(...bw) / 1e9, readMedian = (1 << 30) / median(bw) / 1e9;
  console.log(`gemv-bound: ${allThreads} threads, load ${os.loadavg()[0].toFixed(1)}; read bandwidth best / median ${readBest.toFixed(1)} / ${readMedian.toFixed(1)} GB/s`);
  const rows: Row[] = [];
  for (const name of names) {
    const f = FORMATS[name];
    const small = weight(128, f, 5);
    const big = weight(4096, f, 9);
    const copies = Array.from({ length: Math.ceil(COLD_BYTES / packedBytes(big)) }, (_, c) =>
      c === 0 ? big : { ...big, codes: big.codes.slice() });
    const gSmall: TimedGemm = { kind: "q", X, xDtype: "f32", M: 1, W: small };
    const gBig: TimedGemm[] = copies.map((W) => ({ kind: "q", X, xDtype: "f32", M: 1, W }));
    for (const threads of allThreads > 1 ? [1, allThreads] : [1]) {
      addon.setNumThreads(threads);
      for (const g of gBig) await timeGemm(g, 1);
      const ts: number[] = [], tb: number[] = [];
      for (let r = 0; r < 8; r++) {
        ts.push(...(await timeGemm(gSmall, 20)).seconds);
        for (let k = 0; k < 3; k++) tb.push(...(await timeGemm(gBig[(3 * r + k) % gBig.length], 1)).seconds);
      }
      const res = (shape: string, W: PackedWeight, s: number): Row => ({
        format: name, threads, shape, seconds: s, gcodes: (W.N * K) / s / 1e9, gbps: packedBytes(W) / s / 1e9,
      });
      const a = res("128x4096 resident", small, median(ts)), b = res("4096x4096 streaming", big, median(tb));
      rows.push(a, b);
      console.log(
        `${name.padEnd(7)} ${threads} thr: resident ${a.gcodes.toFixed(1)} Gcode/s (${a.gbps.toFixed(1)} GB/s), ` +
          `streaming ${b.gcodes.toFixed(1)} Gcode/s (${b.gbps.toFixed(1)} GB/s, ${((100 * b.gbps) / readBest).toFixed(0)}% of read bw); ` +
          `streaming/resident ${(b.gcodes / a.gcodes).toFixed(2)}`,
      );
    }
    addon.setNumThreads(allThreads);
  }
  if (opts.json)
    writeFileSync(opts.json, JSON.stringify({ bench: "gemv-bound", date: new Date().toISOString(), threads: allThreads,
      loadAverage: os.loadavg(), readBandwidthGBps: readBest, readBandwidthMedianGBps: readMedian, rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
