/**
 * Types of the raw runtime classes registered by native/napi/runtime_bindings.cpp. Public code wraps them
 * (lib/model/model.ts); the quantization engineer calls the weight / capture methods directly.
 */
import type { ModelConfig } from "./config.js";

export type DenseDType = "f32" | "f16" | "bf16";
export type KVType = "f32" | "f16" | "int8" | "int4" | "int3" | "int2";

/** A packed weight format (formats.h): bits 2/3/4/6/8, group size along K (K itself = per output channel). */
export interface NativeQuantFormat {
  bits: 2 | 3 | 4 | 6 | 8;
  groupSize: number;
  /** true: no zero points, z = 2^(bits-1). Default false. */
  symmetric?: boolean;
  /** Dtype of the stored scales. Default 'f32'. */
  scaleDtype?: DenseDType;
}

export interface NativeLinearInfo {
  name: string;
  N: number;
  K: number;
  set: boolean;
  quantized: boolean;
  /** Memory category: 'f32', 'bf16', 'q4g128', 'q8' (per channel), 'q4g128s' (symmetric), ... */
  format: string;
  quant?: Required<NativeQuantFormat>;
  dtype?: DenseDType;
  /** lm_head sharing the embedding matrix. */
  tied: boolean;
  hasBias: boolean;
  activation: "none" | "a8" | "sim";
  activationBits: number;
  /** 'simulated' when activations are fake-quantized (no integer kernel for this combination). */
  execution: "native" | "simulated";
  bytes: number;
}

export interface NativeCapture {
  /** Rows (tokens) accumulated. */
  rows: number;
  /** [K, K] Σ xᵀx over every captured row (fp64, symmetric), when started with hessian: true. */
  hessian?: Float64Array;
  /** The same sums rounded to fp32, instead of `hessian`, when captureGet was asked for hessianF32. */
  hessianF32?: Float32Array;
  /** [K] mean |x| per input channel. */
  absMean: Float64Array;
  /** [K] max |x| per input channel. */
  absMax: Float32Array;
  /** [sampleCount, K] the input rows chosen by captureStart's sampleRows (those reached so far). */
  samples?: Float32Array;
  sampleCount?: number;
}

/** Config fields the native Model reads (a {@link ModelConfig} plus the longest context to accept). */
/** The config the native Model reads; `layerWindows` (from ModelConfig) gives each layer's sliding window. */
export type NativeModelConfig = ModelConfig & { maxContext: number };

export interface NativeModel {
  /** Sets a tensor by HF name (norms, embedding, linear weights and biases); copies it. keepDtype (default true)
   * stores dense linears in their own dtype, false converts them to f32. */
  setTensor(name: string, dtype: DenseDType, shape: number[], data: ArrayBufferView, keepDtype?: boolean): void;
  /** Packed weight for a linear (module name, e.g. 'model.layers.0.mlp.down_proj'): codes [N, rowBytes(K, bits)],
   * scales [N, nGroups] of format.scaleDtype (Float32Array or Uint16Array bits), zeros [N, nGroups] uint8 or null
   * when symmetric. */
  setLinearQuant(name: string, format: NativeQuantFormat, codes: Uint8Array, scales: Float32Array | Uint16Array,
    zeros: Uint8Array | null): void;
  /** RTN-quantizes a dense linear in place (quantize_rtn_ref). */
  quantizeLinear(name: string, format: NativeQuantFormat): Promise<void>;
  /** Activation handling of a linear: 'none', 'a8' (real gemm_w8a8; needs a packed weight of any format, else it
   * runs simulated), 'sim' (fake-quantize to `bits` then the weight kernel). */
  setActivation(name: string, mode: "none" | "a8" | "sim", bits?: number): void;
  linearNames(): string[];
  linearInfo(name: string): NativeLinearInfo;
  /** The weight as the kernels see it (dequantized when packed), fp32 [N * K]. */
  getLinearWeight(name: string): Float32Array;
  /** Divides the output channels of `prev` (a norm module like 'model.layers.0.input_layernorm' or a linear) by
   * scales[K] and multiplies the input channels of each linear in `next` by them (SmoothQuant / AWQ folding). */
  scaleChannels(prev: string, next: string[], scales: Float32Array): void;
  /** Seeded random weights for every tensor; packed directly when `format` is given. */
  randomize(seed: number, opts?: { denseDtype?: DenseDType; format?: NativeQuantFormat; quantizeLmHead?: boolean }): Promise<void>;
  /** Starts (zeroes) calibration statistics for these linears; prefill (or layerForward) with capture: true
   * accumulates them. sampleRows: strictly increasing global row indices (rows counted over every captured call, in
   * order) whose input rows are kept as `samples`. */
  captureStart(names: string[], opts?: { hessian?: boolean; sampleRows?: Int32Array }): void;
  /** hessianF32: return the Hessian as `hessianF32` (fp32, converted natively) instead of `hessian` (fp64). */
  captureGet(name: string, opts?: { hessianF32?: boolean }): NativeCapture;
  captureStop(names?: string[]): void;
  /** Embedding rows [n, D] of tokens (the input of layer 0 for layer-wise calibration). */
  embed(tokens: Int32Array): Promise<Float32Array>;
  /** Decoder layer `layer` applied to sequences of hidden rows [Σ counts, D] (each from position 0, fp32 KV): a new
   * [Σ counts, D]. With capture, that layer's active captures accumulate exactly as in a prefill of the windows. */
  layerForward(layer: number, hidden: Float32Array, counts: Int32Array, opts?: { capture?: boolean }): Promise<Float32Array>;
  checkComplete(): void;
  /** Bytes by category: 'weights:<format>', 'weights:embedding', 'weights:norms', 'calibration'. */
  memory(): Record<string, number>;
  info(): { simulated: boolean; decodeWeightBytes: number };
  /** Frees the weights now (instead of at garbage collection); later steps throw. */
  dispose(): void;
}

