/**
 * Quantizing a loaded model according to a spec: which linears, in what order, with which calibration data, and
 * how activations and the KV cache run. The arithmetic is native (numerics.ts → native/calib, the runtime's RTN
 * and capture); this file is the orchestration.
 *
 * Order (sequential quantization, GPTQ's and AWQ's): for each decoder layer l, the calibration windows are run
 * through the model — whose layers < l are already quantized, activations included — capturing for each linear
 * of layer l the Hessian Σxᵀx, mean |x| and max |x| of its input (one pass per layer, all seven linears at once;
 * GPTQ's `--true-sequential` would take four). Then, within the layer: SmoothQuant or AWQ scales are searched and
 * folded into the model (groups.ts), and every linear is quantized (GPTQ with the rescaled Hessian, AWQ's clipping
 * search + RTN, or RTN) and installed packed, with its activation mode. `sequential: false` captures every layer
 * in one pass over the unquantized model instead (L times cheaper; what SmoothQuant does; an option for large
 * models on CPU).
 *
 * Without a calibrating method (plain RTN, no +sq) nothing is run: each linear is quantized on its own.
 */
import type { LlamaModel } from "../model/model.js";
import type { KVType, NativeModel } from "../model/native-types.js";
import { normalizeKv, type KVSetting } from "../model/kv.js";
import { awqQuantizeLinear, awqScaleLayer, type AppliedScale } from "./awq.js";
import { sampleCalibration, type CalibrationOptions, type CalibrationRecord, type CalibrationSet } from "./calibration.js";
import { gptqLinear } from "./gptq.js";
import { DEFAULT_LINEARS, layerOf, scaleGroups } from "./groups.js";
import { rtnQuantize, type PackedWeight, type ScaleDType, type WeightFormat } from "./numerics.js";
import { smoothLayer } from "./smoothquant.js";
import { activationExecution, formatSpec, parseSpec, type QuantSpec } from "./spec.js";
import { fromCapture, type InputStats } from "./stats.js";

export interface QuantizeOptions {
  /** Calibration windows (used by +gptq, +awq, +sq). Defaults: calibration.ts (WikiText-2 validation, 128 × 512,
   * seed 0); seqlen is capped at the model's context. */
  calibration?: CalibrationOptions;
  /** Ready-made calibration windows (e.g. drawn with another tokenizer for a synthetic model); replaces
   * `calibration`. */
  calibrationSet?: CalibrationSet;
  /** Which linears to quantize, by module name. Default: every decoder linear (q,k,v,o,gate,up,down). */
  linears?: RegExp | ((name: string) => boolean);
  /** Sequential quantization (default true); see the module comment. */
  sequential?: boolean;
  /** Storage type of the weight scales (default f32). */
  scaleDtype?: ScaleDType;
  /** Tokens per native prefill call while calibrating (default 16384). */
  batchTokens?: number;
  onProgress?: (p: QuantizeProgress) => void;
}

export interface QuantizeProgress {
  stage: "calibrate" | "capture" | "scale" | "quantize" | "done";
  layer?: number;
  layers?: number;
  linear?: string;
  message: string;
}

export interface LinearReport {
  name: string;
  N: number;
  K: number;
  /** GPTQ's loss (Σ (w−q)²/Hinv_jj²/2). */
  gptqLoss?: number;
  seconds: number;
}

/** What quantizeModel did; `packed` and `scalings` are what a checkpoint stores. */
export interface QuantizeReport {
  spec: string;
  method: string;
  /** How each part executes: weights on packed kernels, activations on the int8 GEMM or simulated; the KV cache
   * type (one string when K and V share it, else { k, v }, e.g. k8v4 → { k: "int8", v: "int4" }). */
  execution: { weights: "packed" | "dense"; activations: "none" | "kernel" | "simulated"; kv: KVSetting };
  calibration?: CalibrationRecord;
  linears: LinearReport[];
  /** Per-channel scales folded into the model (AWQ / SmoothQuant), in the order applied. */
  scalings: AppliedScale[];
  packed: Map<string, PackedWeight>;
  seconds: number;
}

export class QuantizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QuantizeError";
  }
}

