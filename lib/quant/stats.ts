/**
 * Calibration statistics of one linear's input, as the runtime's activation capture returns them, in the fp32
 * form the numerics take, and how they change when the input is rescaled (x → x / s, the AWQ/SmoothQuant folding).
 */
import type { NativeCapture } from "../model/native-types.js";

export interface InputStats {
  /** Calibration tokens seen. */
  rows: number;
  /** [K, K] Σ xᵀx, when captured (GPTQ; the H form of AWQ). */
  H?: Float32Array;
  /** [n, K] seeded row sample of the inputs, when captured (AWQ's searches). */
  X?: Float32Array;
  /** Rows in X. */
  n?: number;
  /** [K] mean |x|. */
  absMean: Float32Array;
  /** [K] max |x|. */
  absMax: Float32Array;
}

export function fromCapture(c: NativeCapture, K: number, where: string): InputStats {
  if (c.absMean.length !== K || c.absMax.length !== K) throw new Error(`${where}: capture sizes do not match K = ${K}`);
  const h = c.hessianF32 ?? c.hessian;
  if (h && h.length !== K * K) throw new Error(`${where}: capture Hessian size does not match K = ${K}`);
  if (c.rows < 1) throw new Error(`${where}: no calibration tokens reached this linear`);
  const st: InputStats = { rows: c.rows, absMean: new Float32Array(c.absMean), absMax: new Float32Array(c.absMax) };
  // The fp32 form as captured (captureGet's hessianF32), else converted: new Float32Array(typed array) converts
  // natively; Float32Array.from iterates in JS (~2 s for a 5632² Hessian).
  if (c.hessianF32) st.H = c.hessianF32;
  else if (c.hessian) st.H = new Float32Array(c.hessian);
  if (c.samples) {
    if (!c.sampleCount) throw new Error(`${where}: the row sample is empty (no sampled row was reached)`);
    st.X = c.samples;
    st.n = c.sampleCount;
  }
  return st;
}

/** H of the statistics, or an error saying how to capture it. */
export function hessianOf(st: InputStats, where: string): Float32Array {
  if (!st.H) throw new Error(`${where}: the capture has no Hessian (start it with hessian: true)`);
  return st.H;
}

/** Statistics of x / s: H_ij / (s_i s_j), X_tj / s_j, mean |x_j| / s_j, max |x_j| / s_j. */
export function rescaleStats(st: InputStats, s: Float32Array): InputStats {
  const K = s.length;
  const out: InputStats = {
    rows: st.rows,
    absMean: st.absMean.map((v, j) => v / s[j]),
    absMax: st.absMax.map((v, j) => v / s[j]),
  };
  if (st.H) {
    const H = new Float32Array(K * K);
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] = st.H[i * K + j] / (s[i] * s[j]);
    out.H = H;
  }
  if (st.X) {
    out.X = st.X.map((v, i) => v / s[i % K]);
    out.n = st.n;
  }
  return out;
}

/** Rows of several weights [N_i, K] stacked into one [ΣN_i, K]. */
export function stackRows(ws: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(ws.reduce((a, w) => a + w.length, 0));
  let o = 0;
  for (const w of ws) {
    out.set(w, o);
    o += w.length;
  }
  return out;
}
