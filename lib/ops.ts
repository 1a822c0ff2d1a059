/**
 * Typed wrappers over the native KV-cache and decoder-step kernels (native/napi/ops_bindings.cpp), for tests,
 * benchmarks and TS-side tooling. Model execution does not go through these (one native call per model step, see
 * DESIGN.md); they exist so every kernel can be exercised and measured from JS.
 *
 * Every tensor is a row-major TypedArray; shapes are in the docs. Every call but {@link ropeInvFreq} runs off the
 * event loop and returns a Promise. Bad arguments throw synchronously (TypeError for a wrong type, RangeError for
 * a wrong size or value), naming the option, what was expected and what was given.
 * `impl: "ref"` runs the scalar reference kernel (the oracle), `"fast"` (default) the dispatching SIMD kernel.
 */
import { native } from "./native.js";

export type Impl = "ref" | "fast";
/** KV-cache element types (formats.h): fp32, fp16, or asymmetric int8/int4/int3/int2 per [token, kv head]. */
export type KVType = "f32" | "f16" | "i8" | "i4" | "i3" | "i2";

/**
 * One sequence's cache: [capacity, nKvHeads, headDim] token-major. `type` is the element type of K and V unless
 * `kType` / `vType` override it (mixed caches, e.g. K i8 and V i4: the "k8v4" setting).
 */
export interface KVCache {
  type: KVType;
  kType?: KVType;
  vType?: KVType;
  nKvHeads: number;
  headDim: number;
  /** K (after RoPE) and V: Float32Array (f32), Uint16Array (f16 bits) or Uint8Array (i8: a byte per element; i4: two
   * codes a byte, low nibble = even dim; i3 / i2: the 2-bit (+ 1-bit) planes of formats.h, kvBytesPerHead bytes a
   * row). */
  k: Float32Array | Uint16Array | Uint8Array;
  v: Float32Array | Uint16Array | Uint8Array;
  /** Quantized K (resp. V) only: fp32 scale and (integer-valued) zero point per [token, kv head]; x = (q - z) * s. */
  kScale?: Float32Array;
  kZero?: Float32Array;
  vScale?: Float32Array;
  vZero?: Float32Array;
  /** First position the arrays hold (default 0): row r is position pos0 + r. A sliding-window cache that dropped
   * the positions no query sees any more; a query whose window reaches below pos0 is rejected (TypeError). */
  pos0?: number;
}

/** Bytes of one [token, kv head] row of a cache. */
export function kvBytesPerHead(type: KVType, headDim: number): number {
  switch (type) {
    case "f32": return headDim * 4;
    case "f16": return headDim * 2;
    case "i8": return headDim;
    case "i4": return headDim / 2;
    case "i3": return Math.ceil(headDim / 4) + Math.ceil(headDim / 8);  // 2-bit plane + 1-bit plane
    case "i2": return Math.ceil(headDim / 4);
  }
}

/** K and V element types of a cache. */
export function kvTypes(c: KVCache): { k: KVType; v: KVType } {
  return { k: c.kType ?? c.type, v: c.vType ?? c.type };
}

/** Zero-filled cache for `capacity` tokens; `type` is one type for K and V, or { k, v } for a mixed cache. */
export function allocKVCache(type: KVType | { k: KVType; v: KVType }, capacity: number, nKvHeads: number,
                             headDim: number): KVCache {
  const { k: kt, v: vt } = typeof type === "string" ? { k: type, v: type } : type;
  if ((kt === "i4" || vt === "i4") && headDim % 2)
    throw new RangeError(`allocKVCache: headDim must be even for i4, got ${headDim}`);
  const n = capacity * nKvHeads * headDim, m = capacity * nKvHeads;
  // Zeroed ArrayBuffers whose whole 2 MiB pages are huge pages (the addon's allocBuffer): attention reads all of them
  // every step.
  const buf = (bytes: number): ArrayBuffer => native().allocBuffer(bytes);
  const make = (t: KVType) =>
    t === "f32" ? new Float32Array(buf(4 * n)) : t === "f16" ? new Uint16Array(buf(2 * n))
      : new Uint8Array(buf(capacity * nKvHeads * kvBytesPerHead(t, headDim)));
  const quant = (t: KVType) => t !== "f32" && t !== "f16";
  const cache: KVCache = { type: kt, nKvHeads, headDim, k: make(kt), v: make(vt) };
  if (vt !== kt) Object.assign(cache, { kType: kt, vType: vt });
  if (quant(kt)) Object.assign(cache, { kScale: new Float32Array(buf(4 * m)), kZero: new Float32Array(buf(4 * m)) });
  if (quant(vt)) Object.assign(cache, { vScale: new Float32Array(buf(4 * m)), vZero: new Float32Array(buf(4 * m)) });
  return cache;
}

