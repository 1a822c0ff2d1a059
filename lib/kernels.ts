/**
 * Typed access to the native quantization and GEMM kernels (native/napi/kernel_bindings.cpp).
 *
 * Shapes follow nn.Linear: a weight is W[N, K] (N output channels, K inputs) and a product is
 * Y[M, N] = X[M, K] · W^T (+ bias[N]). Packed layouts are defined in native/include/quanteval/formats.h.
 * Every function returns a Promise (the kernel runs off the event loop). Arguments are validated natively:
 * a wrong type throws a TypeError and a wrong length, value or name a RangeError, each naming the argument,
 * what was expected and what was given.
 */
import { native } from "./native.js";

/** Element type of scales. fp16 and bf16 values travel as their raw bits in a Uint16Array. */
export type ScaleDtype = "f32" | "f16" | "bf16";
/** Element type of activations given to the GEMMs (bf16 as raw bits in a Uint16Array). */
export type ActDtype = "f32" | "bf16";
/** Element type of dense weights. */
export type DenseDtype = "f32" | "f16" | "bf16";
/** Which implementation runs: the optimized kernel (default) or the scalar reference it is tested against. */
export type KernelImpl = "fast" | "ref";

/** How a weight matrix is quantized: RTN semantics of AWQ/qllm-eval `pseudo_quantize_tensor`. */
export interface QuantFormat {
  /** Bits per code: 2, 3, 4, 6 or 8. */
  bits: 2 | 3 | 4 | 6 | 8;
  /** Inputs per group (>= 1); K (or more) means one group per output channel. The last group of a row is short
   * when K is not a multiple. */
  groupSize: number;
  /** true: scale = absmax / (2^(b-1) - 1), no zero points (z = 2^(b-1)); false: min-max with uint8 zero points. */
  symmetric: boolean;
  /** Storage type of the scales; codes are computed against the stored (rounded) scale. */
  scaleDtype: ScaleDtype;
}

/** A packed quantized weight W[N, K]: w = (q - z) * s per group. */
export interface PackedWeight {
  N: number;
  K: number;
  format: QuantFormat;
  /** [N, rowBytes(K, bits)] packed codes, chunks of 32 codes per formats.h. */
  codes: Uint8Array;
  /** [N, nGroups] scales: Float32Array for f32, Uint16Array (raw bits) for f16 / bf16. */
  scales: Float32Array | Uint16Array;
  /** [N, nGroups] zero points; absent when symmetric. */
  zeros?: Uint8Array;
}

/** A dense weight W[N, K]. */
export interface DenseWeight {
  N: number;
  K: number;
  dtype: DenseDtype;
  /** Float32Array for f32, Uint16Array (raw bits) for f16 / bf16. */
  data: Float32Array | Uint16Array;
}

/** Options of the GEMM functions. */
export interface GemmOptions {
  /** "fast" (default): the dispatching kernel; "ref": the scalar reference (slow; for tests). */
  impl?: KernelImpl;
  /** Write Y into this array ([M * N]) instead of a new one. */
  out?: Float32Array;
}

/** Result of a timed run (benchmarks): the output of the last run and the seconds of each run. */
export interface TimedResult {
  y: Float32Array;
  seconds: Float64Array;
}

/** Codes per packed chunk. */
export const CHUNK = 32;
/** Bytes of one packed chunk of 32 codes. */
export function chunkBytes(bits: number): number {
  return bits === 8 ? 32 : bits === 6 ? 24 : bits === 4 ? 16 : bits === 3 ? 12 : bits === 2 ? 8 : 0;
}
/** Bytes of one packed row of K codes (padded to whole chunks). */
export function rowBytes(K: number, bits: number): number {
  return Math.ceil(K / CHUNK) * chunkBytes(bits);
}
/** Groups per row. */
export function nGroups(K: number, groupSize: number): number {
  return Math.ceil(K / groupSize);
}
/** Bytes a packed weight occupies (codes + scales + zeros). */
export function packedBytes(w: PackedWeight): number {
  return w.codes.byteLength + w.scales.byteLength + (w.zeros?.byteLength ?? 0);
}

