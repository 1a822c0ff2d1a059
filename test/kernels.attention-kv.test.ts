// Attention over caches whose K and V have different element types (k8v4 ...) and with a sliding window, through
// the addon: every (K, V) type pair fast vs ref vs a naive double-precision attention written here; k8v4 and k4v8
// give different outputs, each equal to the naive attention over its own dequantized cache; windows of 1, a few
// tokens, across the kernels' 64-token blocks and >= the length (= no window, bit for bit), GQA and MHA, decode and
// prefill; bad kType / window arguments.
//
// Tolerances: fast vs ref and ref vs naive double: relative ≤ 5e-6 of the output norm (fp32 online softmax), as in
// kernels.ops.test.ts.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { native } from "../lib/native.js";
import { decodeTolerance } from "./helpers/attention_tolerance.js";
import {
  allocKVCache, attentionDecode, attentionPrefill, kvAppend, kvBytesPerHead, kvTypes, type KVCache, type KVType,
} from "../lib/ops.js";

function rng(seed: number) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  return { u, randn: (n: number, sd = 1, mean = 0) => Float32Array.from({ length: n }, () => mean + sd * normal()) };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

type Pair = { k: KVType; v: KVType };
const TYPES: KVType[] = ["f32", "f16", "i8", "i4"];
const PAIRS: Pair[] = TYPES.flatMap((k) => TYPES.map((v) => ({ k, v })));
const name = (p: Pair) => `k:${p.k}/v:${p.v}`;

/** Cache of `len` random tokens (keys with a non-zero mean so the zero-point term matters). */
async function randomCache(r: ReturnType<typeof rng>, p: Pair, nKv: number, D: number, len: number): Promise<KVCache> {
  const c = allocKVCache(p, len, nKv, D);
  await kvAppend(c, r.randn(len * nKv * D, 1, 0.3), r.randn(len * nKv * D), 0);
  return c;
}

/** Dequantized element of a cache (formats.h), in double; K and V each by their own type. */
function deq(c: KVCache, which: "k" | "v", t: number, h: number, d: number): number {
  const type = kvTypes(c)[which];
  const row = t * c.nKvHeads + h;
  const data = c[which];
  if (type === "f32") return (data as Float32Array)[row * c.headDim + d];
  if (type === "f16") {
    const bits = (data as Uint16Array)[row * c.headDim + d];
    const e = (bits >> 10) & 31, m = bits & 1023, sign = bits & 0x8000 ? -1 : 1;
    return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
  }
  const s = (which === "k" ? c.kScale : c.vScale)![row], z = (which === "k" ? c.kZero : c.vZero)![row];
  const bytes = data as Uint8Array;
  if (type === "i3" || type === "i2") {
    // formats.h: a 2-bit plane of ceil(D/4) bytes (code d at byte d/4, bits 2(d%4)), then for int3 a plane of high
    // bits (bit d%8 of byte d/8).
    const D = c.headDim, rb = kvBytesPerHead(type, D), base = row * rb;
    let q = (bytes[base + (d >> 2)] >> (2 * (d & 3))) & 3;
    if (type === "i3") q += 4 * ((bytes[base + Math.ceil(D / 4) + (d >> 3)] >> (d & 7)) & 1);
    return (q - z) * s;
  }
  const q = type === "i8" ? bytes[row * c.headDim + d] : (bytes[(row * c.headDim + d) >> 1] >> ((d & 1) * 4)) & 15;
  return (q - z) * s;
}

/**
 * Naive two-pass softmax attention in double, one query head at position p = len - 1: keys j <= p, and with a
 * window W only those with p - j < W (the transformers sliding-window mask).
 */
function naiveAttend(q: ArrayLike<number>, c: KVCache, kvh: number, len: number, scale: number, window = 0): Float64Array {
  const D = c.headDim, p = len - 1;
  const visible = (j: number) => window === 0 || p - j < window;
  const s = new Float64Array(len);
  let mx = -Infinity;
  for (let t = 0; t < len; t++) {
    if (!visible(t)) continue;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[d] * deq(c, "k", t, kvh, d);
    s[t] = dot * scale;
    mx = Math.max(mx, s[t]);
  }
  let sum = 0;
  for (let t = 0; t < len; t++) { s[t] = visible(t) ? Math.exp(s[t] - mx) : 0; sum += s[t]; }
  const out = new Float64Array(D);
  for (let t = 0; t < len; t++) if (s[t]) for (let d = 0; d < D; d++) out[d] += (s[t] / sum) * deq(c, "v", t, kvh, d);
  return out;
}

