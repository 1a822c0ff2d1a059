/**
 * The quantization spec: one compact string that users write and that appears unchanged in the CLI, the API,
 * results and file names. `parseSpec` turns it into a {@link QuantSpec}; `formatSpec` prints the canonical form,
 * with `parseSpec(formatSpec(x))` deep-equal to `x` and `formatSpec(parseSpec(s))` the canonical spelling of `s`.
 *
 * Grammar (lower case; parts in this order, each optional, at least one present):
 *
 *     spec    := base? weights? acts? kv? method*
 *     base    := "fp32" | "fp16" | "bf16"        precision of unquantized weights (default fp32; not with weights)
 *     weights := "w" BITS ("g" N)? "s"?           BITS ∈ {2,3,4,6,8}; gN = groups of N inputs (default: per output
 *                                                 channel); "s" = symmetric (no zero points), else asymmetric
 *     acts    := "a" (8|4)                        per-token dynamic asymmetric activations (needs weights); a8 runs
 *                                                 the int8-activation GEMM (every packed format), a4 is simulated
 *     kv      := "kv" B | "k" B "v" B             KV cache, B ∈ {16 (fp16), 8, 4, 3, 2}; default fp32
 *     method  := "+rtn"                           round to nearest (the default; omitted when printed)
 *              | "+gptq" ("-act")? ("-static")? ("-damp" X)? ("-block" N)?
 *                                                 GPTQ; -act: act-order (columns by decreasing H_jj); -static:
 *                                                 static groups (group scales fixed from the unmodified weights,
 *                                                 required with -act and groups since packed groups are contiguous
 *                                                 in input order); -damp: percdamp (default 0.01); -block: lazy
 *                                                 update block (default 128)
 *              | "+awq" ("-grid" N)? ("-noclip")?  AWQ scale search over N values of α in [0,1) (default 20) and,
 *                                                 unless -noclip, the max-value clipping search
 *              | "+sq" X?                         SmoothQuant with migration strength α = X ∈ [0,1] (default 0.5);
 *                                                 needs activation quantization (a8/a4); combines with +gptq/+rtn
 *
 * Examples: `fp16`, `w8`, `w4g128`, `w4g128s`, `w3g128+gptq`, `w8a8+sq0.85`, `w4g32a8kv4`, `k8v4`,
 * `w4g128+gptq-act-static`, `w4+awq-noclip`.
 *
 * Canonical printing: base only when it is not fp32 or when nothing else is set (`fp32`); methods as
 * `+sq<α>` first, then the weight method; default options omitted.
 */

export type WeightBits = 2 | 3 | 4 | 6 | 8;
export type ActBits = 8 | 4;
/** KV cache element width: 16 = fp16 values, 8/4 = integer codes with per-token per-head scales. */
export type KVBits = 16 | 8 | 4 | 3 | 2;
export type BasePrecision = "fp32" | "fp16" | "bf16";

export interface WeightQuant {
  bits: WeightBits;
  /** Inputs per group; null = one group per output channel (group size = K). */
  groupSize: number | null;
  /** true: no zero points, z = 2^(bits-1) (formats.h). */
  symmetric: boolean;
}

export type WeightMethod =
  | { name: "rtn" }
  | { name: "gptq"; actOrder: boolean; staticGroups: boolean; damp: number; blockSize: number }
  | { name: "awq"; grid: number; clip: boolean };

export interface QuantSpec {
  /** Precision of weights that stay dense. Only fp16/bf16 when `weights` is null. */
  base: BasePrecision;
  weights: WeightQuant | null;
  activations: { bits: ActBits } | null;
  /** null = fp32 cache. */
  kv: { k: KVBits; v: KVBits } | null;
  /** SmoothQuant migration strength, or null. */
  smooth: { alpha: number } | null;
  method: WeightMethod;
}

export const GPTQ_DEFAULTS = { actOrder: false, staticGroups: false, damp: 0.01, blockSize: 128 } as const;
export const AWQ_DEFAULTS = { grid: 20, clip: true } as const;
export const SQ_DEFAULT_ALPHA = 0.5;

