/**
 * Quantizing a loaded model according to a spec: which linears, in what order, with which calibration data, and
 * how activations and the KV cache run. The arithmetic is native (numerics.ts → native/calib, the runtime's RTN,
 * capture and layer-wise execution); this file is the orchestration.
 *
 * Order (sequential quantization, GPTQ's and AWQ's): for each decoder layer l, the calibration windows' hidden
 * states at layer l's input — produced by layers < l already quantized, activations included — are run through
 * layer l with capture on, collecting for each of its linears what the method needs (one pass, all seven linears
 * at once; GPTQ's `--true-sequential` would take four): GPTQ the Hessian Σxᵀx, AWQ a seeded sample of input rows
 * (`awqSamples`), SmoothQuant per-channel max |x|; mean |x| always. Then, within the layer: SmoothQuant or AWQ
 * scales are searched and folded into the model (groups.ts), every linear is quantized (GPTQ with the rescaled
 * Hessian, AWQ's clipping search + RTN, or RTN) and installed packed with its activation mode, and the hidden states
 * advance through the quantized layer (NativeModel.layerForward): 2 layer passes per layer, and only one layer's
 * statistics held at a time. `sequential: false` captures every layer in one prefill over the unquantized model
 * instead (memory for every layer's statistics at once; what SmoothQuant does).
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
import { Rng } from "./random.js";
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
  /** AWQ: input rows sampled (seeded, from every calibration token) to score the scale and clipping candidates on
   * (default 512). */
  awqSamples?: number;
  /** AWQ: what the candidates are scored on. 'auto' (default): per linear, the row sample when K > awqSamples
   * (n·N·K per candidate, cheaper than N·K², and no Hessian capture), else the Hessian of every calibration token
   * (cheaper there, and exact). 'samples' / 'hessian' force one. */
  awqScoring?: "auto" | "samples" | "hessian";
  onProgress?: (p: QuantizeProgress) => void;
  /** Called as each decoder layer is done, with its timings (benchmarks log these as they come). */
  onLayer?: (r: LayerReport) => void;
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
  /** Per quantized decoder layer: seconds advancing the hidden states to its input (the passes through the layers
   * before it since the previous one), capturing (its pass with capture on), searching and folding scales, and
   * quantizing its linears. */
  layers: LayerReport[];
  /** What the calibration held at its peak: the runtime's capture buffers (memory()["calibration"]) and the JS
   * hidden states of the layer-wise pass ([tokens, D] fp32, two copies while a layer runs). */
  calibrationMemory?: { peakCaptureBytes: number; hiddenBytes: number; sampledRows?: number };
  seconds: number;
}