/** Token capacity of a cache. */
export function kvCapacity(c: KVCache): number {
  return c.k.byteLength / (c.nKvHeads * kvBytesPerHead(kvTypes(c).k, c.headDim));
}

/**
 * Quantizes (or converts) x [T, nKvHeads, headDim] into `dst` at token `offset` (scale/zero likewise for i8/i4/i3/i2):
 * per token per head asymmetric min-max, pseudo_quantize_tensor semantics.
 */
export function kvStore(o: {
  x: Float32Array; type: KVType; nKvHeads: number; headDim: number;
  dst: Float32Array | Uint16Array | Uint8Array; scale?: Float32Array; zero?: Float32Array; offset?: number; impl?: Impl;
}): Promise<void> {
  return native().kvStore(o);
}

/** Stores K and V of T new tokens into a cache at token `offset`. */
export async function kvAppend(cache: KVCache, k: Float32Array, v: Float32Array, offset: number, impl?: Impl): Promise<void> {
  const base = { nKvHeads: cache.nKvHeads, headDim: cache.headDim, offset, impl };
  const t = kvTypes(cache);
  await kvStore({ ...base, type: t.k, x: k, dst: cache.k, scale: cache.kScale, zero: cache.kZero });
  await kvStore({ ...base, type: t.v, x: v, dst: cache.v, scale: cache.vScale, zero: cache.vZero });
}

/**
 * Decode attention: q [B, nHeads, headDim], one query per sequence at position lens[b] - 1 (it sees tokens
 * [0, lens[b]) of kv[b], which holds positions [kv[b].pos0, lens[b])); grouped-query when nHeads > nKvHeads.
 * Returns out [B, nHeads, headDim].
 * `scale` multiplies q·k (default 1/sqrt(headDim)). `window` (default 0 = none) is a sliding attention window: the
 * query at position p sees key j iff p - window < j <= p (transformers' sliding_window semantics).
 */
export function attentionDecode(o: {
  q: Float32Array; nHeads: number; kv: KVCache[]; lens: readonly number[] | Int32Array; scale?: number; impl?: Impl;
  window?: number;
  /** Run the kernel this many times in one call (benchmarks); default 1. */
  repeat?: number;
}): Promise<Float32Array> {
  return native().attentionDecode(o);
}

/**
 * Causal prefill: q [Tq, nHeads, headDim] at positions pos0.. ; query i sees tokens [0, pos0 + i], or with a
 * sliding `window` only tokens j with pos0 + i - window < j.
 */
export function attentionPrefill(o: {
  q: Float32Array; nHeads: number; kv: KVCache; pos0?: number; scale?: number; impl?: Impl; repeat?: number;
  window?: number;
}): Promise<Float32Array> {
  return native().attentionPrefill(o);
}

/** Llama RMSNorm: x [M, D] with w [D]; y = x / sqrt(mean(x^2) + eps) * w. */
export function rmsnorm(o: { x: Float32Array; w: Float32Array; eps?: number; impl?: Impl }): Promise<Float32Array> {
  return native().rmsnorm(o);
}

