/**
 * The seam between `quanteval eval` and whatever builds models: `--model <source>` and one quantization spec (null
 * for the baseline) become an EvalModel. Loaders register themselves by the sources they accept; the most recently
 * registered match wins. Built in: `toy:<file>` / `toy:builtin` (the TypeScript bigram test double, ./toy_model.ts), whose only
 * "quantization" is `l<bits>`, rounding its log-probabilities (a toy, marked as such in its name).
 * The native runtime (lib/model + lib/quant) loads everything else: folders, quantized checkpoints, presets, hub ids.
 */
import { existsSync } from "node:fs";
import { readText } from "./data.js";
import type { EvalModel } from "./model.js";
import { ToyBigramModel } from "./toy_model.js";

export interface LoadOptions {
  /** Tokenizer folder (tokenizer.json …) for models without one (synthetic presets). */
  tokenizer?: string;
  /** Dataset folder, for calibration data. */
  dataDir?: string;
  log?: (line: string) => void;
}

export type ModelLoader = (source: string, quant: string | null, opts: LoadOptions) => Promise<EvalModel>;

interface Registered {
  name: string;
  accepts: (source: string) => boolean;
  load: ModelLoader;
}

const loaders: Registered[] = [];

export function registerModelLoader(name: string, accepts: (source: string) => boolean, load: ModelLoader): void {
  loaders.push({ name, accepts, load });
}

export const TOY_BUILTIN_TEXT =
  "Once upon a time there was a little cat. The cat sat on the mat. The dog sat on the log. " +
  "The sky is blue and the grass is green. It was a sunny day in the park and the children played.";

registerModelLoader(
  "toy",
  (s) => s.startsWith("toy:"),
  async (source, quant) => {
    const arg = source.slice(4);
    const text = arg === "builtin" ? TOY_BUILTIN_TEXT : readText(arg);
    let logitBits: number | undefined;
    if (quant !== null) {
      const m = /^l(\d+)$/.exec(quant);
      if (!m) throw new Error(`--quant: the toy model accepts only "l<bits>" (log-probability rounding), got "${quant}"`);
      logitBits = Number(m[1]);
    }
    return new ToyBigramModel(text, { name: quant ? `toy@${quant}` : "toy", logitBits, chat: true });
  },
);

/**
 * The native runtime: a model folder (config.json, safetensors, tokenizer.json), a quantized checkpoint saved by
 * `quanteval quantize`, `synthetic:<preset>`, or a hub id (downloaded into the cache by lib/model/hub.ts). Loaded
 * with the KV-cache type the spec asks for and quantized in place by lib/quant (RTN, GPTQ, AWQ, SmoothQuant).
 */
registerModelLoader(
  "native",
  (s) => !s.startsWith("toy:"),
  async (source, quant, opts) => {
    const [{ LlamaModel }, { Tokenizer }, { parseSpec, formatSpec }, { quantizeModel, kvTypeFor }, { isQuantizedCheckpoint, loadQuantizedModel }, { NativeEvalModel }] =
      await Promise.all([
        import("../model/model.js"),
        import("../model/tokenizer.js"),
        import("../quant/spec.js"),
        import("../quant/quantize.js"),
        import("../quant/checkpoint.js"),
        import("./native_model.js"),
      ]);
    const spec = quant === null ? null : parseSpec(quant);
    let kvType = spec ? kvTypeFor(spec) : "f32";
    let quantization: Record<string, unknown> | undefined;
    let model;
    if (existsSync(source) && isQuantizedCheckpoint(source)) {
      if (spec) throw new Error(`--quant: ${source} is already a quantized checkpoint; evaluate it without --quant, or quantize its source model`);
      const q = await loadQuantizedModel(source);
      model = q.model;
      kvType = kvTypeFor(parseSpec(q.meta.spec));
      quantization = { checkpoint: source, spec: q.meta.spec };
    } else {
      model = await LlamaModel.load(source, { kvType });
    }
    if (spec) {
      opts.log?.(`quantizing ${model.name} to ${formatSpec(spec)}`);
      const r = await quantizeModel(model, spec, { calibration: opts.dataDir ? { dataRoot: opts.dataDir } : undefined });
      quantization = { spec: r.spec, method: r.method, execution: r.execution, calibration: r.calibration, seconds: r.seconds, linears: r.linears.length };
    }
    const tokenizer = opts.tokenizer ? Tokenizer.fromDir(opts.tokenizer) : undefined;
    return new NativeEvalModel(model, { name: spec ? `${model.name}@${formatSpec(spec)}` : model.name, kvType, tokenizer, quantization });
  },
);

/** Builds the model for one setting. */
export async function loadModel(source: string, quant: string | null, opts: LoadOptions = {}): Promise<EvalModel> {
  // Loaders registered later take precedence (a library user's loader overrides the built-in catch-all).
  const l = [...loaders].reverse().find((x) => x.accepts(source));
  if (!l) {
    throw new Error(
      `--model: no model loader accepts "${source}" (registered: ${loaders.map((x) => x.name).join(", ")}); ` +
        "give a local model folder (config.json, *.safetensors, tokenizer.json) or synthetic:<preset>; hub ids are not downloaded by this build",
    );
  }
  return l.load(source, quant, opts);
}
