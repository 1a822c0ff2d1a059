// The KV-cache and decoder-step kernels through the addon: fast vs ref at a few shapes, the attention reference vs
// a naive double-precision attention written here, RoPE inv_freq vs transformers' formulas for the
// tiny-llama3-gqa config, and one test per kind of bad argument.
//
// Tolerances: attention fast vs ref and ref vs naive double: relative ≤ 5e-6 of the output norm (fp32 online
// softmax; fast vs ref 1e-4 for the 16-bit fixed-point int4 cases, helpers/attention_tolerance.ts); rmsnorm, ropeApply, embedding: bit-exact; siluMul, softmax: ≤ 1e-6 relative per element (vector exp);
// log-probs: ≤ 1e-5 absolute; RoPE inv_freq vs the formula in double: ≤ 1 fp32 ulp (relative 1.2e-7).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeTolerance } from "./helpers/attention_tolerance.js";
import {
  allocKVCache, attentionDecode, attentionPrefill, embedding, kvAppend, kvStore, logSoftmaxGather, logSoftmaxTopk,
  rmsnorm, ropeApply, ropeInvFreq, ropeOptionsFromHfConfig, siluMul, softmax, type KVCache, type KVType,
} from "../lib/ops.js";

const shared = process.env.QUANTEVAL_SHARED ?? path.resolve(import.meta.dirname, "..", "..", "shared");

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
  return { u, normal, randn: (n: number, sd = 1, mean = 0) => Float32Array.from({ length: n }, () => mean + sd * normal()) };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

/** Cache of `len` random tokens (keys with a non-zero mean so the zero-point term matters). */
async function randomCache(r: ReturnType<typeof rng>, type: KVType, nKv: number, D: number, len: number): Promise<KVCache> {
  const c = allocKVCache(type, len, nKv, D);
  await kvAppend(c, r.randn(len * nKv * D, 1, 0.3), r.randn(len * nKv * D), 0);
  return c;
}

/** Dequantized element of a cache (formats.h), in double. */
function deq(c: KVCache, which: "k" | "v", t: number, h: number, d: number): number {
  const row = t * c.nKvHeads + h;
  const data = c[which];
  if (c.type === "f32") return (data as Float32Array)[row * c.headDim + d];
  if (c.type === "f16") {
    const bits = (data as Uint16Array)[row * c.headDim + d];
    const e = (bits >> 10) & 31, m = bits & 1023, sign = bits & 0x8000 ? -1 : 1;
    return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
  }
  const s = (which === "k" ? c.kScale : c.vScale)![row], z = (which === "k" ? c.kZero : c.vZero)![row];
  const bytes = data as Uint8Array;
  const q = c.type === "i8" ? bytes[row * c.headDim + d] : (bytes[(row * c.headDim + d) >> 1] >> ((d & 1) * 4)) & 15;
  return (q - z) * s;
}

/** Naive two-pass softmax attention in double on the dequantized cache: one query head. */
function naiveAttend(q: Float32Array, c: KVCache, kvh: number, len: number, scale: number): Float64Array {
  const D = c.headDim, s = new Float64Array(len);
  let mx = -Infinity;
  for (let t = 0; t < len; t++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[d] * deq(c, "k", t, kvh, d);
    s[t] = dot * scale;
    mx = Math.max(mx, s[t]);
  }
  let sum = 0;
  for (let t = 0; t < len; t++) { s[t] = Math.exp(s[t] - mx); sum += s[t]; }
  const out = new Float64Array(D);
  for (let t = 0; t < len; t++) for (let d = 0; d < D; d++) out[d] += (s[t] / sum) * deq(c, "v", t, kvh, d);
  return out;
}

const types: KVType[] = ["f32", "f16", "i8", "i4"];