/** The runtime's KV cache types for a spec's cache setting: one type for kv<B>, { k, v } for k<B>v<B'> with B ≠ B'. */
export function kvTypeFor(spec: QuantSpec): KVSetting {
  if (!spec.kv) return "f32";
  const t = (bits: number): KVType => (bits === 16 ? "f16" : bits === 8 ? "int8" : "int4");
  return normalizeKv({ k: t(spec.kv.k), v: t(spec.kv.v) });
}

/** The packed format of a spec's weights for a linear with K inputs. */
export function weightFormat(spec: QuantSpec, K: number, scaleDtype: ScaleDType = "f32"): WeightFormat {
  const w = spec.weights!;
  return { bits: w.bits, groupSize: w.groupSize === null ? K : Math.min(w.groupSize, K), symmetric: w.symmetric, scaleDtype };
}

/** A one-line description of the method, for reports and checkpoint metadata. */
export function describeMethod(spec: QuantSpec): string {
  const m = spec.method;
  const parts: string[] = [];
  if (spec.smooth) parts.push(`smoothquant alpha=${spec.smooth.alpha}`);
  if (m.name === "gptq")
    parts.push(`gptq damp=${m.damp} block=${m.blockSize}${m.actOrder ? " act-order" : ""}${m.staticGroups ? " static-groups" : ""}`);
  else if (m.name === "awq") parts.push(`awq grid=${m.grid}${m.clip ? " clip" : ""}`);
  else parts.push("rtn");
  return parts.join(" + ");
}

/**
 * Runs the calibration windows through `model` with capture on for `names`, returning their input statistics.
 * Uses a fresh fp32-cache session (calibration statistics do not depend on the evaluation's KV setting).
 */
async function capture(
  model: LlamaModel,
  names: string[],
  windows: readonly Int32Array[],
  batchTokens: number,
): Promise<Map<string, InputStats>> {
  const nm = model.native;
  const session = model.newSession({ kvType: "f32" });
  nm.captureStart(names, { hessian: true });
  try {
    for (let i = 0; i < windows.length; ) {
      const batch: Int32Array[] = [];
      let n = 0;
      while (i < windows.length && (batch.length === 0 || n + windows[i].length <= batchTokens)) {
        batch.push(windows[i]);
        n += windows[i++].length;
      }
      const seqs = batch.map(() => session.alloc());
      try {
        const tokens = new Int32Array(n);
        let o = 0;
        for (const w of batch) {
          tokens.set(w, o);
          o += w.length;
        }
        await session.prefill(Int32Array.from(seqs), tokens, Int32Array.from(batch, (w) => w.length), {
          rows: "none",
          logits: false,
          capture: true,
        });
      } finally {
        for (const s of seqs) session.free(s);
      }
    }
    const out = new Map<string, InputStats>();
    for (const name of names) out.set(name, fromCapture(nm.captureGet(name), nm.linearInfo(name).K, name));
    return out;
  } finally {
    nm.captureStop(names);
  }
}

function selectLinears(nm: NativeModel, sel: QuantizeOptions["linears"]): string[] {
  const pred = sel === undefined ? (n: string) => DEFAULT_LINEARS.test(n) : sel instanceof RegExp ? (n: string) => sel.test(n) : sel;
  return nm.linearNames().filter(pred);
}

/**
 * Quantizes `model` in place to `spec` (a string or a parsed spec). Its KV cache type is chosen when the model is
 * loaded (`kvTypeFor(spec)` → ModelOptions.kvType); the report says which one the spec asks for.
 */