/** Thrown for a malformed or inconsistent spec; `spec` is the input, the message says exactly what is wrong. */
export class SpecError extends Error {
  constructor(
    readonly spec: string,
    detail: string,
  ) {
    super(`invalid quantization spec '${spec}': ${detail}`);
    this.name = "SpecError";
  }
}

const WEIGHT_BITS: readonly number[] = [2, 3, 4, 6, 8];
const ACT_BITS: readonly number[] = [8, 4];
const KV_BITS: readonly number[] = [16, 8, 4, 3, 2];
const MAX_GROUP = 1 << 20;

/** Formats a number without trailing zeros and without exponent (α, damp). */
function fmtNum(x: number): string {
  return String(Number(x.toFixed(6)));
}

/** Parses `s` into a QuantSpec or throws {@link SpecError}. Leading/trailing blanks and upper case are accepted. */
export function parseSpec(input: string): QuantSpec {
  if (typeof input !== "string") throw new TypeError(`spec: expected a string, got ${typeof input}`);
  const s = input.trim().toLowerCase();
  const fail = (detail: string): never => {
    throw new SpecError(input, detail);
  };
  if (s === "") fail("empty spec (write e.g. fp32, w8, w4g128, w8a8, kv8, w4g128+gptq)");
  const [head, ...methodParts] = s.split("+");

  const spec: QuantSpec = {
    base: "fp32",
    weights: null,
    activations: null,
    kv: null,
    smooth: null,
    method: { name: "rtn" },
  };
  let baseGiven = false;
  let rest = head;
  const num = (what: string, token: string, digits: string | undefined): number => {
    if (digits === undefined || digits === "") fail(`'${token}': ${what} needs a number`);
    return Number(digits);
  };

  const base = /^(fp32|fp16|bf16)/.exec(rest);
  if (base) {
    spec.base = base[1] as BasePrecision;
    baseGiven = true;
    rest = rest.slice(base[0].length);
  }
  const w = /^w(\d*)(?:g(\d*))?(s?)/.exec(rest);
  if (w) {
    const tok = w[0];
    const bits = num("weight bits", tok, w[1]);
    if (!WEIGHT_BITS.includes(bits)) fail(`${tok}: weight bits must be 2, 3, 4, 6 or 8 (got ${bits})`);
    let groupSize: number | null = null;
    if (w[2] !== undefined) {
      const g = num("group size after 'g'", tok, w[2]);
      if (g < 1 || g > MAX_GROUP) fail(`${tok}: group size must be an integer in [1, ${MAX_GROUP}] (got g${g})`);
      groupSize = g;
    }
    if (baseGiven) fail(`'${spec.base}' and '${tok}' both set the weight precision; write only one`);
    spec.weights = { bits: bits as WeightBits, groupSize, symmetric: w[3] === "s" };
    rest = rest.slice(tok.length);
  }
  const a = /^a(\d*)/.exec(rest);
  if (a) {
    const bits = num("activation bits", a[0], a[1]);
    if (!ACT_BITS.includes(bits)) fail(`${a[0]}: activation bits must be 8 or 4 (got ${bits})`);
    if (!spec.weights)
      fail(`${a[0]} without weight quantization: activations are quantized inside the integer GEMM, write e.g. w8${a[0]}`);
    spec.activations = { bits: bits as ActBits };
    rest = rest.slice(a[0].length);
  }
  const kv = /^(?:kv(\d*)|k(\d*)v(\d*))/.exec(rest);
  if (kv) {
    const tok = kv[0];
    const k = num("KV bits", tok, kv[1] ?? kv[2]);
    const v = kv[1] !== undefined ? k : num("V bits", tok, kv[3]);
    for (const b of [k, v]) if (!KV_BITS.includes(b)) fail(`${tok}: KV cache bits must be 16, 8, 4, 3 or 2 (got ${b})`);
    spec.kv = { k: k as KVBits, v: v as KVBits };
    rest = rest.slice(tok.length);
  }
  if (rest !== "") {
    const where = head.length - rest.length;
    fail(
      `unexpected '${rest}' at position ${where} (expected parts in the order ` +
        `[fp32|fp16|bf16] [w<bits>[g<size>][s]] [a<bits>] [kv<bits>|k<bits>v<bits>] [+method])`,
    );
  }

  let weightMethodSeen: string | undefined;
  for (const m of methodParts) {
    if (m === "") fail("empty method after '+'");
    const sq = /^sq(.*)$/.exec(m);
    if (sq) {
      if (spec.smooth) fail("+sq given twice");
      let alpha = SQ_DEFAULT_ALPHA;
      if (sq[1] !== "") {
        if (!/^\d+(\.\d+)?$/.test(sq[1])) fail(`+${m}: SmoothQuant α must be a number in [0, 1] (got '${sq[1]}')`);
        alpha = Number(sq[1]);
        if (alpha < 0 || alpha > 1) fail(`+${m}: SmoothQuant α must be in [0, 1] (got ${alpha})`);
      }
      spec.smooth = { alpha };
      continue;
    }
    const [name, ...opts] = m.split("-");
    if (name !== "rtn" && name !== "gptq" && name !== "awq")
      fail(`unknown method '+${name}' (expected +rtn, +gptq, +awq or +sq<α>)`);
    if (weightMethodSeen) fail(`two weight methods '+${weightMethodSeen}' and '+${name}'; give one`);
    weightMethodSeen = name;
    if (name === "rtn") {
      if (opts.length) fail(`+rtn takes no options (got '-${opts.join("-")}')`);
      spec.method = { name: "rtn" };
    } else if (name === "gptq") {
      const g: Extract<WeightMethod, { name: "gptq" }> = { name: "gptq", ...GPTQ_DEFAULTS };
      for (const o of opts) {
        let mm: RegExpExecArray | null;
        if (o === "act") g.actOrder = true;
        else if (o === "static") g.staticGroups = true;
        else if ((mm = /^damp(\d+(?:\.\d+)?)$/.exec(o))) {
          g.damp = Number(mm[1]);
          if (!(g.damp > 0 && g.damp <= 1)) fail(`+gptq-${o}: damp must be in (0, 1] (got ${g.damp})`);
        } else if ((mm = /^block(\d+)$/.exec(o))) {
          g.blockSize = Number(mm[1]);
          if (g.blockSize < 1 || g.blockSize > 4096) fail(`+gptq-${o}: block must be in [1, 4096]`);
        } else fail(`unknown GPTQ option '-${o}' (expected -act, -static, -damp<x>, -block<n>)`);
      }
      spec.method = g;
    } else {
      const aw: Extract<WeightMethod, { name: "awq" }> = { name: "awq", ...AWQ_DEFAULTS };
      for (const o of opts) {
        let mm: RegExpExecArray | null;
        if (o === "noclip") aw.clip = false;
        else if ((mm = /^grid(\d+)$/.exec(o))) {
          aw.grid = Number(mm[1]);
          if (aw.grid < 1 || aw.grid > 1000) fail(`+awq-${o}: grid must be in [1, 1000]`);
        } else fail(`unknown AWQ option '-${o}' (expected -grid<n>, -noclip)`);
      }
      spec.method = aw;
    }
  }

  if (spec.method.name !== "rtn" && !spec.weights)
    fail(`+${spec.method.name} needs weight quantization (e.g. w4g128+${spec.method.name})`);
  if (spec.smooth && !spec.activations) fail("+sq without a8 or a4: SmoothQuant moves activation outliers into the weights, it needs quantized activations (e.g. w8a8+sq0.5)");
  if (spec.smooth && spec.method.name === "awq")
    fail("+sq and +awq both rescale input channels; give one of them");
  if (spec.method.name === "gptq" && spec.method.actOrder && spec.weights?.groupSize != null && !spec.method.staticGroups)
    fail(
      "+gptq-act with groups needs -static: packed groups are contiguous in input order, so group scales must be " +
        "fixed before the columns are reordered (write +gptq-act-static)",
    );
  return spec;
}