describe("attention through the addon", () => {
  it.each(types)("decode %s: fast vs ref vs naive double, GQA and MHA, ragged batch", async (type) => {
    const r = rng(11);
    for (const [nHeads, nKv, D, lens] of [
      [4, 2, 64, [1, 37, 300]],
      [2, 2, 8, [5, 64]],
      [8, 1, 128, [700]],
    ] as [number, number, number, number[]][]) {
      const kv = await Promise.all(lens.map((l) => randomCache(r, type, nKv, D, l + 2)));
      const q = r.randn(lens.length * nHeads * D);
      const fast = await attentionDecode({ q, nHeads, kv, lens });
      const ref = await attentionDecode({ q, nHeads, kv, lens: Int32Array.from(lens), impl: "ref" });
      expect(relErr(fast, ref)).toBeLessThanOrEqual(decodeTolerance(type, type, nHeads, nKv, D));
      const naive = new Float64Array(ref.length);
      const G = nHeads / nKv;
      lens.forEach((len, b) => {
        for (let h = 0; h < nHeads; h++) {
          const o = (b * nHeads + h) * D;
          naive.set(naiveAttend(q.subarray(o, o + D), kv[b], Math.floor(h / G), len, 1 / Math.sqrt(D)), o);
        }
      });
      expect(relErr(ref, naive)).toBeLessThanOrEqual(5e-6);
    }
  });

  it.each(types)("prefill %s: fast vs ref; last row equals decode", async (type) => {
    const r = rng(12);
    const [nHeads, nKv, D, Tq, pos0] = [6, 2, 16, 45, 7];
    const kv = await randomCache(r, type, nKv, D, pos0 + Tq);
    const q = r.randn(Tq * nHeads * D);
    const fast = await attentionPrefill({ q, nHeads, kv, pos0 });
    const ref = await attentionPrefill({ q, nHeads, kv, pos0, impl: "ref" });
    expect(relErr(fast, ref)).toBeLessThanOrEqual(5e-6);
    const last = q.subarray((Tq - 1) * nHeads * D);
    const dec = await attentionDecode({ q: last, nHeads, kv: [kv], lens: [pos0 + Tq], impl: "ref" });
    expect(Array.from(dec)).toEqual(Array.from(ref.subarray((Tq - 1) * nHeads * D)));
  });

  it("kvStore fast == ref, and int4 dequantization error <= s/2", async () => {
    const r = rng(13);
    const [T, H, D] = [9, 3, 64];
    const x = r.randn(T * H * D, 2);
    const a = allocKVCache("i4", T, H, D), b = allocKVCache("i4", T, H, D);
    await kvStore({ x, type: "i4", nKvHeads: H, headDim: D, dst: a.k, scale: a.kScale, zero: a.kZero });
    await kvStore({ x, type: "i4", nKvHeads: H, headDim: D, dst: b.k, scale: b.kScale, zero: b.kZero, impl: "ref" });
    expect(Buffer.from(a.k.buffer).equals(Buffer.from(b.k.buffer))).toBe(true);
    expect(Array.from(a.kScale!)).toEqual(Array.from(b.kScale!));
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++)
          expect(Math.abs(deq(a, "k", t, h, d) - x[(t * H + h) * D + d])).toBeLessThanOrEqual(a.kScale![t * H + h] * 0.5 * (1 + 1e-4));
  });

  it.each(["i3", "i2"] as const)("kvStore %s (odd head_dim, offset): fast == ref, codes within [0, 2^b - 1]", async (type) => {
    const r = rng(14);
    const [T, H, D, cap, off] = [5, 2, 13, 8, 2];
    const x = r.randn(T * H * D, 2);
    const a = allocKVCache(type, cap, H, D), b = allocKVCache(type, cap, H, D);
    expect(a.k.byteLength).toBe(cap * H * (type === "i3" ? 4 + 2 : 4));  // ceil(13/4) (+ ceil(13/8)) bytes a row
    await kvStore({ x, type, nKvHeads: H, headDim: D, dst: a.k, scale: a.kScale, zero: a.kZero, offset: off });
    await kvStore({ x, type, nKvHeads: H, headDim: D, dst: b.k, scale: b.kScale, zero: b.kZero, offset: off, impl: "ref" });
    expect(Buffer.from(a.k.buffer).equals(Buffer.from(b.k.buffer))).toBe(true);
    expect(Array.from(a.kScale!)).toEqual(Array.from(b.kScale!));
    expect(Array.from(a.kZero!)).toEqual(Array.from(b.kZero!));
    const qmax = type === "i3" ? 7 : 3;
    for (let i = off * H; i < (off + T) * H; i++) {
      expect(a.kScale![i]).toBeGreaterThan(0);
      expect(a.kZero![i]).toBeGreaterThanOrEqual(0);
      expect(a.kZero![i]).toBeLessThanOrEqual(qmax);
    }
    expect(Array.from(a.kScale!.subarray(0, off * H))).toEqual(new Array(off * H).fill(0));  // rows before offset untouched
  });
});