export interface LayerReport {
  layer: number;
  captureSeconds: number;
  scaleSeconds: number;
  quantizeSeconds: number;
  forwardSeconds: number;
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
  const t = (bits: number): KVType =>
    bits === 16 ? "f16" : bits === 8 ? "int8" : bits === 4 ? "int4" : bits === 3 ? "int3" : "int2";
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
/** What a capture collects (see the module comment). */
interface CaptureKind {
  hessian: boolean;
  sampleRows?: Int32Array;
}

/** `n` distinct row indices out of `total`, increasing, from a seeded partial Fisher–Yates shuffle. */
export function sampleRowIndices(total: number, n: number, seed: number): Int32Array {
  if (n >= total) return Int32Array.from({ length: total }, (_, i) => i);
  const idx = Int32Array.from({ length: total }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) {
    const j = i + rng.int(total - i);
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx.slice(0, n).sort();
}

/** Starts the captures of `names`, each with its kind (one native call per distinct kind). */
function startCapture(nm: NativeModel, names: string[], kind: (name: string) => CaptureKind): void {
  const byKind = new Map<CaptureKind, string[]>();
  for (const n of names) byKind.set(kind(n), [...(byKind.get(kind(n)) ?? []), n]);
  for (const [k, ns] of byKind) nm.captureStart(ns, k);
}

function collect(nm: NativeModel, names: string[]): Map<string, InputStats> {
  const out = new Map<string, InputStats>();
  // The numerics take H in fp32: have the runtime round it (no fp64 copy, no conversion in JS).
  for (const name of names) out.set(name, fromCapture(nm.captureGet(name, { hessianF32: true }), nm.linearInfo(name).K, name));
  return out;
}

async function capture(
  model: LlamaModel,
  names: string[],
  windows: readonly Int32Array[],
  batchTokens: number,
  kind: (name: string) => CaptureKind,
  onCapturing: () => void = () => {},
): Promise<Map<string, InputStats>> {
  const nm = model.native;
  const session = model.newSession({ kvType: "f32" });
  startCapture(nm, names, kind);
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
    onCapturing();
    return collect(nm, names);
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
    layers: [],
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
  const awqSamples = opts.awqSamples ?? 512;
  if (!Number.isInteger(awqSamples) || awqSamples < 0)
    throw new QuantizeError(`awqSamples: expected an integer >= 0, got ${awqSamples}`);

  let windows: Int32Array[] = [];
  let allStats: Map<string, InputStats> | undefined;
  const scoring = opts.awqScoring ?? "auto";
  if (!["auto", "samples", "hessian"].includes(scoring))
    throw new QuantizeError(`awqScoring: expected 'auto', 'samples' or 'hessian', got '${scoring}'`);
  if (scoring === "samples" && awqSamples === 0) throw new QuantizeError("awqScoring 'samples' needs awqSamples > 0");
  const hessianKind: CaptureKind = { hessian: true };
  const plainKind: CaptureKind = { hessian: false };
  const sampleKind: CaptureKind = { hessian: false };
  const kind = (name: string): CaptureKind => {
    if (spec.method.name === "gptq") return hessianKind;
    if (spec.method.name !== "awq") return plainKind; // SmoothQuant: max |x| only
    const K = nm.linearInfo(name).K;
    const samples = scoring === "samples" || (scoring === "auto" && awqSamples > 0 && K > awqSamples);
    return samples ? sampleKind : hessianKind;
  };
  let peakCapture = 0;
  const notePeak = () => (peakCapture = Math.max(peakCapture, nm.memory()["calibration"] ?? 0));
  // Layer-wise hidden states: input rows of decoder layer `cur` for every window, concatenated [Σ tokens, D].
  let hidden: Float32Array | undefined;
  let counts = new Int32Array(0);
  let cur = 0;
  if (needCalib) {
    progress({ stage: "calibrate", message: "drawing calibration windows" });
    const seqlen = Math.min(opts.calibration?.seqlen ?? 512, model.maxContext);
    const cal = opts.calibrationSet ?? sampleCalibration((t) => model.encode(t), { ...opts.calibration, seqlen });
    windows = cal.windows;
    report.calibration = cal.record;
    counts = Int32Array.from(windows, (w) => w.length);
    const total = windows.reduce((a, w) => a + w.length, 0);
    if (spec.method.name === "awq" && awqSamples > 0) {
      // The same rows for every linear (they all see the tokens in the same order); seed derived from the windows'.
      sampleKind.sampleRows = sampleRowIndices(total, awqSamples, (cal.record.seed ^ 0x5eed) >>> 0);
    }
    if (opts.sequential === false) {
      progress({ stage: "capture", message: `capturing ${names.length} linears in one pass` });
      allStats = await capture(model, names, windows, batchTokens, kind, notePeak);
    }
  }

  /** Runs the hidden states through decoder layers [cur, l) (quantized ones as quantized). */
  const advanceTo = async (l: number) => {
    if (!hidden) {
      const tokens = new Int32Array(counts.reduce((a, c) => a + c, 0));
      let o = 0;
      for (const w of windows) {
        tokens.set(w, o);
        o += w.length;
      }
      hidden = await nm.embed(tokens);
    }
    for (; cur < l; cur++) hidden = await nm.layerForward(cur, hidden, counts);
  };

  for (const [li, l] of layers.entries()) {
    const lin = byLayer.get(l)!;
    const lr: LayerReport = { layer: l, captureSeconds: 0, scaleSeconds: 0, quantizeSeconds: 0, forwardSeconds: 0 };
    let stats = new Map<string, InputStats>();
    let tc = performance.now();
    if (needCalib) {
      if (allStats) for (const n of lin) stats.set(n, allStats.get(n)!);
      else if (l < 0) {
        // Not a decoder layer (lm_head): captured by a prefill of the whole model.
        progress({ stage: "capture", layer: li, layers: layers.length, message: `${lin.join(", ")}: capturing inputs` });
        stats = await capture(model, lin, windows, batchTokens, kind, notePeak);
      } else {
        await advanceTo(l);
        lr.forwardSeconds = (performance.now() - tc) / 1000;
        tc = performance.now();
        progress({ stage: "capture", layer: li, layers: layers.length, message: `layer ${l}: capturing inputs` });
        startCapture(nm, lin, kind);
        try {
          await nm.layerForward(l, hidden!, counts, { capture: true });
          notePeak();
          stats = collect(nm, lin);
        } finally {
          nm.captureStop(lin);
        }
      }
    }
    lr.captureSeconds = (performance.now() - tc) / 1000;
    const ts = performance.now();
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
    lr.scaleSeconds = (performance.now() - ts) / 1000;
    const tq = performance.now();
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
    lr.quantizeSeconds = (performance.now() - tq) / 1000;
    if (l >= 0) {
      report.layers.push(lr);
      opts.onLayer?.(lr);
    }
  }
  if (needCalib)
    report.calibrationMemory = {
      peakCaptureBytes: peakCapture,
      hiddenBytes: hidden ? 2 * hidden.byteLength : 0,
      ...(names.some((n) => kind(n) === sampleKind) ? { sampledRows: sampleKind.sampleRows!.length } : {}),
    };
  report.seconds = (performance.now() - t0) / 1000;
  progress({ stage: "done", message: `${specStr}: ${names.length} linears in ${report.seconds.toFixed(1)} s` });
  return report;
}
