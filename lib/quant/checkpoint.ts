/**
 * Quantized checkpoints: a folder that holds a quantized model so it can be evaluated again without recalibrating.
 *
 *   <dir>/model.safetensors   packed linears as three tensors each, every other tensor as it was quantized
 *                             against (embeddings, lm_head, biases, norms — rescaled by AWQ / SmoothQuant when used)
 *   <dir>/quanteval.json      the same metadata as the safetensors `__metadata__`, readable
 *   <dir>/config.json, tokenizer.json, tokenizer_config.json, generation_config.json, …  copied from the source model
 *
 * A packed linear `<m>` (e.g. `model.layers.0.self_attn.q_proj`) is stored as
 *   `<m>.qweight` U8 [N, row_bytes(K, bits)]  codes, packed row by row in chunks of 32 (formats.h)
 *   `<m>.scales`  F32 | F16 | BF16 [N, G]      per-group scales, G = ceil(K / group_size)
 *   `<m>.qzeros`  U8 [N, G]                    zero points (absent when symmetric)
 * and its N, K and format are listed in the metadata (`quanteval.linears`). Metadata keys (all strings):
 *   quanteval.format = "quanteval-packed-v1", quanteval.version, quanteval.spec (canonical), quanteval.method,
 *   quanteval.calibration (JSON of the CalibrationRecord, or "none"), quanteval.linears (JSON),
 *   quanteval.format_description (the layout in words), quanteval.source_model.
 *
 * Loading validates everything before anything is used: the metadata is present and of this format, the spec
 * parses and is consistent with each linear's format, every listed linear has its tensors with the expected
 * dtypes and shapes, no packed tensor is left unlisted; the safetensors reader already rejects truncated files
 * and inconsistent offsets. Every error is a {@link CheckpointError} naming the file and the tensor or field.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../native.js";
import {
  openSafetensors,
  SafetensorsError,
  writeSafetensors,
  type SafetensorsDType,
  type TensorToWrite,
  type TypedTensor,
} from "../model/safetensors.js";
import { expectedTensors } from "../model/config.js";
import { LlamaModel, type ModelOptions } from "../model/model.js";
import type { DenseDType } from "../model/native-types.js";
import type { CalibrationRecord } from "./calibration.js";
import { kvTypeFor, type QuantizeReport } from "./quantize.js";
import { nGroups, rowBytes, type PackedWeight, type ScaleDType } from "./numerics.js";
import { activationExecution, formatSpec, parseSpec, type QuantSpec } from "./spec.js";

export const CHECKPOINT_FORMAT = "quanteval-packed-v1";
export const FORMAT_DESCRIPTION =
  "Each quantized linear W[N,K] is <name>.qweight (U8 [N, ceil(K/32)*chunk_bytes]: codes packed row by row in " +
  "chunks of 32; 8-bit byte j = c[j]; 4-bit byte j = c[j] | c[j+16]<<4; 2-bit byte j = c[j] | c[j+8]<<2 | c[j+16]<<4 " +
  "| c[j+24]<<6; 3-bit: the 2-bit layout of the low bits then a little-endian uint32 of bit 2; 6-bit: the 4-bit " +
  "layout of the low 4 bits then the 2-bit layout of the high 2 bits), <name>.scales " +
  "([N, ceil(K/group_size)], last group short) and <name>.qzeros (U8, absent when symmetric: z = 2^(bits-1)); " +
  "w = (q - z) * s. See native/include/quanteval/formats.h.";

/** Files copied from the source model folder when present. */
const COPIED_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
];

export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = "CheckpointError";
  }
}

/** Format of one packed linear as listed in the metadata. */
export interface LinearEntry {
  N: number;
  K: number;
  bits: 2 | 3 | 4 | 6 | 8;
  groupSize: number;
  symmetric: boolean;
  scaleDtype: ScaleDType;
}

/** A quantized model's tensors, as produced by quantizeModel and consumed by the runtime. */
export interface QuantizedState {
  spec: QuantSpec;
  /** Packed linears by module name (without `.weight`). */
  packed: Map<string, PackedWeight>;
  /** Every other tensor by its checkpoint name. */
  dense: Map<string, TypedTensor>;
  calibration?: CalibrationRecord;
  /** Free-form description of the method and its settings (e.g. "gptq damp=0.01 block=128"). */
  method: string;
  /** Name or path of the model that was quantized. */
  sourceModel: string;
}