describe("decoder-step ops through the addon", () => {
  const r = rng(21);
  it("rmsnorm, ropeApply, embedding: fast bit-exact with ref", async () => {
    const [M, D] = [5, 96];
    const x = r.randn(M * D, 2), w = r.randn(D, 0.1, 1);
    expect(Array.from(await rmsnorm({ x, w, eps: 1e-5 }))).toEqual(Array.from(await rmsnorm({ x, w, eps: 1e-5, impl: "ref" })));
    const [T, H, HD] = [7, 4, 64];
    const invFreq = ropeInvFreq({ headDim: HD, rotaryDim: 32, theta: 10000 });
    const positions = Int32Array.from({ length: T }, (_, i) => 3 * i + 100);
    const y = r.randn(T * H * HD);
    const a = await ropeApply({ x: y.slice(), nHeads: H, headDim: HD, rotaryDim: 32, positions, invFreq });
    const b = await ropeApply({ x: y.slice(), nHeads: H, headDim: HD, rotaryDim: 32, positions, invFreq, impl: "ref" });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(relErr(a, y)).toBeGreaterThan(0.01);  // it did rotate
    expect(a[HD - 1]).toBe(y[HD - 1]);           // dims past rotaryDim untouched
    const table = r.randn(40 * 12);
    const ids = Int32Array.from([0, 39, 7, 7]);
    const e = await embedding({ table, dtype: "f32", dim: 12, ids });
    expect(Array.from(e.subarray(12, 24))).toEqual(Array.from(table.subarray(39 * 12, 40 * 12)));
    const h16 = Uint16Array.from(table, (v) => new Uint16Array(new Float32Array([v]).buffer)[1]);  // bf16 by truncation
    const eb = await embedding({ table: h16, dtype: "bf16", dim: 12, ids });
    expect(Array.from(eb)).toEqual(Array.from(await embedding({ table: h16, dtype: "bf16", dim: 12, ids, impl: "ref" })));
  });

  it("siluMul, softmax: fast vs ref within 1e-6 per element", async () => {
    const n = 1000;
    const g = r.randn(n, 4), u = r.randn(n);
    const a = await siluMul({ gate: g, up: u }), b = await siluMul({ gate: g, up: u, impl: "ref" });
    for (let i = 0; i < n; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-6 * Math.abs(b[i]) + 1e-30);
    const x = r.randn(3 * 517, 3);
    const s = await softmax({ x: x.slice(), n: 517 }), t = await softmax({ x: x.slice(), n: 517, impl: "ref" });
    for (let i = 0; i < s.length; i++) expect(Math.abs(s[i] - t[i])).toBeLessThanOrEqual(1e-6 * t[i]);
    let row = 0;
    for (let j = 0; j < 517; j++) row += s[j];
    expect(row).toBeCloseTo(1, 5);
  });

  it("logSoftmaxGather / logSoftmaxTopk at vocab 32000: fast vs ref vs double", async () => {
    const [M, V] = [4, 32000];
    const logits = r.randn(M * V, 3);
    const targets = Int32Array.from([0, 31999, 123, 5000]);
    const a = await logSoftmaxGather({ logits, vocab: V, targets });
    const b = await logSoftmaxGather({ logits, vocab: V, targets, impl: "ref" });
    for (let m = 0; m < M; m++) {
      const row = logits.subarray(m * V, (m + 1) * V);
      let mx = -Infinity, s = 0;
      for (const v of row) mx = Math.max(mx, v);
      for (const v of row) s += Math.exp(v - mx);
      const want = row[targets[m]] - mx - Math.log(s);
      expect(Math.abs(a[m] - want)).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(a[m] - b[m])).toBeLessThanOrEqual(1e-5);
    }
    const k = 5;
    const ta = await logSoftmaxTopk({ logits, vocab: V, k }), tb = await logSoftmaxTopk({ logits, vocab: V, k, impl: "ref" });
    expect(Array.from(ta.idx)).toEqual(Array.from(tb.idx));
    for (let i = 0; i < M * k; i++) expect(Math.abs(ta.logp[i] - tb.logp[i])).toBeLessThanOrEqual(1e-5);
    const row0 = Array.from(logits.subarray(0, V)).map((v, i) => [v, i]).sort((p, q) => q[0] - p[0] || p[1] - q[1]);
    expect(Array.from(ta.idx.subarray(0, k))).toEqual(row0.slice(0, k).map((p) => p[1]));
  });
});

