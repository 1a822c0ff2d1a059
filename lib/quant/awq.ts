/**
 * AWQ on one decoder layer of a loaded model (llm-awq's order): for each scale group (groups.ts) search the
 * per-channel scale s = mean|x|^α and fold it into the model (prev ÷ s, linears ∘ s); then for each linear search the
 * clipping range (skipped for q and k, as llm-awq does, since their errors are amplified by the softmax rather than
 * measured by it) and quantize round-to-nearest.
 *
 * Candidates are scored on the seeded row sample X of each linear's input when the capture has one (llm-awq's way,
 * n·N·K per candidate), else on the Hessian H (N·K² per candidate; exact for the whole calibration set).
 */
import type { NativeModel } from "../model/native-types.js";
import type { ScaleGroup } from "./groups.js";
import {
  awqSearchClip,
  awqSearchClipX,
  awqSearchScale,
  awqSearchScaleX,
  rtnQuantize,
  type QuantizedResult,
  type WeightFormat,
} from "./numerics.js";
import type { WeightMethod } from "./spec.js";
import { hessianOf, rescaleStats, stackRows, type InputStats } from "./stats.js";

export type AwqMethod = Extract<WeightMethod, { name: "awq" }>;

export interface AppliedScale {
  prev: string;
  linears: string[];
  scales: Float32Array;
  /** Chosen α (AWQ) or the given α (SmoothQuant). */
  alpha: number;
}

/** Searches and folds the AWQ scales of `groups`; updates `stats` in place to the rescaled inputs. */
export async function awqScaleLayer(
  nm: NativeModel,
  groups: readonly ScaleGroup[],
  stats: Map<string, InputStats>,
  formatFor: (K: number) => WeightFormat,
  method: AwqMethod,
): Promise<AppliedScale[]> {
  const applied: AppliedScale[] = [];
  for (const g of groups) {
    const st = stats.get(g.linears[0])!;
    const K = nm.linearInfo(g.linears[0]).K;
    const Ws = g.linears.map((n) => nm.getLinearWeight(n));
    const W = stackRows(Ws);
    const N = W.length / K;
    const r = st.X
      ? await awqSearchScaleX(W, N, K, st.X, st.n!, st.absMean, formatFor(K), method.grid)
      : await awqSearchScale(W, N, K, hessianOf(st, g.linears[0]), st.absMean, formatFor(K), method.grid, st.rows);
    nm.scaleChannels(g.prev, g.linears, r.scales);
    const scaled = rescaleStats(st, r.scales);
    for (const n of g.linears) stats.set(n, scaled);
    applied.push({ prev: g.prev, linears: g.linears, scales: r.scales, alpha: r.bestRatio });
  }
  return applied;
}

/** Clipping search (unless disabled or q/k) and RTN of one linear; installs the packed weight. */
export async function awqQuantizeLinear(
  nm: NativeModel,
  name: string,
  stats: InputStats,
  format: WeightFormat,
  method: AwqMethod,
): Promise<QuantizedResult> {
  const { N, K } = nm.linearInfo(name);
  let W = nm.getLinearWeight(name);
  if (method.clip && !/\.(q|k)_proj$/.test(name))
    W = stats.X
      ? (await awqSearchClipX(W, N, K, stats.X, stats.n!, format, 20, 0.5)).w
      : (await awqSearchClip(W, N, K, hessianOf(stats, name), format, 20, 0.5)).w;
  const r = await rtnQuantize(W, N, K, format);
  nm.setLinearQuant(name, r.format, r.codes, r.scales, r.zeros);
  return r;
}