export interface CheckpointMeta {
  format: string;
  version: string;
  spec: string;
  method: string;
  calibration: CalibrationRecord | null;
  linears: Record<string, LinearEntry>;
  formatDescription: string;
  sourceModel: string;
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

const SCALE_ST: Record<ScaleDType, SafetensorsDType> = { f32: "F32", f16: "F16", bf16: "BF16" };

/**
 * Writes `state` into `dir` (created if needed) and copies config/tokenizer files from `sourceDir` when given.
 * Returns the metadata written.
 */
export function saveQuantizedCheckpoint(dir: string, state: QuantizedState, sourceDir?: string): CheckpointMeta {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  const linears: Record<string, LinearEntry> = {};
  for (const [name, t] of state.dense) {
    if (name.endsWith(".qweight") || name.endsWith(".qzeros") || name.endsWith(".scales"))
      throw new CheckpointError(dir, `dense tensor '${name}' uses a name reserved for packed linears`);
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: t.data });
  }
  for (const [name, p] of state.packed) {
    const f = p.format;
    linears[name] = { N: p.N, K: p.K, bits: f.bits, groupSize: f.groupSize, symmetric: f.symmetric, scaleDtype: f.scaleDtype };
    const G = nGroups(p.K, f.groupSize);
    tensors.set(`${name}.qweight`, { dtype: "U8", shape: [p.N, rowBytes(p.K, f.bits)], data: p.codes });
    tensors.set(`${name}.scales`, { dtype: SCALE_ST[f.scaleDtype], shape: [p.N, G], data: p.scales });
    if (!f.symmetric) {
      if (!p.zeros) throw new CheckpointError(dir, `packed linear '${name}' is asymmetric but has no zero points`);
      tensors.set(`${name}.qzeros`, { dtype: "U8", shape: [p.N, G], data: p.zeros });
    }
  }
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT,
    version: packageVersion(),
    spec: formatSpec(state.spec),
    method: state.method,
    calibration: state.calibration ?? null,
    linears,
    formatDescription: FORMAT_DESCRIPTION,
    sourceModel: state.sourceModel,
  };
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, {
    "quanteval.format": meta.format,
    "quanteval.version": meta.version,
    "quanteval.spec": meta.spec,
    "quanteval.method": meta.method,
    "quanteval.calibration": meta.calibration ? JSON.stringify(meta.calibration) : "none",
    "quanteval.linears": JSON.stringify(meta.linears),
    "quanteval.format_description": meta.formatDescription,
    "quanteval.source_model": meta.sourceModel,
  });
  writeFileSync(path.join(dir, "quanteval.json"), JSON.stringify(meta, null, 1) + "\n");
  if (sourceDir)
    for (const f of COPIED_FILES)
      if (existsSync(path.join(sourceDir, f))) copyFileSync(path.join(sourceDir, f), path.join(dir, f));
  return meta;
}

/** Whether `dir` holds a quanteval quantized checkpoint (by its quanteval.json). */
export function isQuantizedCheckpoint(dir: string): boolean {
  return existsSync(path.join(dir, "quanteval.json")) && existsSync(path.join(dir, "model.safetensors"));
}

/**
 * Reads and validates a quantized checkpoint. `expectSpec`, when given, must equal the stored spec (canonically),
 * so a caller asking for w4g128 never silently gets a w3 model.
 */
