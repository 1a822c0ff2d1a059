// Calibration numerics on synthetic layers (no model needed): GPTQ vs RTN output error, GPTQ(H = I) = RTN, AWQ at
// α = 0 = RTN and the searched α no worse, the clipping search, SmoothQuant's formula, determinism, argument errors.
// Output error is ‖X Wᵀ − X Ŵᵀ‖² = Σ_n (w_n − ŵ_n)ᵀ H (w_n − ŵ_n) computed here in float64 from X directly.
import { describe, expect, it } from "vitest";
import { native } from "../lib/native.js";
import {
  awqSearchClip,
  awqSearchScale,
  gptqQuantize,
  rtnQuantize,
  smoothquantScales,
  type WeightFormat,
} from "../lib/quant/numerics.js";
import { Rng } from "../lib/quant/random.js";

/** A synthetic layer: X [M, K] with correlated channels and a few outlier channels, W [N, K]. */
function syntheticLayer(seed: number, M: number, K: number, N: number) {
  const rng = new Rng(seed);
  const r = 8; // latent factors: inputs are strongly correlated
  const Z = Float64Array.from({ length: M * r }, () => rng.normal());
  const C = Float64Array.from({ length: r * K }, () => rng.normal());
  const chanScale = Float64Array.from({ length: K }, (_, k) => (k % 17 === 3 ? 8 : 0.5 + rng.next()));
  const X = new Float32Array(M * K);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) {
      let s = 0.3 * rng.normal();
      for (let t = 0; t < r; t++) s += Z[m * r + t] * C[t * K + k];
      X[m * K + k] = s * chanScale[k];
    }
  const W = Float32Array.from({ length: N * K }, () => rng.normal() * 0.05);
  const H64 = new Float64Array(K * K);
  for (let m = 0; m < M; m++)
    for (let i = 0; i < K; i++) {
      const xi = X[m * K + i];
      for (let j = 0; j < K; j++) H64[i * K + j] += xi * X[m * K + j];
    }
  const H = Float32Array.from(H64);
  const xMeanAbs = new Float32Array(K);
  const xMax = new Float32Array(K);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) {
      xMeanAbs[k] += Math.abs(X[m * K + k]) / M;
      xMax[k] = Math.max(xMax[k], Math.abs(X[m * K + k]));
    }
  return { X, W, H, xMeanAbs, xMax, M, K, N };
}

/** ‖X Wᵀ − X Ŵᵀ‖² / (M N), from X. */
function outputError(X: Float32Array, W: Float32Array, What: Float32Array, M: number, K: number, N: number): number {
  let e = 0;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let d = 0;
      for (let k = 0; k < K; k++) d += X[m * K + k] * (W[n * K + k] - What[n * K + k]);
      e += d * d;
    }
  return e / (M * N);
}

/** pseudo_quantize_tensor in float32 arithmetic (Math.fround), independent of the native code. */
function pseudoQuantize(W: Float32Array, N: number, K: number, f: WeightFormat): Float32Array {
  const out = new Float32Array(N * K);
  const fr = Math.fround;
  const roundEven = (x: number) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  const maxq = 2 ** f.bits - 1;
  for (let n = 0; n < N; n++)
    for (let k0 = 0; k0 < K; k0 += f.groupSize) {
      const k1 = Math.min(K, k0 + f.groupSize);
      const g = W.subarray(n * K + k0, n * K + k1);
      let s: number, z: number, lo: number, hi: number;
      if (f.symmetric) {
        const amax = g.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
        s = fr(Math.max(amax, 1e-5) / (2 ** (f.bits - 1) - 1));
        z = 2 ** (f.bits - 1);
      } else {
        const mn = g.reduce((a, b) => Math.min(a, b), Infinity);
        const mx = g.reduce((a, b) => Math.max(a, b), -Infinity);
        s = fr(fr(Math.max(fr(mx - mn), 1e-5)) / maxq);
        z = Math.min(Math.max(-roundEven(fr(mn / s)), 0), maxq);
      }
      lo = 0;
      hi = maxq;
      for (let k = k0; k < k1; k++) {
        const q = Math.min(Math.max(roundEven(fr(W[n * K + k] / s)) + z, lo), hi);
        out[n * K + k] = fr((q - z) * s);
      }
    }
  return out;
}