/** RTN-quantizes W[N, K] (fp32) into the packed format. */
export async function quantizeRtn(
  W: Float32Array,
  N: number,
  K: number,
  format: QuantFormat,
): Promise<PackedWeight> {
  const r = (await native().quantizeRtn(W, N, K, format)) as Omit<PackedWeight, "N" | "K" | "format">;
  return { N, K, format: { ...format }, ...r };
}

/** W_hat[N, K] = (q - z) * s as fp32. */
export function dequantize(w: PackedWeight): Promise<Float32Array> {
  return native().dequantize(w);
}

/** Per-token asymmetric fake quantization of X[M, K] with `bits` bits (2..8): dequant(quant(X)). */
export function fakeQuantAct(X: Float32Array, M: number, K: number, bits: number): Promise<Float32Array> {
  return native().fakeQuantAct(X, M, K, bits);
}

/** Y[M, N] = X[M, K] · W^T (+ bias) with dense weights; fp32 accumulation. */
export function gemm(
  X: Float32Array | Uint16Array,
  xDtype: ActDtype,
  M: number,
  W: DenseWeight,
  bias?: Float32Array | null,
  options?: GemmOptions,
): Promise<Float32Array> {
  return native().gemm(X, xDtype, M, W, bias ?? null, options ?? null);
}

/** Y[M, N] = X[M, K] · dequant(W)^T (+ bias), dequantization fused (never materialized). */
export function gemmQ(
  X: Float32Array | Uint16Array,
  xDtype: ActDtype,
  M: number,
  W: PackedWeight,
  bias?: Float32Array | null,
  options?: GemmOptions,
): Promise<Float32Array> {
  return native().gemmQ(X, xDtype, M, W, bias ?? null, options ?? null);
}

/**
 * Real int8 activations (W8A8, W4A8, w4g128a8, ...): X[M, K] fp32 is quantized per token to 8-bit asymmetric codes
 * (as fakeQuantAct(X, M, K, 8)), multiplied with the integer weight codes of any packed format (2/3/4/6/8 bits, per
 * channel or grouped) with exact int32 accumulation per group, then rescaled per group and summed.
 */
export function gemmW8A8(
  X: Float32Array,
  M: number,
  W: PackedWeight,
  bias?: Float32Array | null,
  options?: GemmOptions,
): Promise<Float32Array> {
  return native().gemmW8A8(X, M, W, bias ?? null, options ?? null);
}

/** Which GEMM a timed run measures, with its arguments. */
export type TimedGemm =
  | { kind: "dense"; X: Float32Array | Uint16Array; xDtype: ActDtype; M: number; W: DenseWeight; bias?: Float32Array }
  | { kind: "q"; X: Float32Array | Uint16Array; xDtype: ActDtype; M: number; W: PackedWeight; bias?: Float32Array }
  | { kind: "w8a8"; X: Float32Array; M: number; W: PackedWeight; bias?: Float32Array };

/** Runs a GEMM `reps` times natively and returns the seconds of each run (no N-API cost inside the times). */
export function timeGemm(g: TimedGemm, reps: number, impl: KernelImpl = "fast"): Promise<TimedResult> {
  const opt = { impl, timeReps: reps };
  const a = native();
  if (g.kind === "dense") return a.gemm(g.X, g.xDtype, g.M, g.W, g.bias ?? null, opt);
  if (g.kind === "q") return a.gemmQ(g.X, g.xDtype, g.M, g.W, g.bias ?? null, opt);
  return a.gemmW8A8(g.X, g.M, g.W, g.bias ?? null, opt);
}

/** Seconds of each of `reps` multi-threaded streaming reads of a fresh `bytes`-byte buffer (read-bandwidth probe). */
export function memReadBandwidth(bytes: number, reps: number): Promise<Float64Array> {
  return native().memReadBandwidth(bytes, reps);
}