export function loadQuantizedCheckpoint(dir: string, opts: { expectSpec?: string } = {}): QuantizedState & { meta: CheckpointMeta } {
  const file = path.join(dir, "model.safetensors");
  if (!existsSync(file)) throw new CheckpointError(file, "missing (not a quantized checkpoint folder)");
  let st;
  try {
    st = openSafetensors(file);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(file, `invalid safetensors: ${e.message}`);
    throw e;
  }
  try {
    const md = st.metadata;
    const need = (k: string): string => {
      const v = md[k];
      if (v === undefined) throw new CheckpointError(file, `metadata '${k}' is missing (not written by quanteval?)`);
      return v;
    };
    const format = need("quanteval.format");
    if (format !== CHECKPOINT_FORMAT)
      throw new CheckpointError(file, `metadata 'quanteval.format': expected '${CHECKPOINT_FORMAT}', got '${format}'`);
    let spec: QuantSpec;
    try {
      spec = parseSpec(need("quanteval.spec"));
    } catch (e) {
      throw new CheckpointError(file, `metadata 'quanteval.spec': ${(e as Error).message}`);
    }
    const specStr = formatSpec(spec);
    if (opts.expectSpec !== undefined) {
      const want = formatSpec(parseSpec(opts.expectSpec));
      if (want !== specStr)
        throw new CheckpointError(file, `spec mismatch: the checkpoint holds '${specStr}', expected '${want}'`);
    }
    let linears: Record<string, LinearEntry>;
    try {
      linears = JSON.parse(need("quanteval.linears")) as Record<string, LinearEntry>;
    } catch (e) {
      throw new CheckpointError(file, `metadata 'quanteval.linears' is not valid JSON (${(e as Error).message})`);
    }
    const calRaw = need("quanteval.calibration");
    const calibration = calRaw === "none" ? undefined : (JSON.parse(calRaw) as CalibrationRecord);

    const packed = new Map<string, PackedWeight>();
    const w = spec.weights;
    for (const [name, e] of Object.entries(linears)) {
      const where = `packed linear '${name}'`;
      for (const k of ["N", "K", "groupSize"] as const)
        if (!Number.isSafeInteger(e[k]) || e[k] < 1)
          throw new CheckpointError(file, `${where}: '${k}' must be a positive integer, got ${JSON.stringify(e[k])}`);
      if (!w) throw new CheckpointError(file, `spec mismatch: spec '${specStr}' has no weight quantization but ${where} is packed`);
      const specGroup = w.groupSize ?? e.K;
      if (e.bits !== w.bits || e.symmetric !== w.symmetric || Math.min(e.groupSize, e.K) !== Math.min(specGroup, e.K))
        throw new CheckpointError(
          file,
          `spec mismatch: ${where} is ${e.bits}-bit group ${e.groupSize}${e.symmetric ? " symmetric" : ""} but the spec ` +
            `'${specStr}' says ${w.bits}-bit group ${w.groupSize ?? "per channel"}${w.symmetric ? " symmetric" : ""}`,
        );
      if (!(e.scaleDtype in SCALE_ST))
        throw new CheckpointError(file, `${where}: scaleDtype must be f32, f16 or bf16, got ${JSON.stringify(e.scaleDtype)}`);
      const G = nGroups(e.K, e.groupSize);
      const expect = (t: string, dtype: SafetensorsDType, shape: number[]) => {
        if (!st.has(t)) throw new CheckpointError(file, `${where}: tensor '${t}' is missing`);
        const info = st.info(t);
        if (info.dtype !== dtype || info.shape.join(",") !== shape.join(","))
          throw new CheckpointError(
            file,
            `tensor '${t}': expected ${dtype} [${shape}], got ${info.dtype} [${info.shape}]`,
          );
      };
      expect(`${name}.qweight`, "U8", [e.N, rowBytes(e.K, e.bits)]);
      expect(`${name}.scales`, SCALE_ST[e.scaleDtype], [e.N, G]);
      if (!e.symmetric) expect(`${name}.qzeros`, "U8", [e.N, G]);
      else if (st.has(`${name}.qzeros`))
        throw new CheckpointError(file, `${where}: symmetric but tensor '${name}.qzeros' is present`);
      const scales = st.read(`${name}.scales`).data as Float32Array | Uint16Array;
      if (scales instanceof Float32Array)
        for (let i = 0; i < scales.length; i++)
          if (!Number.isFinite(scales[i]))
            throw new CheckpointError(file, `tensor '${name}.scales': element ${i} is ${scales[i]} (not finite)`);
      packed.set(name, {
        N: e.N,
        K: e.K,
        format: { bits: e.bits, groupSize: e.groupSize, symmetric: e.symmetric, scaleDtype: e.scaleDtype },
        codes: st.read(`${name}.qweight`).data as Uint8Array,
        scales,
        zeros: e.symmetric ? null : (st.read(`${name}.qzeros`).data as Uint8Array),
      });
    }
    const dense = new Map<string, TypedTensor>();
    for (const t of st.names()) {
      const m = /^(.*)\.(qweight|scales|qzeros)$/.exec(t);
      if (m) {
        if (!packed.has(m[1]))
          throw new CheckpointError(file, `tensor '${t}' belongs to no linear listed in 'quanteval.linears'`);
        continue;
      }
      dense.set(t, st.read(t));
    }
    const meta: CheckpointMeta = {
      format,
      version: need("quanteval.version"),
      spec: specStr,
      method: need("quanteval.method"),
      calibration: calibration ?? null,
      linears,
      formatDescription: md["quanteval.format_description"] ?? "",
      sourceModel: md["quanteval.source_model"] ?? "",
    };
    return { spec, packed, dense, calibration, method: meta.method, sourceModel: meta.sourceModel, meta };
  } finally {
    st.close();
  }
}

// ── Whole models ────────────────────────────────────────────────────────────────────────────────────────────────

const ST_TO_DENSE: Partial<Record<SafetensorsDType, DenseDType>> = { F32: "f32", F16: "f16", BF16: "bf16" };