describe("calibration numerics (synthetic layers)", () => {
  const L = syntheticLayer(42, 384, 96, 40);
  const { X, W, H, M, K, N } = L;

  it("RTN equals pseudo_quantize_tensor (independent TS oracle)", async () => {
    for (const f of [
      { bits: 4, groupSize: 32, symmetric: false },
      { bits: 3, groupSize: K, symmetric: true },
      { bits: 2, groupSize: 40, symmetric: false }, // short last group (96 = 2·40 + 16)
    ] as WeightFormat[]) {
      const r = await rtnQuantize(W, N, K, f, true);
      expect(Array.from(r.wHat!)).toEqual(Array.from(pseudoQuantize(W, N, K, f)));
    }
  });

  for (const bits of [3, 4] as const)
    for (const groupSize of [K, 32]) {
      it(`GPTQ beats RTN on correlated inputs (w${bits}, group ${groupSize === K ? "per channel" : groupSize})`, async () => {
        const f: WeightFormat = { bits, groupSize, symmetric: false };
        const rtn = await rtnQuantize(W, N, K, f, true);
        const g = await gptqQuantize(W, N, K, H, f, {}, true);
        const eR = outputError(X, W, rtn.wHat!, M, K, N);
        const eG = outputError(X, W, g.wHat!, M, K, N);
        expect(eG).toBeLessThan(0.8 * eR);
        // the packed output is what the kernels read: codes differ from RTN's
        expect(Buffer.compare(Buffer.from(g.codes), Buffer.from(rtn.codes))).not.toBe(0);
        const ga = await gptqQuantize(W, N, K, H, f, { actOrder: true, staticGroups: true }, true);
        expect(outputError(X, W, ga.wHat!, M, K, N)).toBeLessThan(eR);
        expect(ga.perm).toBeInstanceOf(Int32Array);
      });
    }

  it("GPTQ with H = I is bit-identical to RTN", async () => {
    const I = new Float32Array(K * K);
    for (let k = 0; k < K; k++) I[k * K + k] = 1;
    for (const f of [
      { bits: 4, groupSize: 32, symmetric: false },
      { bits: 3, groupSize: K, symmetric: true, scaleDtype: "f16" },
      { bits: 8, groupSize: 40, symmetric: false },
    ] as WeightFormat[]) {
      const rtn = await rtnQuantize(W, N, K, f);
      const g = await gptqQuantize(W, N, K, I, f, { blockSize: 17 });
      expect(g.codes).toEqual(rtn.codes);
      expect(g.scales).toEqual(rtn.scales);
      expect(g.zeros).toEqual(rtn.zeros);
    }
  });

  it("GPTQ zeroes dead inputs and still quantizes", async () => {
    const H2 = H.slice();
    for (const j of [5, 50]) for (let i = 0; i < K; i++) H2[i * K + j] = H2[j * K + i] = 0;
    const g = await gptqQuantize(W, N, K, H2, { bits: 4, groupSize: K, symmetric: true }, {}, true);
    expect(g.deadColumns).toBe(2);
    for (let n = 0; n < N; n++) expect(g.wHat![n * K + 5]).toBe(0);
  });

  it("is bit-identical for the same inputs, whatever the thread count", async () => {
    const f: WeightFormat = { bits: 3, groupSize: 32, symmetric: false };
    const before = native().cpuInfo().threads;
    const a = await gptqQuantize(W, N, K, H, f);
    native().setNumThreads(1);
    const b = await gptqQuantize(W, N, K, H, f);
    const sa = await awqSearchScale(W, N, K, H, L.xMeanAbs, f, 10, M);
    native().setNumThreads(Math.max(2, before));
    const sb = await awqSearchScale(W, N, K, H, L.xMeanAbs, f, 10, M);
    native().setNumThreads(before);
    expect(b.codes).toEqual(a.codes);
    expect(b.scales).toEqual(a.scales);
    expect(b.loss).toBe(a.loss);
    expect(sb.scales).toEqual(sa.scales);
    expect(sb.losses).toEqual(sa.losses);
  });

  it("AWQ at α = 0 is RTN, and the searched α is no worse than RTN", async () => {
    const f: WeightFormat = { bits: 3, groupSize: 32, symmetric: false };
    const s0 = await awqSearchScale(W, N, K, H, L.xMeanAbs, f, 1, M);
    expect(s0.bestRatio).toBe(0);
    expect(Array.from(s0.scales).every((x) => x === 1)).toBe(true);
    const rtn = await rtnQuantize(W, N, K, f, true);
    const eR = outputError(X, W, rtn.wHat!, M, K, N);
    expect(s0.losses[0]).toBeCloseTo(eR, 4);
    expect(Math.abs(s0.losses[0] - eR) / eR).toBeLessThan(1e-3);

    const s = await awqSearchScale(W, N, K, H, L.xMeanAbs, f, 20, M);
    expect(s.losses).toHaveLength(20);
    expect(s.losses[0]).toBeCloseTo(s0.losses[0], 10);
    expect(Math.min(...s.losses)).toBe(s.losses[s.best]);
    expect(s.bestRatio).toBeGreaterThan(0); // outlier channels make some α > 0 win on this layer
    // Apply: Ŵ = Q(W ∘ s) / s, measured from X.
    const Ws = W.map((w, i) => w * s.scales[i % K]);
    const q = await rtnQuantize(Ws, N, K, f, true);
    const What = q.wHat!.map((w, i) => w / s.scales[i % K]);
    const eA = outputError(X, W, What, M, K, N);
    expect(eA).toBeLessThanOrEqual(eR);
    expect(Math.abs(eA - s.losses[s.best]) / eA).toBeLessThan(1e-3);
  });

  it("AWQ clipping search never increases a group's error and clamps within [-max, max]", async () => {
    const f: WeightFormat = { bits: 3, groupSize: 32, symmetric: false };
    const c = await awqSearchClip(W, N, K, H, f, 20, 0.5);
    const G = Math.ceil(K / 32);
    let shrunk = 0;
    for (let n = 0; n < N; n++)
      for (let g = 0; g < G; g++) {
        const mv = c.maxVal[n * G + g];
        let amax = 0;
        for (let k = g * 32; k < Math.min(K, g * 32 + 32); k++) {
          amax = Math.max(amax, Math.abs(W[n * K + k]));
          expect(Math.abs(c.w[n * K + k])).toBeLessThanOrEqual(mv);
        }
        expect(mv).toBeLessThanOrEqual(amax);
        expect(mv).toBeGreaterThanOrEqual(amax * 0.55 - 1e-7);
        if (mv < amax) shrunk++;
      }
    expect(shrunk).toBeGreaterThan(0);
    const rtn = await rtnQuantize(W, N, K, f, true);
    const clipped = await rtnQuantize(c.w, N, K, f, true);
    expect(outputError(X, W, clipped.wHat!, M, K, N)).toBeLessThanOrEqual(outputError(X, W, rtn.wHat!, M, K, N));
  });

  it("SmoothQuant scales follow s_j = max|x_j|^α / max|w_j|^(1-α)", async () => {
    for (const alpha of [0, 0.5, 0.85, 1]) {
      const s = await smoothquantScales(L.xMax, W, N, K, alpha);
      for (let k = 0; k < K; k++) {
        let wmax = 0;
        for (let n = 0; n < N; n++) wmax = Math.max(wmax, Math.abs(W[n * K + k]));
        const want = Math.max(L.xMax[k] ** alpha / Math.max(wmax, 1e-5) ** (1 - alpha), 1e-5);
        expect(Math.abs(s[k] - want) / want).toBeLessThan(1e-6);
      }
    }
  });

  it("rejects bad arguments with errors naming them", async () => {
    expect(() => native().gptqQuantize(W, N, K, H.subarray(1), { bits: 4, groupSize: 32, symmetric: false }, {})).toThrow(
      /H: expected 9216 elements, got 9215/,
    );
    expect(() => native().gptqQuantize(W, N, K, H, { bits: 5, groupSize: 32, symmetric: false }, {})).toThrow(
      /fmt.bits: expected 2, 3, 4, 6 or 8, got 5/,
    );
    expect(() =>
      native().gptqQuantize(W, N, K, H, { bits: 4, groupSize: 32, symmetric: false }, { actOrder: true }),
    ).toThrow(/requires opts.staticGroups/);
    expect(() => native().rtnQuantize(Array.from(W), N, K, { bits: 4, groupSize: 32, symmetric: false })).toThrow(
      /W: expected Float32Array, got Array/,
    );
    expect(() => native().smoothquantScales(L.xMax, W, N, K, 1.5)).toThrow(/alpha: expected a number in \[0, 1\]/);
    expect(() => native().awqSearchScale(W, N, K, H, L.xMeanAbs, { bits: 4, groupSize: 0, symmetric: false }, 20, 1)).toThrow(
      /fmt.groupSize: expected an integer in \[1, \d+\], got 0/,
    );
    const notPd = new Float32Array(K * K).fill(1); // rank one, zero damping impossible → still PD after damping
    for (let k = 0; k < K; k++) notPd[k * K + k] = -1;
    await expect(gptqQuantize(W, N, K, notPd, { bits: 4, groupSize: 32, symmetric: false })).rejects.toThrow(
      /not positive definite/,
    );
  });
});
