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