/**
 * The tensors of a model quantized in place by quantizeModel, for saving: packed linears from the report; every
 * other tensor the config needs read again from the model's source files, with the per-channel scalings of
 * AWQ / SmoothQuant applied exactly as the runtime applied them (fp32 division, in the same order), so that a
 * reloaded model holds bit-identical weights.
 */
export function quantizedState(model: LlamaModel, report: QuantizeReport): QuantizedState {
  const files = model.loadReport?.files;
  if (!files?.length)
    throw new CheckpointError(model.name, "only models loaded from a checkpoint folder can be saved (no source files)");
  const nm = model.native;
  const want = expectedTensors(model.config);
  const normScales = new Map<string, Float32Array[]>();
  const scaledPrevLinears = new Map<string, Float32Array[]>();
  const linearNames = new Set(nm.linearNames());
  for (const s of report.scalings) {
    const target = linearNames.has(s.prev) ? scaledPrevLinears : normScales;
    target.set(s.prev, [...(target.get(s.prev) ?? []), s.scales]);
  }
  const dense = new Map<string, TypedTensor>();
  for (const f of files) {
    const st = openSafetensors(f);
    try {
      for (const name of st.names()) {
        if (!want.has(name)) continue;
        const mod = name.replace(/\.(weight|bias)$/, "");
        if (name.endsWith(".weight") && report.packed.has(mod)) continue;
        const ns = normScales.get(mod);
        const ls = scaledPrevLinears.get(mod);
        if (ns && name.endsWith(".weight")) {
          const v = st.readFloat32(name);
          for (const s of ns) for (let k = 0; k < v.length; k++) v[k] = Math.fround(v[k] / s[k]);
          dense.set(name, { dtype: "F32", shape: st.info(name).shape, data: v });
        } else if (ls && name.endsWith(".weight")) {
          dense.set(name, { dtype: "F32", shape: st.info(name).shape, data: nm.getLinearWeight(mod) });
        } else if (ls && name.endsWith(".bias")) {
          const v = st.readFloat32(name);
          for (const s of ls) for (let k = 0; k < v.length; k++) v[k] = Math.fround(v[k] / s[k]);
          dense.set(name, { dtype: "F32", shape: st.info(name).shape, data: v });
        } else dense.set(name, st.read(name));
      }
    } finally {
      st.close();
    }
  }
  return {
    spec: parseSpec(report.spec),
    packed: report.packed,
    dense,
    calibration: report.calibration,
    method: report.method,
    sourceModel: path.dirname(files[0]),
  };
}

/** Saves a model quantized by quantizeModel into `dir` (see the module comment). */
export function saveQuantizedModel(dir: string, model: LlamaModel, report: QuantizeReport): CheckpointMeta {
  const state = quantizedState(model, report);
  return saveQuantizedCheckpoint(dir, state, state.sourceModel);
}

/**
 * Loads a quantized checkpoint folder as a runnable model: dense tensors and packed linears go straight to the
 * runtime (no recalibration, no requantization), activation modes and the KV cache type follow the stored spec.
 */
export async function loadQuantizedModel(
  dir: string,
  opts: ModelOptions & { expectSpec?: string } = {},
): Promise<{ model: LlamaModel; meta: CheckpointMeta }> {
  const st = loadQuantizedCheckpoint(dir, { expectSpec: opts.expectSpec });
  const spec = st.spec;
  const act = activationExecution(spec) === "kernel" ? "a8" : "sim";
  const model = await LlamaModel.fromDir(dir, {
    ...opts,
    kvType: kvTypeFor(spec),
    loadWeights: (nm, config) => {
      const want = expectedTensors(config);
      for (const [name, t] of st.dense) {
        const dt = ST_TO_DENSE[t.dtype];
        if (!dt) throw new CheckpointError(dir, `tensor '${name}': expected F32, F16 or BF16, got ${t.dtype}`);
        if (!want.has(name)) throw new CheckpointError(dir, `unexpected tensor '${name}' for this config`);
        nm.setTensor(name, dt, t.shape, t.data, opts.keepDtype ?? true);
      }
      for (const [name, p] of st.packed) {
        if (!want.has(`${name}.weight`)) throw new CheckpointError(dir, `packed linear '${name}' is not a linear of this config`);
        const shape = want.get(`${name}.weight`)!;
        if (shape[0] !== p.N || shape[1] !== p.K)
          throw new CheckpointError(dir, `packed linear '${name}': config expects [${shape}], the checkpoint has [${p.N},${p.K}]`);
        nm.setLinearQuant(name, p.format, p.codes, p.scales, p.zeros);
        if (spec.activations) nm.setActivation(name, act, spec.activations.bits);
      }
    },
  });
  return { model, meta: st.meta };
}
