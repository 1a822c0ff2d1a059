/**
 * KV-cache settings of a session: one element type for K and V (`"int8"`), or each its own
 * (`{ k: "int8", v: "int4" }`, the `k8v4` spec). The runtime stores K and V in separate buffers with their own
 * types, scales and zero points (native/runtime SeqCache), so any pair runs.
 */
import type { KVType } from "./native-types.js";

export type { KVType };
/** One type for K and V, or one for each. */
export type KVSetting = KVType | { k: KVType; v: KVType };

export const KV_TYPES: readonly KVType[] = ["f32", "f16", "int8", "int4", "int3", "int2"];

/** The K and V types of a setting. */
export function kvTypesOf(s: KVSetting): { k: KVType; v: KVType } {
  return typeof s === "string" ? { k: s, v: s } : { k: s.k, v: s.v };
}

/** The canonical form: a plain type when K and V agree, else { k, v }. */
export function normalizeKv(s: KVSetting): KVSetting {
  const { k, v } = kvTypesOf(s);
  return k === v ? k : { k, v };
}

/** "int8" for one type, "k:int8/v:int4" for two (reports, log lines). */
export function kvSettingName(s: KVSetting): string {
  const { k, v } = kvTypesOf(s);
  return k === v ? k : `k:${k}/v:${v}`;
}

/**
 * Parses a CLI / config string: a type ("int8"), or "k:<type>/v:<type>" (the form kvSettingName prints). Throws a
 * RangeError naming `what` and the accepted forms.
 */
export function parseKvSetting(text: string, what = "kv"): KVSetting {
  const one = (t: string): KVType => {
    if (!(KV_TYPES as readonly string[]).includes(t))
      throw new RangeError(`${what}: expected one of ${KV_TYPES.join(", ")} or k:<type>/v:<type>, got '${text}'`);
    return t as KVType;
  };
  const m = /^k:([a-z0-9]+)\/v:([a-z0-9]+)$/.exec(text.trim());
  return m ? normalizeKv({ k: one(m[1]), v: one(m[2]) }) : one(text.trim());
}

/** Native Session options for a setting. */
export function sessionKvOptions(s: KVSetting): { kvType?: KVType; kType?: KVType; vType?: KVType } {
  const { k, v } = kvTypesOf(s);
  return k === v ? { kvType: k } : { kType: k, vType: v };
}

/** Bytes of one [token, kv head] row of a type (formats.h kv_bytes_per_head: int3 is a 2-bit plane of ceil(D/4)
 * bytes plus a 1-bit plane of ceil(D/8) bytes, int2 ceil(D/4) bytes), and of its metadata (f32 scale + zero). */
function rowBytes(t: KVType, headDim: number): number {
  switch (t) {
    case "f32": return 4 * headDim;
    case "f16": return 2 * headDim;
    case "int8": return headDim;
    case "int4": return headDim / 2;
    case "int3": return Math.ceil(headDim / 4) + Math.ceil(headDim / 8);
    case "int2": return Math.ceil(headDim / 4);
  }
}
function metaBytes(t: KVType): number {
  return t === "f32" || t === "f16" ? 0 : 8;
}

/** Bytes of K and V for one token over every layer: each side's values plus, when quantized, its scales/zeros. */
export function kvBytesPerToken(layers: number, kvHeads: number, headDim: number, kv: KVSetting): number {
  const { k, v } = kvTypesOf(kv);
  const side = (t: KVType) => rowBytes(t, headDim) + metaBytes(t);
  return layers * kvHeads * (side(k) + side(v));
}

/** Dead positions a sliding-window layer lets pile up before compacting its cache: max(16, floor(W / 4))
 * (native Session::window_slack). */
export function windowSlack(window: number): number {
  return Math.max(16, Math.floor(window / 4));
}

/**
 * Positions a layer's cache holds (at most) after a decode step of a sequence of ctx tokens: all ctx for full
 * attention (window 0); for a sliding window W with the bounded cache (the sessions' default), the W - 1 positions
 * the next query needs plus at most `slack` dead ones not yet compacted away. After a prefill chunk of T tokens it
 * is up to T - 1 more; the allocation is W - 1 + slack + (the largest step's tokens) rows.
 */
export function kvHeldTokens(window: number, ctx: number): number {
  return window > 0 ? Math.min(ctx, window - 1 + windowSlack(window)) : ctx;
}

/** KV bytes of one sequence of ctx tokens over every layer, counting the bounded caches of sliding-window layers. */
export function kvCacheBytes(
  cfg: { numLayers: number; numKvHeads: number; headDim: number; layerWindows?: readonly number[] },
  kv: KVSetting,
  ctx: number,
): number {
  const perLayerToken = kvBytesPerToken(1, cfg.numKvHeads, cfg.headDim, kv);
  let tokens = 0;
  for (let l = 0; l < cfg.numLayers; l++) tokens += kvHeldTokens(cfg.layerWindows?.[l] ?? 0, ctx);
  return perLayerToken * tokens;
}
