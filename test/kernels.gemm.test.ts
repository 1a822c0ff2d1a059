// The quantization and GEMM kernels through the addon (lib/kernels.ts):
//  - RTN on the real stories260K weights against a TypeScript re-implementation of AWQ/qllm-eval
//    pseudo_quantize_tensor in fp32 (Math.fround after every operation, round half to even): dequantized values must
//    be identical (tolerance 0), codes and scales too.
//  - fast kernels against their scalar references: fp32 accumulation with identical operands, so
//    ||y - y_ref|| <= 1e-5 ||y_ref|| (relative L2); W8A8 (any packed format) fast == ref bit for bit per channel and
//    within 1e-5 grouped, and W8A8 ref against gemmQ(ref) on fakeQuantAct(X) within 1e-5.
//  - every kind of bad argument raises a TypeError / RangeError naming the argument.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  dequantize,
  fakeQuantAct,
  gemm,
  gemmQ,
  gemmW8A8,
  memReadBandwidth,
  nGroups,
  quantizeRtn,
  rowBytes,
  type PackedWeight,
  type QuantFormat,
} from "../lib/kernels.js";
import { native } from "../lib/native.js";

const root = path.resolve(import.meta.dirname, "..");
const shared = process.env.QUANTEVAL_SHARED ?? path.join(root, "..", "shared");
const modelFile = path.join(shared, "data", "models", "stories260K", "model.safetensors");
const haveModel = existsSync(modelFile);
if (!haveModel) console.warn(`kernels.gemm.test: ${modelFile} not found (set QUANTEVAL_SHARED); its tests are skipped`);

// ── helpers ────────────────────────────────────────────────────────────────────────────────────────────────
/** fp32 tensors of a safetensors file: 8-byte little-endian header length, JSON header, raw data. */
function readSafetensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + n;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__" || t.dtype !== "F32") continue;
    const [b, e] = t.data_offsets;
    const bytes = buf.subarray(base + b, base + e);
    out.set(name, { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

const f32 = Math.fround;
/** torch.round: half to even. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);

/**
 * pseudo_quantize_tensor (AWQ / qllm-eval) in fp32 for W[N, K] with groups of `gs` (short last group), returning
 * w_hat, the codes and the scales. Every intermediate is rounded to fp32 as torch does on fp32 tensors (an fp32
 * division computed in double and rounded once is the correctly rounded fp32 quotient).
 */
function pseudoQuantize(W: Float32Array, N: number, K: number, bits: number, gs: number, sym: boolean) {
  const G = Math.ceil(K / gs);
  const what = new Float32Array(N * K), codes = new Int32Array(N * K), scales = new Float32Array(N * G);
  const eps = f32(1e-5);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < G; g++) {
      const k0 = g * gs, k1 = Math.min(K, k0 + gs);
      let s: number, z: number, lo: number, hi: number;
      if (sym) {
        let amax = 0;
        for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(W[n * K + k]));
        s = f32(Math.max(amax, eps) / (2 ** (bits - 1) - 1));
        z = 2 ** (bits - 1); lo = 0; hi = 2 ** bits - 1;  // unsigned codes: signed + 2^(b-1)
      } else {
        let mn = Infinity, mx = -Infinity;
        for (let k = k0; k < k1; k++) { mn = Math.min(mn, W[n * K + k]); mx = Math.max(mx, W[n * K + k]); }
        s = f32(Math.max(f32(mx - mn), eps) / (2 ** bits - 1));
        z = clamp(-roundEven(f32(mn / s)), 0, 2 ** bits - 1); lo = 0; hi = 2 ** bits - 1;
      }
      scales[n * G + g] = s;
      for (let k = k0; k < k1; k++) {
        const q = clamp(roundEven(f32(W[n * K + k] / s)) + z, lo, hi);
        codes[n * K + k] = q;
        what[n * K + k] = f32((q - z) * s);
      }
    }
  return { what, codes, scales };
}

