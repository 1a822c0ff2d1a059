/**
 * SmoothQuant on one decoder layer of a loaded model: for the norm-fed groups (q,k,v and gate,up) compute
 * s_j = max|x_j|^α / max|w_j|^(1-α) (native/calib/smoothquant.cpp) from the captured per-channel max |x| and fold
 * it in (norm ÷ s, linears ∘ s), which moves activation outliers into the weights before both are quantized.
 */
import type { NativeModel } from "../model/native-types.js";
import type { AppliedScale } from "./awq.js";
import type { ScaleGroup } from "./groups.js";
import { smoothquantScales } from "./numerics.js";
import { rescaleStats, stackRows, type InputStats } from "./stats.js";

export async function smoothLayer(
  nm: NativeModel,
  groups: readonly ScaleGroup[],
  stats: Map<string, InputStats>,
  alpha: number,
): Promise<AppliedScale[]> {
  const applied: AppliedScale[] = [];
  for (const g of groups) {
    if (!g.smooth) continue;
    const st = stats.get(g.linears[0])!;
    const K = nm.linearInfo(g.linears[0]).K;
    const W = stackRows(g.linears.map((n) => nm.getLinearWeight(n)));
    const s = await smoothquantScales(st.absMax, W, W.length / K, K, alpha);
    nm.scaleChannels(g.prev, g.linears, s);
    const scaled = rescaleStats(st, s);
    for (const n of g.linears) stats.set(n, scaled);
    applied.push({ prev: g.prev, linears: g.linears, scales: s, alpha });
  }
  return applied;
}