/** Naive decode output [B, nHeads, D] for q [B, nHeads, D]. */
function naiveDecode(q: Float32Array, nHeads: number, kv: KVCache[], lens: number[], window = 0): Float64Array {
  const D = kv[0].headDim, out = new Float64Array(q.length);
  lens.forEach((len, b) => {
    const G = nHeads / kv[b].nKvHeads;
    for (let h = 0; h < nHeads; h++) {
      const o = (b * nHeads + h) * D;
      out.set(naiveAttend(q.subarray(o, o + D), kv[b], Math.floor(h / G), len, 1 / Math.sqrt(D), window), o);
    }
  });
  return out;
}

describe("attention with separate K and V types", () => {
  it.each(PAIRS.map((p) => [name(p), p] as const))("decode %s: fast vs ref vs naive double, GQA ragged batch",
    async (_n, p) => {
      const r = rng(101);
      const [nHeads, nKv, D, lens] = [6, 2, 40, [1, 70, 300]];
      const kv = await Promise.all(lens.map((l) => randomCache(r, p, nKv, D, l + 1)));
      const q = r.randn(lens.length * nHeads * D);
      const fast = await attentionDecode({ q, nHeads, kv, lens });
      const ref = await attentionDecode({ q, nHeads, kv, lens, impl: "ref" });
      expect(relErr(fast, ref)).toBeLessThanOrEqual(5e-6);
      expect(relErr(ref, naiveDecode(q, nHeads, kv, lens))).toBeLessThanOrEqual(5e-6);
      const pre = await randomCache(r, p, nKv, D, 50);
      const qp = r.randn(45 * nHeads * D);
      const pf = await attentionPrefill({ q: qp, nHeads, kv: pre, pos0: 5 });
      const pr = await attentionPrefill({ q: qp, nHeads, kv: pre, pos0: 5, impl: "ref" });
      expect(relErr(pf, pr)).toBeLessThanOrEqual(5e-6);
    });

  // int3 / int2 caches (kv3 / kv2), alone and mixed with the other types; head_dim 13 (odd: the bit planes pad their
  // last byte) and 64.
  const LOW: Pair[] = [{ k: "i3", v: "i3" }, { k: "i2", v: "i2" }, { k: "i3", v: "i2" }, { k: "i8", v: "i3" },
                       { k: "i2", v: "f16" }, { k: "f32", v: "i3" }, { k: "i4", v: "i2" }];
  it.each(LOW.map((p) => [name(p), p] as const))("int3/int2 %s: decode and prefill fast vs ref vs naive double",
    async (_n, p) => {
      const r = rng(103);
      for (const D of p.k === "i4" || p.v === "i4" ? [64] : [13, 64]) {
        const [nHeads, nKv, lens] = [4, 2, [1, 90]];
        const kv = await Promise.all(lens.map((l) => randomCache(r, p, nKv, D, l + 2)));
        expect(kv[0].k.byteLength).toBe(3 * nKv * kvBytesPerHead(p.k, D));
        const q = r.randn(lens.length * nHeads * D);
        const fast = await attentionDecode({ q, nHeads, kv, lens });
        const ref = await attentionDecode({ q, nHeads, kv, lens, impl: "ref" });
        expect(relErr(fast, ref)).toBeLessThanOrEqual(5e-6);
        expect(relErr(ref, naiveDecode(q, nHeads, kv, lens))).toBeLessThanOrEqual(5e-6);
        const pre = await randomCache(r, p, nKv, D, 40);
        const qp = r.randn(33 * nHeads * D);
        const pf = await attentionPrefill({ q: qp, nHeads, kv: pre, pos0: 5 });
        const pr = await attentionPrefill({ q: qp, nHeads, kv: pre, pos0: 5, impl: "ref" });
        expect(relErr(pf, pr)).toBeLessThanOrEqual(5e-6);
        const last = qp.subarray(32 * nHeads * D);
        expect(relErr(pr.subarray(32 * nHeads * D), naiveDecode(last, nHeads, [pre], [38]))).toBeLessThanOrEqual(5e-6);
      }
    });

  it("k8v4 and k4v8 differ from each other and from kv8 / kv4, each equal to its own naive attention", async () => {
    const r = rng(102);
    const [nHeads, nKv, D, T] = [4, 2, 64, 200];
    const k = r.randn(T * nKv * D, 1, 0.3), v = r.randn(T * nKv * D);
    const q = r.randn(nHeads * D);
    const out: Record<string, Float32Array> = {};
    for (const p of [{ k: "i8", v: "i4" }, { k: "i4", v: "i8" }, { k: "i8", v: "i8" }, { k: "i4", v: "i4" }] as Pair[]) {
      const c = allocKVCache(p, T, nKv, D);
      await kvAppend(c, k, v, 0);  // the same K and V tokens in every cache
      const o = await attentionDecode({ q, nHeads, kv: [c], lens: [T] });
      expect(relErr(o, naiveDecode(q, nHeads, [c], [T]))).toBeLessThanOrEqual(5e-6);
      out[name(p)] = o;
    }
    const keys = Object.keys(out);
    for (let i = 0; i < keys.length; i++)
      for (let j = i + 1; j < keys.length; j++) expect(relErr(out[keys[i]], out[keys[j]]), `${keys[i]} vs ${keys[j]}`).toBeGreaterThan(1e-4);
  });

  it("a mixed cache allocates each side by its own type", () => {
    const c = allocKVCache({ k: "i8", v: "i4" }, 10, 2, 8);
    expect(c.k.byteLength).toBe(10 * 2 * 8);
    expect(c.v.byteLength).toBe(10 * 2 * 4);
    const f = allocKVCache({ k: "f16", v: "i4" }, 10, 2, 8);
    expect(f.kScale).toBeUndefined();
    expect(f.vScale!.length).toBe(20);
  });
});

