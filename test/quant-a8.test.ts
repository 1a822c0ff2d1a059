// Grouped int8-activation settings on a real model (stories260K): w4g32a8 / w3g32a8 run every packed linear on the
// integer kernel (gemm_w8a8, execution.activations = 'kernel', model execution 'native'), and their perplexity is
// within 0.1% of the same weights with simulated activations (fake-quantized to 8 bits, then the fp32-activation
// weight kernel) — the two differ only by fp32 rounding of the rescale. First 50 windows of 512 tokens.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../lib/model/model.js";
import { quantizeModel } from "../lib/quant/quantize.js";

const shared = process.env.QUANTEVAL_SHARED ?? path.resolve(import.meta.dirname, "../../shared");
const modelDir = path.join(shared, "data/models/stories260K");
const textFile = path.join(shared, "data/datasets/tinystories_val_subset/tinystories_val_subset.txt");
const have = existsSync(modelDir) && existsSync(textFile);

async function perplexity(m: LlamaModel, stream: Int32Array, L: number, limit: number): Promise<number> {
  const n = Math.min(limit, Math.floor(stream.length / L));
  const windows = Array.from({ length: n }, (_, i) => stream.subarray(i * L, (i + 1) * L));
  let nll = 0, count = 0;
  for (const s of await m.scoreWindows(windows)) for (const lp of s.logprobs) (nll -= lp), count++;
  return Math.exp(nll / count);
}

describe.skipIf(!have)("grouped a8 on stories260K: integer kernel vs simulated activations", () => {
  let stream: Int32Array;
  beforeAll(async () => {
    const m = await LlamaModel.fromDir(modelDir);
    stream = Int32Array.from(m.encode(readFileSync(textFile, "utf8"), { bos: true }));
    m.dispose();
  });

  for (const spec of ["w4g32a8", "w3g32a8"])
    it(`${spec}: kernel perplexity within 0.1% of simulated`, async () => {
      const m = await LlamaModel.fromDir(modelDir);
      const rep = await quantizeModel(m, spec);
      expect(rep.execution.activations).toBe("kernel");
      expect(rep.packed.size).toBe(35);
      expect(m.execution).toBe("native");
      const kernel = await perplexity(m, stream, 512, 50);
      // Same packed weights, activations fake-quantized to 8 bits instead.
      for (const n of m.native.linearNames()) if (m.native.linearInfo(n).quantized) m.native.setActivation(n, "sim", 8);
      expect(m.execution).toBe("simulated");
      const sim = await perplexity(m, stream, 512, 50);
      const fp = await (async () => {
        for (const n of m.native.linearNames()) m.native.setActivation(n, "none");
        return perplexity(m, stream, 512, 50);
      })();
      const rel = Math.abs(kernel - sim) / sim;
      console.log(`${spec}: kernel ppl ${kernel.toFixed(5)}, simulated ${sim.toFixed(5)} (rel ${rel.toExponential(2)}), fp32 activations ${fp.toFixed(5)}`);
      expect(rel).toBeLessThanOrEqual(1e-3);
      // The activation quantization is really applied: a8 differs from exact fp32 activations.
      expect(kernel).not.toBe(fp);
      m.dispose();
    });
});
