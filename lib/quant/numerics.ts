/**
 * Typed wrappers of the native calibration numerics (native/calib via native/napi/calib_bindings.cpp). Every
 * function runs off the event loop and resolves with JS-owned typed arrays. Shapes: W [N, K] row-major fp32 (N
 * outputs, K inputs), H [K, K] = Σ xᵀx over calibration tokens.
 */
import { native } from "../native.js";

export type ScaleDType = "f32" | "f16" | "bf16";

/** A packed weight format (formats.h). groupSize = K means one group per output channel. */
export interface WeightFormat {
  bits: 2 | 3 | 4 | 6 | 8;
  groupSize: number;
  symmetric: boolean;
  /** Storage type of the scales; default f32. */
  scaleDtype?: ScaleDType;
}

/** A packed weight W[N, K] in the layout of formats.h. */
export interface PackedWeight {
  N: number;
  K: number;
  format: Required<WeightFormat>;
  /** [N, rowBytes(K, bits)] */
  codes: Uint8Array;
  /** [N, nGroups]: fp32 values, or fp16/bf16 bit patterns */
  scales: Float32Array | Uint16Array;
  /** [N, nGroups] uint8 zero points; null when symmetric */
  zeros: Uint8Array | null;
}

export interface QuantizedResult extends PackedWeight {
  /** Dequantized weights [N, K], when asked for. */
  wHat?: Float32Array;
}

export interface GptqOptions {
  /** λ = percdamp · mean(diag H); default 0.01. */
  percdamp?: number;
  /** Lazy-update block; default 128. */
  blockSize?: number;
  actOrder?: boolean;
  staticGroups?: boolean;
}

export function nGroups(K: number, groupSize: number): number {
  return Math.ceil(K / groupSize);
}
export function rowBytes(K: number, bits: number): number {
  const chunk = bits === 8 ? 32 : bits === 6 ? 24 : bits === 4 ? 16 : bits === 3 ? 12 : bits === 2 ? 8 : 0;
  return Math.ceil(K / 32) * chunk;
}

function fullFormat(f: WeightFormat): Required<WeightFormat> {
  return { bits: f.bits, groupSize: f.groupSize, symmetric: f.symmetric, scaleDtype: f.scaleDtype ?? "f32" };
}

type RawPacked = { codes: Uint8Array; scales: Float32Array | Uint16Array; zeros: Uint8Array | null; wHat?: Float32Array };

/** Round-to-nearest (same results as the kernels' quantize_rtn_ref), optionally with the dequantized weights. */
export async function rtnQuantize(
  W: Float32Array,
  N: number,
  K: number,
  format: WeightFormat,
  wantWHat = false,
): Promise<QuantizedResult> {
  const f = fullFormat(format);
  const r = (await native().rtnQuantize(W, N, K, f, wantWHat)) as RawPacked;
  return { N, K, format: f, ...r };
}

export interface GptqResult extends QuantizedResult {
  /** Σ (w - q)² / Hinv_jj² / 2 (the reference's Losses summed). */
  loss: number;
  deadColumns: number;
  /** Act-order processing order. */
  perm?: Int32Array;
}

export async function gptqQuantize(
  W: Float32Array,
  N: number,
  K: number,
  H: Float32Array,
  format: WeightFormat,
  opts: GptqOptions = {},
  wantWHat = false,
): Promise<GptqResult> {
  const f = fullFormat(format);
  const r = (await native().gptqQuantize(W, N, K, H, f, opts, wantWHat)) as RawPacked & {
    loss: number;
    deadColumns: number;
    perm?: Int32Array;
  };
  return { N, K, format: f, ...r };
}

export interface AwqScaleSearch {
  /** s [K] of the best α (multiply W's columns, divide the producer of x). */
  scales: Float32Array;
  best: number;
  bestRatio: number;
  /** Mean squared output error per α = i / nGrid. */
  losses: number[];
}

/** AWQ scale search (see calib.h): `xMeanAbs` [K] = mean |x| per input channel, `tokens` scales the losses. */
export async function awqSearchScale(
  W: Float32Array,
  N: number,
  K: number,
  H: Float32Array,
  xMeanAbs: Float32Array,
  format: WeightFormat,
  nGrid = 20,
  tokens = 1,
): Promise<AwqScaleSearch> {
  return (await native().awqSearchScale(W, N, K, H, xMeanAbs, fullFormat(format), nGrid, tokens)) as AwqScaleSearch;
}

/** AWQ clipping search: the clamped weights [N, K] and the chosen max |w| per row and group [N, G]. */
export async function awqSearchClip(
  W: Float32Array,
  N: number,
  K: number,
  H: Float32Array,
  format: WeightFormat,
  nGrid = 20,
  maxShrink = 0.5,
): Promise<{ w: Float32Array; maxVal: Float32Array }> {
  return (await native().awqSearchClip(W, N, K, H, fullFormat(format), nGrid, maxShrink)) as {
    w: Float32Array;
    maxVal: Float32Array;
  };
}

/** AWQ scale search scored on a row sample X [n, K] of the inputs (calib.h awq_search_scale_x): n·N·K per α. */
export async function awqSearchScaleX(
  W: Float32Array,
  N: number,
  K: number,
  X: Float32Array,
  n: number,
  xMeanAbs: Float32Array,
  format: WeightFormat,
  nGrid = 20,
): Promise<AwqScaleSearch> {
  return (await native().awqSearchScaleX(W, N, K, X, n, xMeanAbs, fullFormat(format), nGrid)) as AwqScaleSearch;
}

/** AWQ clipping search with each group's error measured on the row sample X [n, K]. */
export async function awqSearchClipX(
  W: Float32Array,
  N: number,
  K: number,
  X: Float32Array,
  n: number,
  format: WeightFormat,
  nGrid = 20,
  maxShrink = 0.5,
): Promise<{ w: Float32Array; maxVal: Float32Array }> {
  return (await native().awqSearchClipX(W, N, K, X, n, fullFormat(format), nGrid, maxShrink)) as {
    w: Float32Array;
    maxVal: Float32Array;
  };
}

/** SmoothQuant factors s [K] for the linears stacked in W [N, K] that read an input with per-channel max |x|. */
export async function smoothquantScales(
  actMax: Float32Array,
  W: Float32Array,
  N: number,
  K: number,
  alpha: number,
): Promise<Float32Array> {
  return (await native().smoothquantScales(actMax, W, N, K, alpha)) as Float32Array;
}

/** U upper with Uᵀ U = H⁻¹ (what GPTQ iterates with); exposed for tests. */
export async function upperCholeskyOfInverse(H: Float32Array, K: number): Promise<Float32Array> {
  return (await native().upperCholeskyOfInverse(H, K)) as Float32Array;
}
