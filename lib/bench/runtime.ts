/**
 * `quanteval bench`: end-to-end runtime speed of a model directory or a synthetic preset, per weight format and
 * KV-cache type: prefill time and throughput, time to first token, per-token decode latency (p50/p90) and
 * tokens/s at several batch sizes and context lengths, memory by category, weight bytes read per decode step and
 * the bandwidth that implies. Every figure is a median over repeated steps.
 */
import os from "node:os";
import { LlamaModel } from "../model/model.js";
import { kvSettingName, type KVSetting } from "../model/kv.js";
import type { NativeQuantFormat } from "../model/native-types.js";
import { memReadBandwidth } from "../kernels.js";
import { native } from "../native.js";

export interface BenchOptions {
  /** Model directory or `synthetic:<preset>`. */
  model: string;
  /** Weight settings: f32, f16, bf16, w8 (per channel), w4g128, w4g32s, ...; an `a8` suffix (w4g128a8, w8a8) runs
   * every packed linear on the int8-activation kernel (gemm_w8a8). */
  weights: string[];
  /** KV caches: one type for K and V ("int8"), or { k, v } ("k:int8/v:int4" on the CLI). */
  kv: KVSetting[];
  batches: number[];
  contexts: number[];
  /** Prompt length of the prefill / time-to-first-token measurement. */
  prefill: number;
  /** Decode steps timed per (batch, context). */
  steps: number;
  /** Prefill repetitions (median). Default 3. */
  prefillReps?: number;
  threads?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface DecodeFigure {
  batch: number;
  context: number;
  p50Ms: number;
  p90Ms: number;
  tokensPerSecond: number;
  /** Weight bytes one decode step reads, divided by the p50 step time. */
  impliedGBps: number;
  /** impliedGBps / the read bandwidth measured in the same run (1 = at the memory roofline). */
  ofRoofline: number;
  /** Mean native time of one step by category (ms): linears (GEMV/GEMM incl. lm_head), attention, KV stores,
   * other kernels and runtime bookkeeping (norms, RoPE, SiLU, residual adds, cache reservation), and the rest of
   * the wall time (N-API call, Promise, JS) as `bindingMs`. */
  breakdownMs: { linear: number; attention: number; kvStore: number; other: number; binding: number };
}

export interface BenchRow {
  weights: string;
  kv: KVSetting;
  execution: "native" | "simulated";
  prefillTokens: number;
  prefillMs: number;
  prefillTokensPerSecond: number;
  timeToFirstTokenMs: number;
  decode: DecodeFigure[];
  weightBytesPerToken: number;
  memory: Record<string, number>;
}

export interface BenchReport {
  model: string;
  date: string;
  commit?: string;
  cpu: string;
  threads: number;
  isa: string;
  /** os.loadavg() at the start: other processes on the machine make every figure slower. */
  loadAverage: number[];
  /**
   * Multi-threaded streaming read bandwidth measured in the same run, GB/s: the best of 5 rounds over 512 MB (each
   * round the fastest of the probe's read strategies). The roofline: other load only lowers a round.
   */
  readGBps: number;
  /** The median round of the same probe, GB/s (how much the machine's load moved it). */
  readMedianGBps: number;
  rows: BenchRow[];
}

/** 'w4g128' → 4-bit groups of 128 (asymmetric), 'w8' → 8-bit per channel, 'w4g32s' symmetric, 'w4g128a8' the same
 * weights with int8 activations (a8: true); dense names → { dense }. */
export function parseWeightSetting(
  s: string,
): { dense: "f32" | "f16" | "bf16" } | { format: NativeQuantFormat; a8: boolean } {
  if (s === "f32" || s === "f16" || s === "bf16") return { dense: s };
  const m = /^w([23468])(?:g(\d+))?(s?)(a8)?$/.exec(s);
  if (!m) throw new RangeError(`--weights: expected f32, f16, bf16 or w<bits>[g<group>][s][a8] (e.g. w4g128, w4g128a8), got '${s}'`);
  return {
    format: { bits: Number(m[1]) as 2 | 3 | 4 | 6 | 8, groupSize: m[2] ? Number(m[2]) : 1 << 30, symmetric: m[3] === "s" },
    a8: m[4] === "a8",
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};

async function buildModel(o: BenchOptions, w: string): Promise<LlamaModel> {
  const set = parseWeightSetting(w);
  const maxContext = Math.max(o.prefill, ...o.contexts) + o.steps + 8;
  let m: LlamaModel;
  if (o.model.startsWith("synthetic:")) {
    const preset = o.model.slice("synthetic:".length);
    // Quantized settings pack lm_head too (as llama.cpp's Q4_0 / Q8_0 files do); the embedding stays bf16.
    m = "dense" in set
      ? await LlamaModel.synthetic(preset, { seed: o.seed, denseDtype: set.dense, maxContext })
      : await LlamaModel.synthetic(preset, { seed: o.seed, denseDtype: "bf16", format: set.format, maxContext, quantizeLmHead: true });
  } else {
    m = await LlamaModel.load(o.model, { maxContext, keepDtype: !("dense" in set) || set.dense !== "f32" });
    if ("format" in set) await m.quantizeAll(set.format);
  }
  // a8: int8 activations on every packed linear (llama.cpp's Q4_0 / Q8_0 paths quantize activations the same way).
  if ("a8" in set && set.a8)
    for (const n of m.native.linearNames()) if (m.native.linearInfo(n).quantized) m.native.setActivation(n, "a8");
  return m;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.log ?? (() => {});
  const addon = native();
  if (o.threads) addon.setNumThreads(o.threads);
  const cpu = addon.cpuInfo();
  const rows: BenchRow[] = [];
  const loadAverage = os.loadavg();
  const bw = await memReadBandwidth(512 << 20, 5);
  const readGBps = (512 << 20) / Math.min(...bw) / 1e9;
  const readMedianGBps = (512 << 20) / pct(Array.from(bw), 0.5) / 1e9;
  log(`read bandwidth best / median ${readGBps.toFixed(1)} / ${readMedianGBps.toFixed(1)} GB/s (${cpu.threads} threads, isa ${cpu.isa})`);
  let seed = 12345;
  const rand = (V: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return 3 + (seed % (V - 3));
  };
  for (const w of o.weights) {
    const model = await buildModel(o, w);
    const V = model.vocabSize;
    for (const kv of o.kv) {
      const s = model.newSession({ kvType: kv });
      const kvName = kvSettingName(kv);
      // Prefill / time to first token: one prompt of o.prefill tokens; median of prefillReps.
      const pre: number[] = [];
      for (let r = 0; r < (o.prefillReps ?? 3); r++) {
        const id = s.alloc();
        const toks = Int32Array.from({ length: o.prefill }, () => rand(V));
        const t0 = performance.now();
        await s.prefill(Int32Array.of(id), toks, Int32Array.of(o.prefill), { rows: "last" });
        pre.push(performance.now() - t0);
        s.free(id);
      }
      const prefillMs = pct(pre, 0.5);
      const bytes = model.native.info().decodeWeightBytes;
      const decode: DecodeFigure[] = [];
      for (const B of o.batches)
        for (const C of o.contexts) {
          // The cache is grown to C tokens of zeros rather than prefilled: a decode step's cost depends on the
          // cache length, not its content, and prefilling B x C tokens would dominate the run.
          const ids = Array.from({ length: B }, () => s.alloc());
          for (const id of ids) s.fillZeros(id, C);
          const times: number[] = [];
          for (let k = 0; k < o.steps + 2; k++) {
            if (k === 2) s.profile(true); // 2 warm-up steps
            const t0 = performance.now();
            await s.decode(Int32Array.from(ids), Int32Array.from(ids, () => rand(V)));
            if (k >= 2) times.push(performance.now() - t0);
          }
          const pr = s.profile(false);
          const n = Math.max(1, pr.steps);
          const wallMean = times.reduce((x, y) => x + y, 0) / times.length;
          const breakdownMs = {
            linear: pr.linearMs / n, attention: pr.attentionMs / n, kvStore: pr.kvStoreMs / n, other: pr.otherMs / n,
            binding: Math.max(0, wallMean - pr.totalMs / n),
          };
          for (const id of ids) s.free(id);
          const p50 = pct(times, 0.5);
          const implied = bytes / (p50 * 1e6);
          const f = { batch: B, context: C, p50Ms: p50, p90Ms: pct(times, 0.9), tokensPerSecond: (B * 1000) / p50, impliedGBps: implied, ofRoofline: implied / readGBps, breakdownMs };
          decode.push(f);
          log(`${w.padEnd(7)} kv=${kvName.padEnd(4)} B=${String(B).padStart(2)} ctx=${String(C).padStart(4)}  ` +
            `decode p50 ${p50.toFixed(2)} ms  p90 ${f.p90Ms.toFixed(2)} ms  ${f.tokensPerSecond.toFixed(1)} tok/s  ${f.impliedGBps.toFixed(1)} GB/s = ${(100 * f.ofRoofline).toFixed(0)}% of read bw ` +
            `(roofline ${((B * readGBps * 1e9) / bytes).toFixed(1)} tok/s)\n` +
            `        per step: linear ${breakdownMs.linear.toFixed(2)} ms, attention ${breakdownMs.attention.toFixed(2)}, ` +
            `kv store ${breakdownMs.kvStore.toFixed(2)}, other ${breakdownMs.other.toFixed(2)}, N-API+JS ${breakdownMs.binding.toFixed(2)}`);
        }
      const row: BenchRow = {
        weights: w, kv, execution: model.execution, prefillTokens: o.prefill, prefillMs,
        prefillTokensPerSecond: (o.prefill * 1000) / prefillMs, timeToFirstTokenMs: prefillMs, decode,
        weightBytesPerToken: bytes, memory: { ...model.native.memory(), ...s.memory() },
      };
      log(`${w.padEnd(7)} kv=${kvName.padEnd(4)} prefill ${o.prefill} tok: ${prefillMs.toFixed(1)} ms (${row.prefillTokensPerSecond.toFixed(1)} tok/s), ` +
        `TTFT ${prefillMs.toFixed(1)} ms, weights read/token ${(bytes / 1e6).toFixed(1)} MB`);
      log(`        memory ${Object.entries(row.memory).map(([k, v]) => `${k}=${(v / 1e6).toFixed(1)}MB`).join(" ")}`);
      rows.push(row);
      s.dispose();
    }
    model.dispose();
  }
  // Int8-activation rows next to the same weights with exact fp32 activations (w4g128a8 vs w4g128, w8a8 vs w8).
  for (const r of rows) {
    if (!r.weights.endsWith("a8")) continue;
    const exact = rows.find((e) => e.weights === r.weights.slice(0, -2) && e.kv === r.kv);
    if (!exact) continue;
    for (const f of r.decode) {
      const g = exact.decode.find((e) => e.batch === f.batch && e.context === f.context);
      if (g)
        log(`${r.weights} vs ${exact.weights} kv=${r.kv} B=${f.batch} ctx=${f.context}: ${f.tokensPerSecond.toFixed(1)} vs ` +
          `${g.tokensPerSecond.toFixed(1)} tok/s (x${(f.tokensPerSecond / g.tokensPerSecond).toFixed(2)})`);
    }
    log(`${r.weights} vs ${exact.weights} kv=${r.kv} prefill: ${r.prefillTokensPerSecond.toFixed(1)} vs ` +
      `${exact.prefillTokensPerSecond.toFixed(1)} tok/s (x${(r.prefillTokensPerSecond / exact.prefillTokensPerSecond).toFixed(2)})`);
  }
  return {
    model: o.model, date: new Date().toISOString(), cpu: os.cpus()[0]?.model ?? "unknown", threads: cpu.threads,
    isa: cpu.isa, loadAverage, readGBps, readMedianGBps, rows,
  };
}