/** The canonical string of a spec (see the module comment). */
export function formatSpec(spec: QuantSpec): string {
  let s = "";
  if (spec.weights) {
    const w = spec.weights;
    s += `w${w.bits}${w.groupSize != null ? `g${w.groupSize}` : ""}${w.symmetric ? "s" : ""}`;
  } else if (spec.base !== "fp32") s += spec.base;
  if (spec.activations) s += `a${spec.activations.bits}`;
  if (spec.kv) s += spec.kv.k === spec.kv.v ? `kv${spec.kv.k}` : `k${spec.kv.k}v${spec.kv.v}`;
  if (s === "") s = "fp32";
  if (spec.smooth) s += `+sq${fmtNum(spec.smooth.alpha)}`;
  const m = spec.method;
  if (m.name === "gptq") {
    s += "+gptq";
    if (m.actOrder) s += "-act";
    if (m.staticGroups) s += "-static";
    if (m.damp !== GPTQ_DEFAULTS.damp) s += `-damp${fmtNum(m.damp)}`;
    if (m.blockSize !== GPTQ_DEFAULTS.blockSize) s += `-block${m.blockSize}`;
  } else if (m.name === "awq") {
    s += "+awq";
    if (m.grid !== AWQ_DEFAULTS.grid) s += `-grid${m.grid}`;
    if (!m.clip) s += "-noclip";
  }
  return s;
}