describe("RoPE inverse frequencies", () => {
  // transformers' _compute_default_rope_parameters and _compute_llama3_parameters, written out in double.
  function hfInvFreq(cfg: Record<string, any>): number[] {
    const p = cfg.rope_parameters ?? cfg.rope_scaling;
    const headDim = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
    const dim = Math.floor(headDim * (cfg.partial_rotary_factor ?? 1));
    const base = p?.rope_theta ?? cfg.rope_theta;
    const inv: number[] = [];
    for (let i = 0; i < dim; i += 2) inv.push(1 / base ** (i / dim));
    if ((p?.rope_type ?? p?.type) !== "llama3") return inv;
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = p;
    const lowWl = old / lo, highWl = old / hi;
    return inv.map((f) => {
      const wl = (2 * Math.PI) / f;
      let g = wl > lowWl ? f / factor : f;
      if (!(wl < highWl) && !(wl > lowWl)) {
        const smooth = (old / wl - lo) / (hi - lo);
        g = ((1 - smooth) * g) / factor + smooth * g;
      }
      return g;
    });
  }

  const cfgPath = path.join(shared, "data", "models", "tiny-llama3-gqa", "config.json");
  it.skipIf(!existsSync(cfgPath))("tiny-llama3-gqa (rope_type llama3) matches transformers' formula", () => {
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    const opts = ropeOptionsFromHfConfig(cfg);
    expect(opts.scaling).toBe("llama3");
    const got = ropeInvFreq(opts);
    const want = hfInvFreq(cfg);
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1.2e-7 * want[i]);
    // The config's small original context (64) puts dims in all three llama3 bands: some unscaled, some / factor.
    const plain = hfInvFreq({ ...cfg, rope_parameters: { rope_theta: cfg.rope_parameters.rope_theta } });
    expect(want.some((f, i) => f === plain[i])).toBe(true);
    expect(want.some((f, i) => Math.abs(f - plain[i] / cfg.rope_parameters.factor) < 1e-12 * f)).toBe(true);
  });

  it("default and linear", () => {
    const d = ropeInvFreq({ headDim: 64, theta: 10000 });
    const l = ropeInvFreq({ headDim: 64, theta: 10000, scaling: "linear", factor: 2 });
    for (let i = 0; i < 32; i++) {
      const want = 1 / 10000 ** ((2 * i) / 64);
      expect(Math.abs(d[i] - want)).toBeLessThanOrEqual(1.2e-7 * want);
      expect(Math.abs(l[i] - want / 2)).toBeLessThanOrEqual(1.2e-7 * want);
    }
  });
});