/** Code k of packed row r (formats.h). */
function getCode(codes: Uint8Array, rowOff: number, k: number, bits: number): number {
  const cb = bits === 8 ? 32 : bits === 6 ? 24 : bits === 4 ? 16 : bits === 3 ? 12 : 8;
  const c = rowOff + Math.floor(k / 32) * cb, j = k % 32;
  if (bits === 8) return codes[c + j];
  if (bits === 6) {
    // bytes 0..15: the 4-bit chunk of the low nibbles; bytes 16..23: the 2-bit chunk of the high two bits
    const lo4 = j < 16 ? codes[c + j] & 15 : codes[c + j - 16] >> 4;
    const hi2 = (codes[c + 16 + (j & 7)] >> (2 * (j >> 3))) & 3;
    return lo4 | (hi2 << 4);
  }
  if (bits === 4) return j < 16 ? codes[c + j] & 15 : codes[c + j - 16] >> 4;
  const lo2 = (codes[c + (j & 7)] >> (2 * (j >> 3))) & 3;
  if (bits === 2) return lo2;
  const hi = (codes[c + 8 + (j >> 3)] >> (j & 7)) & 1;
  return lo2 | (hi << 2);
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}
function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer.slice(0)), o = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) o[i] = (u[i] + 0x7fff + ((u[i] >> 16) & 1)) >>> 16;
  return o;
}
function relErr(y: Float32Array, ref: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < y.length; i++) { num += (y[i] - ref[i]) ** 2; den += ref[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

// The ISA the process started with (QUANTEVAL_ISA may cap it); restored after the scalar runs.
const startIsa = native().cpuInfo().isa as "scalar" | "avx2" | "avx512";
afterAll(() => {
  native().setIsa(startIsa);
});

// ── RTN on real weights ────────────────────────────────────────────────────────────────────────────────────
describe.skipIf(!haveModel)("quantizeRtn on stories260K weights = pseudo_quantize_tensor", () => {
  const tensors = haveModel ? readSafetensors(modelFile) : new Map();
  const linears = [...tensors.keys()].filter((k) => /layers\.[0-9]+\..*_proj\.weight$/.test(k));
  const formats: { bits: 2 | 3 | 4 | 6 | 8; gs: number | "K"; sym: boolean }[] = [
    { bits: 8, gs: "K", sym: false },
    { bits: 6, gs: "K", sym: false },
    { bits: 6, gs: 32, sym: true },
    { bits: 4, gs: 32, sym: false },
    { bits: 4, gs: 128, sym: true },
    { bits: 3, gs: 43, sym: false },
    { bits: 2, gs: 64, sym: false },
  ];

  it("finds the 7 projections of every layer", () => {
    expect(linears.length).toBeGreaterThanOrEqual(7);
    expect(linears.some((k) => k.includes("down_proj"))).toBe(true); // K = 172: short last groups
  });

  for (const f of formats) {
    it(`w${f.bits} g${f.gs} ${f.sym ? "sym" : "asym"}: codes, scales and dequantized values identical`, async () => {
      let checked = 0;
      for (const name of linears) {
        const t = tensors.get(name)!;
        const [N, K] = t.shape;
        const gs = f.gs === "K" ? K : f.gs;
        const format: QuantFormat = { bits: f.bits, groupSize: gs, symmetric: f.sym, scaleDtype: "f32" };
        const packed = await quantizeRtn(t.data, N, K, format);
        const want = pseudoQuantize(t.data, N, K, f.bits, gs, f.sym);
        expect(Array.from(packed.scales as Float32Array)).toEqual(Array.from(want.scales));
        const what = await dequantize(packed);
        let bad = 0;
        for (let i = 0; i < N * K; i++) if (what[i] !== want.what[i]) bad++;
        expect(bad, `${name}: dequantized values differing from pseudo_quantize_tensor`).toBe(0);
        const rb = rowBytes(K, f.bits);
        for (let n = 0; n < N; n += 7)
          for (let k = 0; k < K; k++) expect(getCode(packed.codes, n * rb, k, f.bits)).toBe(want.codes[n * K + k]);
        checked++;
      }
      expect(checked).toBe(linears.length);
    });
  }

  it("codes against an fp16-stored scale dequantize within s/2 (+ clamped ends)", async () => {
    const t = tensors.get(linears.find((k) => k.includes("down_proj"))!)!;
    const [N, K] = t.shape;
    const packed = await quantizeRtn(t.data, N, K, { bits: 4, groupSize: 43, symmetric: false, scaleDtype: "f16" });
    expect(packed.scales).toBeInstanceOf(Uint16Array);
    const what = await dequantize(packed);
    const G = nGroups(K, 43);
    const f16 = (h: number) => {
      const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
      return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    };
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const s = f16((packed.scales as Uint16Array)[n * G + Math.floor(k / 43)]);
        const q = getCode(packed.codes, n * rowBytes(K, 4), k, 4);
        const err = Math.abs(t.data[n * K + k] - what[n * K + k]);
        const clamped = (q === 0 && t.data[n * K + k] < what[n * K + k]) || (q === 15 && t.data[n * K + k] > what[n * K + k]);
        expect(err <= 0.5 * s * (1 + 1e-6) || clamped).toBe(true);
      }
  });
});

// ── fast vs reference ──────────────────────────────────────────────────────────────────────────────────────
async function packedRandom(N: number, K: number, format: QuantFormat, seed: number): Promise<PackedWeight> {
  return quantizeRtn(randn(N * K, seed, 0.05), N, K, format);
}

describe("gemmQ fast vs ref (rel L2 <= 1e-5)", () => {
  const cases: { M: number; N: number; K: number; format: QuantFormat; x: "f32" | "bf16"; bias: boolean }[] = [
    { M: 1, N: 67, K: 256, format: { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f32" }, x: "f32", bias: true },
    { M: 1, N: 33, K: 172, format: { bits: 3, groupSize: 43, symmetric: false, scaleDtype: "f16" }, x: "f32", bias: false },
    { M: 5, N: 20, K: 300, format: { bits: 2, groupSize: 64, symmetric: true, scaleDtype: "bf16" }, x: "bf16", bias: true },
    { M: 40, N: 50, K: 517, format: { bits: 8, groupSize: 517, symmetric: false, scaleDtype: "f32" }, x: "f32", bias: true },
    { M: 1, N: 45, K: 172, format: { bits: 6, groupSize: 172, symmetric: false, scaleDtype: "f32" }, x: "f32", bias: true },
    { M: 3, N: 70, K: 300, format: { bits: 6, groupSize: 64, symmetric: true, scaleDtype: "f16" }, x: "bf16", bias: false },
    { M: 33, N: 21, K: 333, format: { bits: 6, groupSize: 43, symmetric: false, scaleDtype: "bf16" }, x: "f32", bias: true },
    { M: 300, N: 19, K: 172, format: { bits: 4, groupSize: 172, symmetric: true, scaleDtype: "f16" }, x: "bf16", bias: false },
  ];
  afterEach(() => {
    native().setIsa(startIsa);  // the scalar cases must not leave the rest of the file on the scalar path
  });
  for (const isa of [startIsa, "scalar"] as const)
    for (const c of cases)
      it(`[${isa}] M=${c.M} N=${c.N} K=${c.K} w${c.format.bits} g${c.format.groupSize} ${c.format.scaleDtype} x=${c.x}`, async () => {
        native().setIsa(isa);
        const W = await packedRandom(c.N, c.K, c.format, c.N * 31 + c.K);
        const X32 = randn(c.M * c.K, c.M + 7);
        const X = c.x === "f32" ? X32 : toBf16(X32);
        const bias = c.bias ? randn(c.N, 3) : null;
        const ref = await gemmQ(X, c.x, c.M, W, bias, { impl: "ref" });
        const y = await gemmQ(X, c.x, c.M, W, bias);
        expect(y.length).toBe(c.M * c.N);
        expect(Math.max(...Array.from(ref, Math.abs))).toBeGreaterThan(0);
        expect(relErr(y, ref)).toBeLessThanOrEqual(1e-5);
      });
});

// The exact 4- and 2-bit GEMV at M = 1 has two AVX2 kernels (cpuInfo().gemv): "int" (the default: codes times X held
// as per-group integers) and "fp32" (codes converted for FMAs). Against float64 dot products: int within 1e-6
// (relative L2), fp32 within the suite's 1e-5; not bit-equal to each other (the integer one ran). K = 8200: two rows a
// pass (4-bit); K = 4000: an odd number of chunks (2-bit).
describe("setGemv", () => {
  const gemvAtStart = native().cpuInfo().gemv as "int" | "fp32";
  afterAll(() => {
    native().setGemv(gemvAtStart);
  });
  it("names and switches the kernel; rejects unknown ones", () => {
    expect(native().setGemv("fp32")).toBe("fp32");
    expect(native().cpuInfo().gemv).toBe("fp32");
    expect(native().setGemv("auto")).toBe("int");
    expect(native().setGemv("int")).toBe("int");
    expect(() => native().setGemv("fma")).toThrow(RangeError);
    expect(() => native().setGemv("fma")).toThrow(/kernel: expected one of int, fp32, auto, got 'fma'/);
  });
  for (const [bits, N, K, gs, scaleDtype] of [
    [4, 67, 256, 128, "f16"],
    [4, 33, 300, 64, "bf16"],
    [4, 21, 8200, 128, "f32"],
    [4, 9, 4096, 0, "f16"],
    [2, 40, 4000, 64, "f16"],
    [2, 17, 1024, 128, "bf16"],
  ] as const)
    // Skipped where no integer GEMV runs (ISA capped at scalar). Where the zmm kernels run, 4-bit groups of an even
    // number of chunks (and per channel) take the zmm integer kernel, the rest the ymm one.
    it.skipIf(startIsa === "scalar")(
      `w${bits} g${gs || "K"} N=${N} K=${K}: int and fp32 kernels ~ float64`, async () => {
      const W = await packedRandom(N, K, { bits, groupSize: gs || K, symmetric: false, scaleDtype }, N + K);
      const X = randn(K, K, 1);
      const bias = randn(N, 4);
      // float64 dot products of X with the dequantized weights.
      const Wh = await dequantize(W);
      const ref = new Float32Array(N);
      for (let n = 0; n < N; n++) {
        let a = bias[n];
        for (let k = 0; k < K; k++) a += X[k] * Wh[n * K + k];
        ref[n] = a;
      }
      native().setGemv("int");
      const yi = await gemmQ(X, "f32", 1, W, bias);
      native().setGemv("fp32");
      const yf = await gemmQ(X, "f32", 1, W, bias);
      native().setGemv(gemvAtStart);
      expect(relErr(yi, ref)).toBeLessThanOrEqual(1e-6);
      expect(relErr(yf, ref)).toBeLessThanOrEqual(1e-5);
      expect(yi.some((v, i) => v !== yf[i])).toBe(true);
    },
    );
});

describe("gemm (dense) fast vs ref (rel L2 <= 1e-5)", () => {
  for (const [M, N, K, dtype, x] of [
    [1, 70, 333, "f32", "f32"],
    [3, 40, 64, "f16", "bf16"],
    [77, 45, 130, "bf16", "f32"],
  ] as const)
    it(`M=${M} N=${N} K=${K} w=${dtype} x=${x}`, async () => {
      const W32 = randn(N * K, N, 0.1);
      const data = dtype === "f32" ? W32 : dtype === "bf16" ? toBf16(W32) : new Uint16Array(W32.map((v) => 0x3c00 + Math.round(v * 10)));
      const X32 = randn(M * K, M);
      const X = x === "f32" ? X32 : toBf16(X32);
      const w = { N, K, dtype, data };
      const ref = await gemm(X, x, M, w, randn(N, 1), { impl: "ref" });
      const y = await gemm(X, x, M, w, randn(N, 1));
      expect(relErr(y, ref)).toBeLessThanOrEqual(1e-5);
    });
});

// gemmW8A8's int8 dot product: the machine's own (VNNI where it has it), the AVX2 kernels when that is VNNI, and the
// VNNI kernels with the instruction emulated (their tiling and arithmetic, on any AVX2 CPU).
const startDot = native().cpuInfo().a8Dot;
const dotModes: ("auto" | "off" | "emulate")[] =
  startIsa === "scalar" ? ["auto"] : startDot.endsWith("-vnni") ? ["auto", "off", "emulate"] : ["auto", "emulate"];
afterAll(() => {
  native().setA8Dot("auto");
});

describe("setA8Dot", () => {
  it("switches gemmW8A8's dot product and names it; rejects unknown modes", () => {
    if (startIsa !== "scalar") {
      expect(native().setA8Dot("emulate")).toBe("vnni-emulated");
      expect(native().cpuInfo().a8Dot).toBe("vnni-emulated");
      expect(native().setA8Dot("off")).toBe("avx2");
    }
    const f = native().cpuInfo().features;
    expect(native().setA8Dot("auto")).toBe(
      startIsa === "scalar"
        ? "scalar"
        : !(f.avxvnni || (f.avx512vnni && startIsa === "avx512"))
        ? "avx2"
        : startIsa === "avx512" && f.avx512vnni ? "avx512-vnni" : "avx-vnni",
    );
    expect(() => native().setA8Dot("vnni")).toThrow(RangeError);
    expect(() => native().setA8Dot("vnni")).toThrow(/mode: expected one of auto, off, emulate, got 'vnni'/);
  });
});

describe.each(dotModes)("gemmW8A8 (a8 dot: %s)", (dot) => {
  beforeAll(() => {
    native().setA8Dot(dot);
  });
  afterAll(() => {
    native().setA8Dot("auto");
  });
  // Per channel: one exact integer per output and the ref's fp32 rescale, bit for bit. Grouped: exact integers per
  // group, scaled and summed over groups in fp32 (the ref sums in double): within 1e-5 of the norm.
  for (const [M, N, K, bits, gs, sym] of [
    [1, 37, 300, 8, 0, false],
    [9, 20, 172, 4, 0, true],
    [130, 16, 1000, 8, 0, true],
    [64, 24, 96, 4, 0, false],
    [1, 45, 300, 4, 128, false],
    [3, 33, 172, 3, 32, true],
    [1, 19, 256, 2, 64, false],
    [5, 21, 200, 8, 64, true],
    [70, 40, 520, 4, 32, false],
    [2, 9, 150, 4, 40, false],
    [1, 30, 172, 6, 0, false],
    [40, 25, 300, 6, 64, true],
    [7, 23, 4100, 2, 0, false],
    [260, 31, 700, 3, 0, true],
  ] as const)
    it(`M=${M} N=${N} K=${K} w${bits}${gs ? `g${gs}` : ""} ${sym ? "sym" : "asym"}: fast ~ ref; ref ~ gemmQ(fakeQuantAct(X))`, async () => {
      const W = await packedRandom(N, K, { bits, groupSize: gs || K, symmetric: sym, scaleDtype: gs % 64 ? "f16" : "bf16" }, N + K + bits);
      const X = randn(M * K, M + 99, 2);
      const bias = randn(N, 5);
      const ref = await gemmW8A8(X, M, W, bias, { impl: "ref" });
      const y = await gemmW8A8(X, M, W, bias);
      if (gs === 0) {
        let bad = 0;
        for (let i = 0; i < y.length; i++) if (y[i] !== ref[i]) bad++;
        expect(bad).toBe(0);
      } else {
        expect(relErr(y, ref)).toBeLessThanOrEqual(1e-5);
      }
      const Xh = await fakeQuantAct(X, M, K, 8);
      const sim = await gemmQ(Xh, "f32", M, W, bias, { impl: "ref" });
      expect(relErr(ref, sim)).toBeLessThanOrEqual(1e-5);
    });
});

describe("memReadBandwidth", () => {
  it("returns one positive time per pass", async () => {
    const s = await memReadBandwidth(8 << 20, 2);
    expect(s.length).toBe(2);
    for (const v of s) expect(v).toBeGreaterThan(0);
  });
});

// ── argument validation ────────────────────────────────────────────────────────────────────────────────────
describe("bad arguments are named", () => {
  const format: QuantFormat = { bits: 4, groupSize: 32, symmetric: false, scaleDtype: "f32" };
  const N = 4, K = 64;
  const W: PackedWeight = {
    N, K, format,
    codes: new Uint8Array(N * rowBytes(K, 4)),
    scales: new Float32Array(N * 2).fill(0.1),
    zeros: new Uint8Array(N * 2).fill(8),
  };
  const X = new Float32Array(2 * K).fill(1);
  const a = () => native();

  it("wrong type", () => {
    expect(() => a().gemmQ(Array.from(X), "f32", 2, W)).toThrow(TypeError);
    expect(() => a().gemmQ(Array.from(X), "f32", 2, W)).toThrow(/X: expected Float32Array, got Array/);
    expect(() => a().gemmQ(new Float64Array(2 * K), "f32", 2, W)).toThrow(/X: expected Float32Array, got Float64Array/);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, symmetric: undefined, format: { ...format, symmetric: "no" } })).toThrow(
      /weight\.format\.symmetric: expected a boolean/,
    );
    expect(() => a().gemmQ(X, "f32", 2, { ...W, zeros: undefined })).toThrow(/weight\.zeros: expected Uint8Array, got undefined/);
    expect(() => a().gemmQ(X, "f32", 2.5, W)).toThrow(/M: expected an integer, got number 2.5/);
  });

  it("wrong length", () => {
    expect(() => a().gemmQ(X.subarray(1), "f32", 2, W)).toThrow(RangeError);
    expect(() => a().gemmQ(X.subarray(1), "f32", 2, W)).toThrow(/X: expected 128 elements, got 127/);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, codes: new Uint8Array(5) })).toThrow(/weight\.codes: expected 128 elements, got 5/);
    expect(() => a().gemmQ(X, "f32", 2, W, new Float32Array(3))).toThrow(/bias: expected 4 elements, got 3/);
    expect(() => a().quantizeRtn(new Float32Array(10), N, K, format)).toThrow(/W: expected 256 elements, got 10/);
  });

  it("bad bits", () => {
    expect(() => a().gemmQ(X, "f32", 2, { ...W, format: { ...format, bits: 5 } })).toThrow(RangeError);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, format: { ...format, bits: 5 } })).toThrow(/weight\.format\.bits: expected 2, 3, 4, 6 or 8, got 5/);
    expect(() => a().quantizeRtn(new Float32Array(N * K), N, K, { ...format, bits: 7 })).toThrow(/format\.bits: expected 2, 3, 4, 6 or 8, got 7/);
    expect(() => a().gemmW8A8(X, 2, { ...W, format: { ...format, bits: 5 } })).toThrow(/weight\.format\.bits: expected 2, 3, 4, 6 or 8, got 5/);
    expect(() => a().gemmW8A8(X, 2, { ...W, zeros: new Uint8Array(N) })).toThrow(/weight\.zeros: expected 8 elements, got 4/);
    expect(() => a().gemmW8A8(X, 3, W)).toThrow(/X: expected 192 elements, got 128/);
    expect(() => a().quantizeRtn(new Float32Array(N * K), N, K, { ...format, groupSize: 0 })).toThrow(/format\.groupSize: expected an integer in \[1, /);
  });

  it("bad dtype", () => {
    expect(() => a().gemmQ(X, "f16", 2, W)).toThrow(RangeError);
    expect(() => a().gemmQ(X, "f16", 2, W)).toThrow(/xDtype: expected one of f32, bf16, got 'f16'/);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, format: { ...format, scaleDtype: "f64" } })).toThrow(/weight\.format\.scaleDtype: expected one of f32, f16, bf16, got 'f64'/);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, format: { ...format, scaleDtype: "f16" } })).toThrow(/weight\.scales: expected Uint16Array, got Float32Array/);
    expect(() => a().gemm(X, "f32", 2, { N, K, dtype: "i8", data: new Int8Array(N * K) })).toThrow(/weight\.dtype: expected one of f32, f16, bf16, got 'i8'/);
    expect(() => a().gemmQ(X, "f32", 2, W, null, { impl: "gpu" })).toThrow(/options\.impl: expected 'fast' or 'ref', got 'gpu'/);
  });

  it("out-of-range M, N, K", () => {
    expect(() => a().gemmQ(X, "f32", 0, W)).toThrow(RangeError);
    expect(() => a().gemmQ(X, "f32", 0, W)).toThrow(/M: expected an integer in \[1, 16777216\], got 0/);
    expect(() => a().gemmQ(X, "f32", 2 ** 25, W)).toThrow(/M: expected an integer in \[1, 16777216\], got 33554432/);
    expect(() => a().gemmQ(X, "f32", 2, { ...W, N: -1 })).toThrow(/weight\.N: expected an integer in \[1, /);
    expect(() => a().fakeQuantAct(X, 2, K, 9)).toThrow(/bits: expected an integer in \[2, 8\], got 9/);
    expect(() => a().memReadBandwidth(1000, 1)).toThrow(/bytes: expected an integer in \[1048576, /);
  });

  it("missing arguments", () => {
    expect(() => a().gemmQ(X, "f32", 2)).toThrow(/weight: missing argument 3/);
  });
});