/** parse then print: the canonical spelling of a spec string. */
export function canonicalSpec(s: string): string {
  return formatSpec(parseSpec(s));
}

/** Whether any weight, activation or KV quantization is asked for. */
export function isQuantized(spec: QuantSpec): boolean {
  return spec.weights !== null || spec.activations !== null || (spec.kv !== null && (spec.kv.k < 16 || spec.kv.v < 16));
}

/**
 * How the activation quantization of a spec is executed on CPU: `kernel` when the int8-activation GEMM (gemm_w8a8)
 * applies — a8 with packed weights of any format (2/3/4/6/8 bits, per channel or grouped, sym or asym) — otherwise
 * `simulated` (a4: fake-quantized activations, fp32 GEMM); `none` without activation quantization.
 */
export function activationExecution(spec: QuantSpec): "none" | "kernel" | "simulated" {
  if (!spec.activations) return "none";
  if (spec.activations.bits === 8 && spec.weights) return "kernel";
  return "simulated";
}

/** A golden setting name that has no spec (no packed format for it), with the reason. */
export interface UnsupportedGolden {
  name: string;
  reason: string;
}

/**
 * Maps a setting name of `golden/stories260K.ppl.json` (`fp32`, `w8`, `w4_sym`, `w4_g32`, `w8a8`, `kv4`,
 * `w4_g32_kv4`, …) to a spec. Golden settings use the same quantizer semantics as formats.h (asymmetric min-max
 * unless `_sym`, per channel unless `_gN`, per-token activations, per-token per-head KV). Returns an
 * {@link UnsupportedGolden} for a bit width that has no packed format (5-bit weights, a 1-bit KV cache, …).
 */
export function goldenSettingToSpec(name: string): QuantSpec | UnsupportedGolden {
  if (name === "fp32") return parseSpec("fp32");
  let w = "";
  let g = "";
  let sym = "";
  let a = "";
  let kv = "";
  for (const part of name.split("_")) {
    let m: RegExpExecArray | null;
    if ((m = /^w(\d+)(?:a(\d+))?$/.exec(part))) {
      w = m[1];
      if (m[2]) a = m[2];
    } else if ((m = /^g(\d+)$/.exec(part))) g = m[1];
    else if (part === "sym") sym = "s";
    else if ((m = /^kv(\d+)$/.exec(part))) kv = m[1];
    else throw new RangeError(`golden setting '${name}': unknown part '${part}'`);
  }
  if (w && !WEIGHT_BITS.includes(Number(w)))
    return { name, reason: `${w}-bit weights have no packed format (formats.h packs 2, 3, 4, 6 and 8 bits)` };
  if (kv && !KV_BITS.includes(Number(kv)))
    return { name, reason: `a ${kv}-bit KV cache has no format (formats.h stores int8, int4, int3 and int2 caches)` };
  const s = (w ? `w${w}${g ? `g${g}` : ""}${sym}` : "") + (a ? `a${a}` : "") + (kv ? `kv${kv}` : "");
  return parseSpec(s);
}

export function isUnsupportedGolden(x: QuantSpec | UnsupportedGolden): x is UnsupportedGolden {
  return (x as UnsupportedGolden).reason !== undefined;
}