export async function quantizeModel(
  model: LlamaModel,
  specIn: string | QuantSpec,
  opts: QuantizeOptions = {},
): Promise<QuantizeReport> {
  const t0 = performance.now();
  const spec = typeof specIn === "string" ? parseSpec(specIn) : specIn;
  const specStr = formatSpec(spec);
  const nm = model.native;
  const progress = opts.onProgress ?? (() => {});
  const report: QuantizeReport = {
    spec: specStr,
    method: describeMethod(spec),
    execution: { weights: spec.weights ? "packed" : "dense", activations: activationExecution(spec), kv: kvTypeFor(spec) },
    linears: [],
    scalings: [],
    packed: new Map(),
    seconds: 0,
  };
  if (spec.base !== "fp32")
    throw new QuantizeError(
      `${specStr}: dense ${spec.base} weights are chosen when loading (keepDtype with a ${spec.base} checkpoint), not by quantizeModel`,
    );
  if (!spec.weights) {
    report.seconds = (performance.now() - t0) / 1000;
    return report; // KV-only spec: nothing to do to the weights
  }
  const names = selectLinears(nm, opts.linears);
  if (names.length === 0) throw new QuantizeError(`${specStr}: no linear matches the layer selection`);
  for (const n of names) {
    const info = nm.linearInfo(n);
    if (info.quantized) throw new QuantizeError(`${specStr}: linear '${n}' is already quantized (${info.format})`);
  }
  const selected = new Set(names);
  const byLayer = new Map<number, string[]>();
  for (const n of names) {
    const l = layerOf(n);
    byLayer.set(l, [...(byLayer.get(l) ?? []), n]);
  }
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  const needCalib = spec.method.name !== "rtn" || spec.smooth !== null;
  const batchTokens = opts.batchTokens ?? 16384;
  const actMode = report.execution.activations === "kernel" ? "a8" : "sim";

  let windows: Int32Array[] = [];
  let allStats: Map<string, InputStats> | undefined;
  if (needCalib) {
    progress({ stage: "calibrate", message: "drawing calibration windows" });
    const seqlen = Math.min(opts.calibration?.seqlen ?? 512, model.maxContext);
    const cal = opts.calibrationSet ?? sampleCalibration((t) => model.encode(t), { ...opts.calibration, seqlen });
    windows = cal.windows;
    report.calibration = cal.record;
    if (opts.sequential === false) {
      progress({ stage: "capture", message: `capturing ${names.length} linears in one pass` });
      allStats = await capture(model, names, windows, batchTokens);
    }
  }

  for (const [li, l] of layers.entries()) {
    const lin = byLayer.get(l)!;
    let stats = new Map<string, InputStats>();
    if (needCalib) {
      if (allStats) for (const n of lin) stats.set(n, allStats.get(n)!);
      else {
        progress({ stage: "capture", layer: li, layers: layers.length, message: `layer ${l}: capturing inputs` });
        stats = await capture(model, lin, windows, batchTokens);
      }
    }
    if (l >= 0 && needCalib && (spec.smooth || spec.method.name === "awq")) {
      const v = `model.layers.${l}.self_attn.v_proj`, o = `model.layers.${l}.self_attn.o_proj`;
      const vo = nm.linearNames().includes(v) && nm.linearInfo(v).N === nm.linearInfo(o).K;
      const groups = scaleGroups(l, selected, vo);
      progress({ stage: "scale", layer: li, layers: layers.length, message: `layer ${l}: ${spec.smooth ? "smoothing" : "AWQ scale search"}` });
      if (spec.smooth) report.scalings.push(...(await smoothLayer(nm, groups, stats, spec.smooth.alpha)));
      else if (spec.method.name === "awq")
        report.scalings.push(
          ...(await awqScaleLayer(nm, groups, stats, (K) => weightFormat(spec, K, opts.scaleDtype), spec.method)),
        );
    }
    for (const name of lin) {
      const t1 = performance.now();
      const { N, K } = nm.linearInfo(name);
      const fmt = weightFormat(spec, K, opts.scaleDtype);
      progress({ stage: "quantize", layer: li, layers: layers.length, linear: name, message: `${name} [${N}x${K}]` });
      const r: LinearReport = { name, N, K, seconds: 0 };
      let packed: PackedWeight;
      if (spec.method.name === "gptq") {
        const g = await gptqLinear(nm, name, stats.get(name)!, fmt, spec.method);
        r.gptqLoss = g.loss;
        packed = g;
      } else if (spec.method.name === "awq") {
        packed = await awqQuantizeLinear(nm, name, stats.get(name)!, fmt, spec.method);
      } else {
        const q = await rtnQuantize(nm.getLinearWeight(name), N, K, fmt);
        nm.setLinearQuant(name, q.format, q.codes, q.scales, q.zeros);
        packed = q;
      }
      if (spec.activations) nm.setActivation(name, actMode, spec.activations.bits);
      report.packed.set(name, { N, K, format: packed.format, codes: packed.codes, scales: packed.scales, zeros: packed.zeros });
      r.seconds = (performance.now() - t1) / 1000;
      report.linears.push(r);
    }
  }
  report.seconds = (performance.now() - t0) / 1000;
  progress({ stage: "done", message: `${specStr}: ${names.length} linears in ${report.seconds.toFixed(1)} s` });
  return report;
}
