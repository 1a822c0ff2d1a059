/**
 * Attention over a (quantized) KV cache on the CPU: decode and causal prefill, fp32 / fp16 / int8 / int4 K/V.
 *
 *   node dist/bench/attention.js [--quick] [--decode-only] [--layers-mib N] [--save [--tag NAME]]
 *
 * Decode: Llama-7B-like heads (32 heads, head_dim 128) with MHA (32 kv heads) and GQA (8 kv heads), batch 1 and 4,
 * contexts 1k / 4k / 16k (MHA batch 4 stops at 4k: its fp32 cache would be 2 GiB at 16k). For each case: median
 * time of one call, GB/s of KV bytes read (K and V codes plus their fp32 scales and zeros), and the speedup over the
 * fp32 cache measured in the same run. The roofline is a memcpy in the same process (bytes read / s, 1 thread).
 * Every decode call reads its cache from DRAM, as in a model whose layers each have their own cache: each type
 * rotates over L distinct copies of its caches ("layers"; call i reads copy i % L), L chosen so that the copies
 * together hold >= --layers-mib MiB (default 64, twice the 32 MiB L3). Without this a small int4 cache (4.5 MB at 1k)
 * stays in L3 across repetitions while the fp32 one (32 MB) does not, which flatters the ratio.
 * Prefill: 512 and 2048 tokens from position 0, MHA, GFLOP/s of the causal attention (4·H·D·T(T+1)/2 flops).
 * Decoder-step ops: log-softmax gather / top-k over a 128256 vocabulary, RMSNorm, RoPE, SiLU·up, fast vs reference.
 *
 * The four cache types of a case are timed in interleaved rounds (7 for decode, 5 for prefill at 512, after one
 * warm-up call each; 2 at 2048, the warm-up counting as the first) so that a shared
 * machine's load hits them alike; times are medians over rounds and the speedup is the median of the per-round
 * ratios. A sample runs the kernel `repeat` times in one native call so that it lasts >= 20 ms (the Promise round
 * trip is not what is measured). JSON goes to bench/out/; --save also writes
 * bench/results/cpu-attention-<date>[-NAME].json.
 */
import { execSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { native, packageRoot } from "../lib/native.js";
import {
  allocKVCache, attentionDecode, attentionPrefill, kvBytesPerHead, kvStore, logSoftmaxGather, logSoftmaxTopk, rmsnorm,
  ropeApply, ropeInvFreq, siluMul, type Impl, type KVCache, type KVType,
} from "../lib/ops.js";

const argv = process.argv.slice(2);
const args = new Set(argv);
const quick = args.has("--quick");
const decodeOnly = args.has("--decode-only");
const layersMiB = (() => {
  const i = argv.indexOf("--layers-mib");
  const v = i >= 0 ? Number(argv[i + 1]) : 64;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--layers-mib: expected a number >= 0, got ${argv[i + 1]}`);
  return v;
})();
/** Distinct copies (layers) of a set of caches of `bytes` bytes so that all copies hold >= layersMiB MiB. */
const layersFor = (bytes: number) => Math.max(1, Math.ceil((layersMiB * 2 ** 20) / bytes));
/** Decode over `layers` rotated copies: kv holds layers × B caches (the addon's `layers` option). */
const decodeRotated = (o: { q: Float32Array; kv: KVCache[]; lens: number[]; layers: number; repeat: number }) =>
  native().attentionDecode({ ...o, nHeads: N_HEADS }) as Promise<Float32Array>;
const types: KVType[] = ["f32", "f16", "i8", "i4"];
const N_HEADS = 32, HEAD_DIM = 128;

// One random block tiled over every cache: generating 10^8 normals in JS would dominate the run.
const block = (() => {
  const n = 1 << 20, a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i += 2) {
    s = (s * 1103515245 + 12345) >>> 0; const u1 = (s + 1) / 4294967297;
    s = (s * 1103515245 + 12345) >>> 0; const u2 = s / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    a[i] = r * Math.cos(2 * Math.PI * u2);
    a[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return a;
})();
function tiled(n: number, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += block.length) a.set(block.subarray(0, Math.min(block.length, n - i)), i);
  if (offset) for (let i = 0; i < n; i += 977) a[i] += offset;  // break the period a little
  return a;
}

async function fillCache(type: KVType, T: number, nKv: number, x: Float32Array): Promise<KVCache> {
  const c = allocKVCache(type, T, nKv, HEAD_DIM);
  const src = x.subarray(0, T * nKv * HEAD_DIM);
  await kvStore({ x: src, type, nKvHeads: nKv, headDim: HEAD_DIM, dst: c.k, scale: c.kScale, zero: c.kZero });
  await kvStore({ x: src, type, nKvHeads: nKv, headDim: HEAD_DIM, dst: c.v, scale: c.vScale, zero: c.vZero });
  return c;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/**
 * Times several variants of one case in interleaved rounds (variant 0, 1, 2, ... then again), so that the load of
 * a shared machine hits them alike: returns each variant's median seconds per call and the median over rounds of
 * time(variant 0) / time(variant i) — the speedup over the baseline measured in the same rounds.
 */
async function timeInterleaved(runs: ((repeat: number) => Promise<unknown>)[], rounds: number): Promise<{ s: number[]; speedup: number[] }> {
  const repeats: number[] = [];
  const times: number[][] = runs.map(() => []);
  let warmAsSample = true;
  for (let i = 0; i < runs.length; i++) {
    const t0 = performance.now();
    await runs[i](1);
    const once = Math.max((performance.now() - t0) / 1000, 1e-6);
    repeats.push(Math.max(1, Math.ceil(0.02 / once)));  // a sample lasts >= 20 ms
    times[i].push(once);
    warmAsSample &&= once > 1;  // calls of seconds (2k prefill): the warm-up call is a sample too
  }
  if (!warmAsSample) times.forEach((t) => t.splice(0));
  for (let r = warmAsSample ? 1 : 0; r < rounds; r++)
    for (let i = 0; i < runs.length; i++) {
      const t0 = performance.now();
      await runs[i](repeats[i]);
      times[i].push((performance.now() - t0) / 1000 / repeats[i]);
    }
  return {
    s: times.map(median),
    speedup: times.map((t) => median(t.map((x, r) => times[0][r] / x))),
  };
}

function memcpyGBs(): number {
  const n = 64 << 20, a = new Uint8Array(n), b = new Uint8Array(n);
  a.fill(1);
  b.set(a);
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    b.set(a);
    ts.push((performance.now() - t0) / 1000);
  }
  return n / median(ts) / 1e9;
}

interface DecodeRow {
  attn: string; nKv: number; batch: number; ctx: number; type: KVType; layers: number; ms: number; gbps: number; speedup: number;
}
interface PrefillRow { tokens: number; type: KVType; ms: number; gflops: number; speedup: number }
interface OpRow { op: string; shape: string; refMs: number; fastMs: number; speedup: number }

async function main() {
  const addon = native();
  const cpu = addon.cpuInfo();
  const cpuModel = os.cpus()[0]?.model ?? "unknown";
  let commit = "unknown";
  try { commit = execSync("git rev-parse --short HEAD", { cwd: packageRoot }).toString().trim(); } catch { /* not a checkout */ }
  const load0 = os.loadavg()[0];
  console.log(`attention bench: ${cpuModel}, ${cpu.threads} threads, ISA ${cpu.isa}, commit ${commit}${quick ? " (quick)" : ""}, ` +
    `load average ${load0.toFixed(1)} on ${os.cpus().length} CPUs`);
  const roofline = memcpyGBs();
  console.log(`memcpy (1 thread, bytes read/s): ${roofline.toFixed(1)} GB/s`);
  console.log(`decode caches rotated over >= ${layersMiB} MiB of distinct copies per type (layers = L below), so ` +
    `each call reads from DRAM`);

  const cases: { attn: string; nKv: number; batch: number; ctx: number }[] = [];
  const ctxs = quick ? [1024, 4096] : [1024, 4096, 16384];
  for (const [attn, nKv] of [["MHA 32/32", 32], ["GQA 32/8", 8]] as [string, number][])
    for (const batch of [1, 4])
      for (const ctx of ctxs) {
        if (nKv === 32 && batch === 4 && ctx > 4096) continue;
        cases.push({ attn, nKv, batch, ctx });
      }
  const maxX = Math.max(...cases.map((c) => c.ctx * c.nKv)) * HEAD_DIM;
  const x = tiled(maxX, 0.25);
  const decode: DecodeRow[] = [];
  for (const c of cases) {
    // Every sequence holds `ctx` tokens in its own cache (one shared cache would be served from L3 after the first).
    const lens = new Array(c.batch).fill(c.ctx);
    const q = tiled(c.batch * N_HEADS * HEAD_DIM, 0.1);
    const rowBytes = (type: KVType) => kvBytesPerHead(type, HEAD_DIM) + (type === "i8" || type === "i4" ? 8 : 0);
    const caches: KVCache[][] = [], layers: number[] = [];
    for (const type of types) {
      const L = layersFor(2 * c.batch * c.ctx * c.nKv * rowBytes(type));
      const seqs: KVCache[] = [];
      for (let i = 0; i < L * c.batch; i++) seqs.push(await fillCache(type, c.ctx, c.nKv, x));
      caches.push(seqs);
      layers.push(L);
    }
    const { s, speedup } = await timeInterleaved(
      caches.map((kv, i) => (repeat: number) => decodeRotated({ q, kv, lens, layers: layers[i], repeat })), quick ? 3 : 7);
    types.forEach((type, i) => {
      const bytes = 2 * c.batch * c.ctx * c.nKv * rowBytes(type);
      const row = { ...c, type, layers: layers[i], ms: s[i] * 1e3, gbps: bytes / s[i] / 1e9, speedup: speedup[i] };
      decode.push(row);
      console.log(`decode ${c.attn} B=${c.batch} ctx=${c.ctx} ${type} (L=${layers[i]}): ${row.ms.toFixed(3)} ms, ` +
        `${row.gbps.toFixed(1)} GB/s, ${row.speedup.toFixed(2)}x vs f32`);
    });
  }

  // The bar case again on one thread: a 2-thread call waits at its end for both threads, and on a shared machine
  // one of them is often descheduled — a short (compute-bound int4) call pays that wait relatively more.
  let bar1: { f32Ms: number; i4Ms: number; speedup: number } | undefined;
  {
    const T = 4096, nKv = 32, threads = cpu.threads;
    const q = tiled(N_HEADS * HEAD_DIM, 0.1);
    const sets: { kv: KVCache[]; layers: number }[] = [];
    for (const type of ["f32", "i4"] as KVType[]) {
      const L = layersFor(2 * T * nKv * (kvBytesPerHead(type, HEAD_DIM) + (type === "i4" ? 8 : 0)));
      const kv: KVCache[] = [];
      for (let i = 0; i < L; i++) kv.push(await fillCache(type, T, nKv, x));
      sets.push({ kv, layers: L });
    }
    addon.setNumThreads(1);
    const { s, speedup } = await timeInterleaved(
      sets.map((c) => (repeat: number) => decodeRotated({ q, kv: c.kv, lens: [T], layers: c.layers, repeat })), quick ? 3 : 7);
    addon.setNumThreads(threads);
    bar1 = { f32Ms: s[0] * 1e3, i4Ms: s[1] * 1e3, speedup: speedup[1] };
    console.log(`decode MHA B=1 ctx=4096, 1 thread: f32 ${bar1.f32Ms.toFixed(2)} ms, i4 ${bar1.i4Ms.toFixed(2)} ms, ${bar1.speedup.toFixed(2)}x`);
  }

  const prefill: PrefillRow[] = [];
  for (const T of decodeOnly ? [] : quick ? [512] : [512, 2048]) {
    const q = tiled(T * N_HEADS * HEAD_DIM, 0.1);
    const caches: KVCache[] = [];
    for (const type of types) caches.push(await fillCache(type, T, N_HEADS, x));
    const { s, speedup } = await timeInterleaved(
      caches.map((kv) => (repeat: number) => attentionPrefill({ q, nHeads: N_HEADS, kv, pos0: 0, repeat })),
      quick || T > 1024 ? 2 : 5);  // a 2k prefill takes seconds per call here: 2 samples (the first the warm-up)
    const flops = (4 * N_HEADS * HEAD_DIM * (T * (T + 1))) / 2;
    types.forEach((type, i) => {
      const row = { tokens: T, type, ms: s[i] * 1e3, gflops: flops / s[i] / 1e9, speedup: speedup[i] };
      prefill.push(row);
      console.log(`prefill T=${T} ${type}: ${row.ms.toFixed(1)} ms, ${row.gflops.toFixed(1)} GFLOP/s, ${row.speedup.toFixed(2)}x vs f32`);
    });
  }

  // Decoder-step ops: the fast kernel vs its scalar reference, same rounds (a single call each; no `repeat`).
  const ops: OpRow[] = [];
  if (!decodeOnly) {
    const V = 128256, M = quick ? 8 : 32;
    const logits = tiled(M * V, 0.5), targets = Int32Array.from({ length: M }, (_, i) => (i * 7919) % V);
    const hidden = tiled(64 * 4096), w = tiled(4096, 1);
    const invFreq = ropeInvFreq({ headDim: 128, theta: 500000, scaling: "llama3", factor: 8, originalMaxPosition: 8192 });
    const positions = Int32Array.from({ length: 64 }, (_, i) => 1000 + i), qk = tiled(64 * 32 * 128);
    const gate = tiled(64 * 11008), up = tiled(64 * 11008, 0.3);
    const cases: [string, string, (impl: Impl) => Promise<unknown>][] = [
      ["logSoftmaxGather", `${M}×${V}`, (impl) => logSoftmaxGather({ logits, vocab: V, targets, impl })],
      ["logSoftmaxTopk k=10", `${M}×${V}`, (impl) => logSoftmaxTopk({ logits, vocab: V, k: 10, impl })],
      ["rmsnorm", "64×4096", (impl) => rmsnorm({ x: hidden, w, eps: 1e-5, impl })],
      ["ropeApply", "64×32×128", (impl) => ropeApply({ x: qk, nHeads: 32, headDim: 128, positions, invFreq, impl })],
      ["siluMul", "64×11008", (impl) => siluMul({ gate, up, impl })],
    ];
    for (const [op, shape, run] of cases) {
      const loop = (impl: Impl) => async (repeat: number) => { for (let i = 0; i < repeat; i++) await run(impl); };
      const { s, speedup } = await timeInterleaved([loop("ref"), loop("fast")], quick ? 3 : 5);
      const row = { op, shape, refMs: s[0] * 1e3, fastMs: s[1] * 1e3, speedup: speedup[1] };
      ops.push(row);
      console.log(`${op} ${shape}: ref ${row.refMs.toFixed(2)} ms, fast ${row.fastMs.toFixed(2)} ms, ${row.speedup.toFixed(1)}x`);
    }
  }

  // The table last.
  console.log("\nDecode attention, 32 heads × 128 (median ms per call; GB/s of KV read; speedup vs f32 K/V, same run; " +
    `caches rotated over >= ${layersMiB} MiB per type)`);
  console.log("case              B  ctx    | " + types.map((t) => `${t.padStart(4)} ms    GB/s   x`.padEnd(24)).join("| "));
  for (let i = 0; i < decode.length; i += types.length) {
    const r0 = decode[i];
    const cells = decode.slice(i, i + types.length).map((r) =>
      `${r.ms.toFixed(3).padStart(8)} ${r.gbps.toFixed(1).padStart(6)} ${r.speedup.toFixed(2).padStart(5)}`.padEnd(24));
    console.log(`${r0.attn.padEnd(16)} ${String(r0.batch).padStart(2)} ${String(r0.ctx).padStart(6)} | ${cells.join("| ")}`);
  }
  console.log(`roofline: memcpy ${roofline.toFixed(1)} GB/s (1 thread)`);
  console.log("\nCausal prefill, MHA 32 heads × 128 (median ms; GFLOP/s; speedup vs f32)");
  for (const r of prefill)
    console.log(`T=${String(r.tokens).padStart(5)} ${r.type.padStart(4)}: ${r.ms.toFixed(1).padStart(9)} ms ${r.gflops.toFixed(1).padStart(7)} GFLOP/s ${r.speedup.toFixed(2).padStart(6)}x`);
  console.log("\nDecoder-step ops (median ms; fast vs the scalar reference, same rounds)");
  for (const r of ops)
    console.log(`${r.op.padEnd(20)} ${r.shape.padStart(12)}: ref ${r.refMs.toFixed(2).padStart(8)} ms  fast ${r.fastMs.toFixed(2).padStart(7)} ms  ${r.speedup.toFixed(1).padStart(5)}x`);
  const bar = decode.find((r) => r.attn.startsWith("MHA") && r.batch === 1 && r.ctx === 4096 && r.type === "i4");
  const load1 = os.loadavg()[0];
  if (bar) console.log(`\nbar: int4 vs fp32 K/V decode, MHA B=1 ctx 4096: ${bar.speedup.toFixed(2)}x (target >= 3x); ` +
    `on 1 thread: ${bar1!.speedup.toFixed(2)}x (f32 ${bar1!.f32Ms.toFixed(2)} ms, i4 ${bar1!.i4Ms.toFixed(2)} ms)`);
  console.log(`load average ${load0.toFixed(1)} -> ${load1.toFixed(1)} on ${os.cpus().length} CPUs (on a shared machine the ` +
    `ratios move with its load: compare runs at similar load)`);

  const date = new Date().toISOString();
  const result = {
    bench: "attention", commit, date, cpu: cpuModel, threads: cpu.threads, isa: cpu.isa, quick, decode_only: decodeOnly,
    decode_rotation_min_mib: layersMiB,
    loadavg_start: load0, loadavg_end: load1, roofline_memcpy_gbps: roofline, decode, decode_bar_1thread: bar1, prefill, ops,
  };
  const outDir = path.join(packageRoot, "bench", "out");
  mkdirSync(outDir, { recursive: true });
  const stamp = date.replace(/[:.]/g, "-");
  writeFileSync(path.join(outDir, `attention-${stamp}.json`), JSON.stringify(result, null, 2));
  if (args.has("--save")) {
    const resDir = path.join(packageRoot, "bench", "results");
    mkdirSync(resDir, { recursive: true });
    const ti = argv.indexOf("--tag"), tag = ti >= 0 ? `-${argv[ti + 1]}` : "";
    writeFileSync(path.join(resDir, `cpu-attention-${date.slice(0, 10)}${tag}.json`), JSON.stringify(result, null, 2));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