const decodeTol = (p: Pair, nHeads: number, nKv: number, D: number) => decodeTolerance(p.k, p.v, nHeads, nKv, D);

describe("sliding-window attention", () => {
  const cases: [string, Pair, number, number, number, number[]][] = [
    // label, types, nHeads, nKv, D, windows
    ["GQA f32", { k: "f32", v: "f32" }, 8, 2, 32, [1, 2, 5, 64, 65, 100]],
    ["MHA i4", { k: "i4", v: "i4" }, 3, 3, 64, [1, 7, 64, 99]],
    ["GQA k8v4", { k: "i8", v: "i4" }, 4, 1, 16, [1, 3, 130]],
  ];
  it.each(cases)("decode %s: fast vs ref vs naive, window 1 / small / across blocks", async (_l, p, nHeads, nKv, D, windows) => {
    const r = rng(103);
    const lens = [1, 4, 100, 300];
    const kv = await Promise.all(lens.map((l) => randomCache(r, p, nKv, D, l)));
    const q = r.randn(lens.length * nHeads * D);
    const full = await attentionDecode({ q, nHeads, kv, lens, impl: "ref" });
    for (const window of windows) {
      const fast = await attentionDecode({ q, nHeads, kv, lens, window });
      const ref = await attentionDecode({ q, nHeads, kv, lens, window, impl: "ref" });
      expect(relErr(fast, ref), `window ${window}`).toBeLessThanOrEqual(decodeTol(p, nHeads, nKv, D));
      expect(relErr(ref, naiveDecode(q, nHeads, kv, lens, window)), `window ${window}`).toBeLessThanOrEqual(5e-6);
      // Sequences no longer than the window are unchanged; longer ones change.
      lens.forEach((len, b) => {
        const o = b * nHeads * D, e = o + nHeads * D;
        const same = relErr(ref.subarray(o, e), full.subarray(o, e));
        if (len <= window) expect(same, `len ${len} window ${window}`).toBe(0);
        else expect(same, `len ${len} window ${window}`).toBeGreaterThan(1e-6);
      });
    }
    // Window 1: the output is the last token's V row exactly (up to dequantization in fp32).
    const one = await attentionDecode({ q, nHeads, kv, lens, window: 1 });
    const G = nHeads / nKv;
    lens.forEach((len, b) => {
      for (let h = 0; h < nHeads; h++)
        for (let d = 0; d < D; d++)
          expect(one[(b * nHeads + h) * D + d]).toBeCloseTo(deq(kv[b], "v", len - 1, Math.floor(h / G), d), 5);
    });
  });

  it.each(cases)("prefill %s: fast vs ref vs naive per row; window >= length equals no window", async (_l, p, nHeads, nKv, D, windows) => {
    const r = rng(104);
    const [Tq, pos0] = [90, 11];
    const kv = await randomCache(r, p, nKv, D, pos0 + Tq);
    const q = r.randn(Tq * nHeads * D);
    for (const window of windows) {
      const fast = await attentionPrefill({ q, nHeads, kv, pos0, window });
      const ref = await attentionPrefill({ q, nHeads, kv, pos0, window, impl: "ref" });
      expect(relErr(fast, ref), `window ${window}`).toBeLessThanOrEqual(5e-6);
      const naive = new Float64Array(q.length);
      const G = nHeads / nKv;
      for (let i = 0; i < Tq; i++)
        for (let h = 0; h < nHeads; h++) {
          const o = (i * nHeads + h) * D;
          naive.set(naiveAttend(q.subarray(o, o + D), kv, Math.floor(h / G), pos0 + i + 1, 1 / Math.sqrt(D), window), o);
        }
      expect(relErr(ref, naive), `window ${window}`).toBeLessThanOrEqual(5e-6);
    }
    const none = await attentionPrefill({ q, nHeads, kv, pos0 });
    const wide = await attentionPrefill({ q, nHeads, kv, pos0, window: pos0 + Tq });
    expect(Array.from(wide)).toEqual(Array.from(none));
  });

  it("rejects bad kType and window arguments", async () => {
    const c = allocKVCache("f32", 4, 1, 8);
    const q = new Float32Array(8).fill(0.5);
    expect(() => attentionDecode({ q, nHeads: 1, kv: [{ ...c, kType: "i5" as KVType }], lens: [1] })).toThrow(
      /attentionDecode: kv\[0\]\.kType: expected one of f32, f16, i8, i4, i3, i2, got 'i5'/);
    expect(() => attentionDecode({ q, nHeads: 1, kv: [c], lens: [1], window: -1 })).toThrow(/attentionDecode: window/);
    expect(() => attentionPrefill({ q, nHeads: 1, kv: c, window: 1.5 })).toThrow(/attentionPrefill: window/);
    // A V declared i4 over a buffer of the wrong size for the capacity K implies.
    expect(() => attentionDecode({ q, nHeads: 1, kv: [{ ...c, vType: "i4", vScale: new Float32Array(4), vZero: new Float32Array(4) }], lens: [1] }))
      .toThrow(/kv\[0\]\.v: expected 16 bytes, got 128/);
  });
});