describe("bad arguments", () => {
  const D = 8;
  const cache = allocKVCache("i4", 4, 2, D);
  const q = new Float32Array(4 * D);
  it("wrong type: TypeError naming the option", () => {
    expect(() => attentionDecode({ q: new Float64Array(4 * D) as any, nHeads: 4, kv: [cache], lens: [1] })).toThrow(
      /attentionDecode: q: expected Float32Array, got Float64Array\(32\)/);
    expect(() => (rmsnorm as any)()).toThrow(TypeError);
    expect(() => attentionDecode({ q, nHeads: 4, kv: cache as any, lens: [1] })).toThrow(/kv: expected an array/);
  });
  it("wrong length vs shape: RangeError with expected and got", () => {
    expect(() => attentionDecode({ q: new Float32Array(5), nHeads: 4, kv: [cache], lens: [1] })).toThrow(
      /q: expected 32 elements \[1, 4, 8\], got 5/);
    expect(() => rmsnorm({ x: new Float32Array(10), w: new Float32Array(3) })).toThrow(RangeError);
    expect(() => ropeApply({ x: new Float32Array(16), nHeads: 1, headDim: 8, positions: new Int32Array(3), invFreq: new Float32Array(4) }))
      .toThrow(/positions: expected 2 elements/);
  });
  it("n_heads not a multiple of n_kv_heads", () => {
    expect(() => attentionDecode({ q: new Float32Array(3 * D), nHeads: 3, kv: [cache], lens: [1] })).toThrow(
      /nHeads: expected a multiple of kv\[0\].nKvHeads = 2, got 3/);
  });
  it("odd head_dim for int4", () => {
    expect(() => kvStore({ x: new Float32Array(7), type: "i4", nKvHeads: 1, headDim: 7, dst: new Uint8Array(4),
      scale: new Float32Array(1), zero: new Float32Array(1) })).toThrow(/even head dim/);
  });
  it("lens outside [1, capacity]", () => {
    expect(() => attentionDecode({ q, nHeads: 4, kv: [cache], lens: [5] })).toThrow(/lens\[0\]: expected an integer in \[1, 4\], got 5/);
    expect(() => attentionDecode({ q, nHeads: 4, kv: [cache], lens: Int32Array.from([0]) })).toThrow(RangeError);
    expect(() => attentionPrefill({ q: new Float32Array(4 * 2 * D), nHeads: 2, kv: cache, pos0: 3 })).toThrow(/holds 4 tokens/);
  });
  it("ids / targets / k out of range", () => {
    expect(() => embedding({ table: new Float32Array(20), dtype: "f32", dim: 4, ids: Int32Array.from([0, 5]) })).toThrow(
      /ids\[1\]: expected an id in \[0, 5\), got 5/);
    expect(() => logSoftmaxGather({ logits: new Float32Array(20), vocab: 10, targets: Int32Array.from([3, -1]) })).toThrow(
      /targets\[1\]: expected an id in \[0, 10\), got -1/);
    expect(() => logSoftmaxTopk({ logits: new Float32Array(20), vocab: 10, k: 11 })).toThrow(RangeError);
  });
  it("bad enum values and cache layouts", () => {
    expect(() => attentionDecode({ q, nHeads: 4, kv: [cache], lens: [1], impl: "gpu" as any })).toThrow(/impl: expected 'ref' or 'fast', got 'gpu'/);
    expect(() => attentionDecode({ q, nHeads: 4, kv: [{ ...cache, type: "i5" as any }], lens: [1] })).toThrow(/kv\[0\].type: expected one of/);
    expect(() => attentionDecode({ q, nHeads: 4, kv: [{ ...cache, kScale: undefined }], lens: [1] })).toThrow(/kv\[0\].kScale: expected Float32Array/);
    expect(() => attentionDecode({ q, nHeads: 4, kv: [{ ...cache, k: new Uint8Array(9) }], lens: [1] })).toThrow(/kv\[0\].k: expected a multiple of 8 bytes/);
    expect(() => ropeInvFreq({ headDim: 8, rotaryDim: 3 })).toThrow(RangeError);
    expect(() => ropeInvFreq({ headDim: 8, scaling: "yarn" as any })).toThrow(/scaling: expected one of none, llama3, linear/);
    expect(() => embedding({ table: new Float32Array(8), dtype: "i8" as any, dim: 4, ids: new Int32Array(1) })).toThrow(RangeError);
  });
});
