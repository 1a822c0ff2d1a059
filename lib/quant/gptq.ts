/**
 * GPTQ for one linear of a loaded model: read its weights as the kernels see them, run the native GPTQ
 * (native/calib/gptq.cpp) with the captured Hessian, and install the packed result.
 */
import type { NativeModel } from "../model/native-types.js";
import { gptqQuantize, type GptqResult, type WeightFormat } from "./numerics.js";
import type { WeightMethod } from "./spec.js";
import { hessianOf, type InputStats } from "./stats.js";

export type GptqMethod = Extract<WeightMethod, { name: "gptq" }>;

export async function gptqLinear(
  nm: NativeModel,
  name: string,
  stats: InputStats,
  format: WeightFormat,
  method: GptqMethod,
): Promise<GptqResult> {
  const { N, K } = nm.linearInfo(name);
  const W = nm.getLinearWeight(name);
  const r = await gptqQuantize(W, N, K, hessianOf(stats, name), format, {
    percdamp: method.damp,
    blockSize: method.blockSize,
    actOrder: method.actOrder,
    staticGroups: method.staticGroups,
  });
  nm.setLinearQuant(name, r.format, r.codes, r.scales, r.zeros);
  return r;
}