describe("allocKVCache buffers (the addon's allocBuffer)", () => {
  it("returns zeroed ArrayBuffers of the size asked, their whole 2 MiB pages huge where the kernel offers them", () => {
    const a = native();
    for (const bytes of [0, 10, (2 << 20) - 1, 5 << 20]) {
      const b = a.allocBuffer(bytes) as ArrayBuffer;
      expect(b).toBeInstanceOf(ArrayBuffer);
      expect(b.byteLength).toBe(bytes);
      expect(new Uint8Array(b).every((x) => x === 0)).toBe(true);
    }
    const c = allocKVCache("i4", 4096, 32, 128);
    expect(c.k.byteLength).toBe(4096 * 32 * 64);
    expect(c.kScale!.length).toBe(4096 * 32);
    // THP in "always" or "madvise" mode: a touched 64 MiB buffer is (mostly) huge pages.
    const thp = (() => { try { return readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"); } catch { return ""; } })();
    if (/\[(always|madvise)\]/.test(thp)) {
      const huge = () => Number(readFileSync("/proc/self/smaps_rollup", "utf8").match(/AnonHugePages:\s+(\d+)/)![1]);
      const before = huge();
      const big = new Uint8Array(a.allocBuffer(64 << 20));
      big.fill(1);
      expect(huge() - before).toBeGreaterThanOrEqual(32 << 10); // kB
    }
  });

  it("is collected like any ArrayBuffer: 300 dropped 8 MiB buffers do not stay resident", () => {
    const a = native();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 300; i++) new Uint8Array(a.allocBuffer(8 << 20)).fill(1);
    // 2.4 GB if none were freed (an external-memory version of allocBuffer reached that)
    expect(process.memoryUsage().rss - rss0).toBeLessThan(1 << 30);
  });

  it("rejects a size that is not a non-negative integer, naming it", () => {
    const a = native();
    expect(() => a.allocBuffer(-1)).toThrow(RangeError);
    expect(() => a.allocBuffer(-1)).toThrow(/bytes: expected an integer in \[0, /);
    expect(() => a.allocBuffer(1.5)).toThrow(TypeError);
    expect(() => a.allocBuffer("8")).toThrow(/bytes: expected an integer, got string/);
    expect(() => a.allocBuffer()).toThrow(/bytes: missing argument 0/);
  });
});
