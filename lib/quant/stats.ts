/**
 * Calibration statistics of one linear's input, as the runtime's activation capture returns them, in the fp32
 * form the numerics take, and how they change when the input is rescaled (x → x / s, the AWQ/SmoothQuant folding).
 */
import type { NativeCapture } from "../model/native-types.js";

export interface InputStats {
  /** Calibration tokens seen. */
  rows: number;
  /** [K, K] Σ xᵀx. */
  H: Float32Array;
  /** [K] mean |x|. */
  absMean: Float32Array;
  /** [K] max |x|. */
  absMax: Float32Array;
}

export function fromCapture(c: NativeCapture, K: number, where: string): InputStats {
  if (!c.hessian) throw new Error(`${where}: the capture has no Hessian (start it with hessian: true)`);
  if (c.hessian.length !== K * K || c.absMean.length !== K || c.absMax.length !== K)
    throw new Error(`${where}: capture sizes do not match K = ${K}`);
  if (c.rows < 1) throw new Error(`${where}: no calibration tokens reached this linear`);
  return { rows: c.rows, H: Float32Array.from(c.hessian), absMean: Float32Array.from(c.absMean), absMax: Float32Array.from(c.absMax) };
}

/** Statistics of x / s: H_ij / (s_i s_j), mean |x_j| / s_j, max |x_j| / s_j. */
export function rescaleStats(st: InputStats, s: Float32Array): InputStats {
  const K = s.length;
  const H = new Float32Array(K * K);
  for (let i = 0; i < K; i++)
    for (let j = 0; j < K; j++) H[i * K + j] = st.H[i * K + j] / (s[i] * s[j]);
  return {
    rows: st.rows,
    H,
    absMean: st.absMean.map((v, j) => v / s[j]),
    absMax: st.absMax.map((v, j) => v / s[j]),
  };
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