export interface RopeOptions {
  headDim: number;
  /** Rotated dims (even, <= headDim); default headDim (partial rotary: headDim * partial_rotary_factor). */
  rotaryDim?: number;
  /** Base; default 10000. */
  theta?: number;
  /** default "none". */
  scaling?: "none" | "llama3" | "linear";
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPosition?: number;
}

/** RoPE inverse frequencies [rotaryDim / 2] exactly as transformers' default / linear / llama3 initializers. */
export function ropeInvFreq(o: RopeOptions): Float32Array {
  return native().ropeInvFreq(o);
}

/**
 * RoPE options from a Hugging Face config.json (`rope_theta` + `rope_scaling`, or transformers 5's
 * `rope_parameters`; `head_dim` or hidden_size / num_attention_heads; `partial_rotary_factor`).
 * Throws a RangeError for a rope type these kernels do not implement.
 */
export function ropeOptionsFromHfConfig(cfg: Record<string, unknown>): RopeOptions {
  const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
  const params = (cfg.rope_parameters ?? cfg.rope_scaling ?? {}) as Record<string, unknown>;
  const headDim = num(cfg.head_dim) ?? (num(cfg.hidden_size)! / num(cfg.num_attention_heads)!);
  if (!Number.isInteger(headDim)) throw new RangeError(`config: cannot infer head_dim (got ${headDim})`);
  const partial = num(cfg.partial_rotary_factor) ?? num(params.partial_rotary_factor) ?? 1;
  const theta = num(params.rope_theta) ?? num(cfg.rope_theta) ?? 10000;
  const type = (params.rope_type ?? params.type ?? "default") as string;
  const base: RopeOptions = { headDim, rotaryDim: Math.floor(headDim * partial), theta };
  if (type === "default") return { ...base, scaling: "none" };
  if (type === "linear") return { ...base, scaling: "linear", factor: num(params.factor) };
  if (type === "llama3")
    return {
      ...base, scaling: "llama3", factor: num(params.factor), lowFreqFactor: num(params.low_freq_factor),
      highFreqFactor: num(params.high_freq_factor), originalMaxPosition: num(params.original_max_position_embeddings),
    };
  throw new RangeError(`config: rope type '${type}' is not supported (expected default, linear or llama3)`);
}

/** Rotates x [T, nHeads, headDim] in place (HF rotate_half pairs i, i + rotaryDim/2); resolves with x. */
export function ropeApply(o: {
  x: Float32Array; nHeads: number; headDim: number; rotaryDim?: number; positions: Int32Array; invFreq: Float32Array;
  impl?: Impl;
}): Promise<Float32Array> {
  return native().ropeApply(o);
}

/** silu(gate) * up, elementwise. */
export function siluMul(o: { gate: Float32Array; up: Float32Array; impl?: Impl }): Promise<Float32Array> {
  return native().siluMul(o);
}

/** Softmax of each row of x [M, n], in place; resolves with x. */
export function softmax(o: { x: Float32Array; n: number; impl?: Impl }): Promise<Float32Array> {
  return native().softmax(o);
}

/** logp[m] = log_softmax(logits[m, :])[targets[m]] for logits [M, vocab]. */
export function logSoftmaxGather(o: {
  logits: Float32Array; vocab: number; targets: Int32Array; impl?: Impl;
}): Promise<Float32Array> {
  return native().logSoftmaxGather(o);
}

/** Top-k of each row's log-softmax: idx, logp [M, k], descending, ties to the lower id. */
export function logSoftmaxTopk(o: {
  logits: Float32Array; vocab: number; k: number; impl?: Impl;
}): Promise<{ idx: Int32Array; logp: Float32Array }> {
  return native().logSoftmaxTopk(o);
}

/** out [n, dim] = table[ids] as fp32; table [V, dim] is Float32Array (f32) or Uint16Array (f16 / bf16 bits). */
export function embedding(o: {
  table: Float32Array | Uint16Array; dtype: "f32" | "f16" | "bf16"; dim: number; ids: Int32Array; impl?: Impl;
}): Promise<Float32Array> {
  return native().embedding(o);
}