export interface PrefillOptions {
  /** Which rows produce outputs: none, the last token of each sequence (default), every token. */
  rows?: "none" | "last" | "all";
  /** Return raw logits [rows, V] (default true). */
  logits?: boolean;
  /** Return log-softmax rows [rows, V]. */
  logSoftmax?: boolean;
  /** Return the top-k log-probabilities per row. */
  topk?: number;
  /** rows 'all': per-token targets (−1: none); returns logprobs[t] = log p(targets[t] | tokens ≤ t). */
  targets?: Int32Array;
  /** Accumulate calibration statistics (see captureStart). */
  capture?: boolean;
}

export interface PrefillResult {
  rows: number;
  logits?: Float32Array;
  logSoftmax?: Float32Array;
  argmax: Int32Array;
  logprobs?: Float32Array;
  topkIds?: Int32Array;
  topkLogprobs?: Float32Array;
}

export interface NativeSession {
  /** A fresh (empty) sequence id; ids and their cache memory are reused after free(). */
  alloc(): number;
  free(seq: number): void;
  length(seq: number): number;
  /** Keeps the first `length` tokens. Throws (RangeError) when a sliding-window layer already dropped positions
   * the token at `length` would attend to; canTruncate tells beforehand (truncate to 0 always works). */
  truncate(seq: number, length: number): void;
  /** `count` (default 1) new sequences, each holding a copy of `seq`'s cache: a shared prefix runs once. A bad
   * `seq` or `count` throws at once (RangeError). */
  fork(seq: number, count?: number): Promise<Int32Array>;
  canTruncate(seq: number, length: number): boolean;
  /** First position a layer's cache of the sequence still holds (> 0 once a sliding-window layer dropped its
   * dead prefix). */
  firstHeld(seq: number, layer: number): number;
  /** Decode-step wall time by category since the last reset (ms); `enable` resets and switches profiling. */
  profile(enable?: boolean): { steps: number; totalMs: number; linearMs: number; attentionMs: number; kvStoreMs: number; otherMs: number };
  /** Benchmarks only: grows the sequence to `length` cached tokens of zero K/V without running them. */
  fillZeros(seq: number, length: number): void;
  /** Appends counts[s] tokens to sequence seqs[s] (tokens concatenated) and runs them. */
  prefill(seqs: Int32Array, tokens: Int32Array, counts: Int32Array, opts?: PrefillOptions): Promise<PrefillResult>;
  /** One token per sequence: logits [B, V]. */
  decode(seqs: Int32Array, tokens: Int32Array): Promise<Float32Array>;
  /** Bytes by category: 'kv:<type>' when K and V share a type, else 'kv:k:<type>' and 'kv:v:<type>' (types f32,
   * f16, int8, int4, int3, int2); 'workspace'. */
  memory(): Record<string, number>;
  /** Frees every KV cache and workspace now; sequence ids become invalid. */
  dispose(): void;
}

export interface RuntimeAddon {
  Model: new (config: NativeModelConfig) => NativeModel;
  /** kvType: K and V element type (default f32); kType / vType override it for one side. */
  /** windowEvict (default true, or false with QUANTEVAL_WINDOW_EVICT=0): sliding-window layers keep only the
   * positions a later query can see, so their cache is bounded by ~window tokens whatever the sequence length. */
  Session: new (model: NativeModel, opts?: { kvType?: KVType; kType?: KVType; vType?: KVType; maxLen?: number; windowEvict?: boolean }) => NativeSession;
}
