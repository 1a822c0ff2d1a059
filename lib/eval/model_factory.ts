/**
 * The seam between `quanteval eval` and whatever builds models: `--model <source>` and one quantization spec (null
 * for the baseline) become an EvalModel. Loaders register themselves by the sources they accept; the first match
 * wins. Built in: `toy:<file>` / `toy:builtin` (the TypeScript bigram test double, ./toy_model.ts), whose only
 * "quantization" is `l<bits>`, rounding its log-probabilities (a toy, marked as such in its name).
 * The native runtime (lib/model) registers the loader for model folders, hub ids and `synthetic:<preset>`.
 */
import { readText } from "./data.js";
import type { EvalModel } from "./model.js";
import { ToyBigramModel } from "./toy_model.js";

export type ModelLoader = (source: string, quant: string | null) => Promise<EvalModel>;

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

/** Builds the model for one setting. */
export async function loadModel(source: string, quant: string | null): Promise<EvalModel> {
  const l = loaders.find((x) => x.accepts(source));
  if (!l) {
    throw new Error(
      `--model: no model loader accepts "${source}" (registered: ${loaders.map((x) => x.name).join(", ")}); ` +
        "model folders, hub ids and synthetic:<preset> need the native runtime (lib/model)",
    );
  }
  return l.load(source, quant);
}
