// Quantization of a real model (stories260K), executed on packed weights and the real kernels:
//  - every golden setting of golden/stories260K.ppl.json reproduces its perplexity (≤ 0.5%, protocol in its
//    `semantics`: BOS + whole-file encoding, non-overlapping 512-token windows, each from position 0);
//  - GPTQ and AWQ beat RTN at w3 and w4 (per channel and g32), SmoothQuant w8a8 is no worse than plain w8a8
//    (on the first 100 windows, calibrated on WikiText-2 validation: disjoint from the evaluated text);
//  - save → load gives bit-identical logits, without recalibrating.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../lib/model/model.js";
import { loadQuantizedModel, saveQuantizedModel } from "../lib/quant/checkpoint.js";
import { kvTypeFor, quantizeModel, type QuantizeOptions } from "../lib/quant/quantize.js";
import { formatSpec, goldenSettingToSpec, isUnsupportedGolden, parseSpec } from "../lib/quant/spec.js";

const shared = process.env.QUANTEVAL_SHARED ?? path.resolve(import.meta.dirname, "../../shared");
const modelDir = path.join(shared, "data/models/stories260K");
const textFile = path.join(shared, "data/datasets/tinystories_val_subset/tinystories_val_subset.txt");
const goldenFile = path.join(shared, "golden/stories260K.ppl.json");
const have = existsSync(modelDir) && existsSync(textFile) && existsSync(goldenFile);

type Golden = { results: Record<string, { tinystories_L512?: { ppl: number; windows: number } }> };

async function load(spec: string): Promise<LlamaModel> {
  return LlamaModel.fromDir(modelDir, { kvType: kvTypeFor(parseSpec(spec)) });
}

/** Perplexity over the first `limit` non-overlapping windows of L tokens of the BOS-prefixed stream. */
async function perplexity(m: LlamaModel, stream: Int32Array, L: number, limit = Infinity) {
  const n = Math.min(limit, Math.floor(stream.length / L));
  const windows = Array.from({ length: n }, (_, i) => stream.subarray(i * L, (i + 1) * L));
  const scores = await m.scoreWindows(windows);
  let nll = 0, count = 0;
  for (const s of scores) for (const lp of s.logprobs) (nll -= lp), count++;
  return { ppl: Math.exp(nll / count), windows: n };
}

describe.skipIf(!have)("quantized stories260K on the real kernels", () => {
  let stream: Int32Array;
  let golden: Golden;
  beforeAll(async () => {
    const m = await load("fp32");
    stream = Int32Array.from(m.encode(readFileSync(textFile, "utf8"), { bos: true }));
    golden = JSON.parse(readFileSync(goldenFile, "utf8")) as Golden;
  });

  const only = process.env.QUANTEVAL_GOLDEN_SETTINGS?.split(",").map((x) => x.trim());
  const names = (have ? Object.keys((JSON.parse(readFileSync(goldenFile, "utf8")) as Golden).results) : []).filter(
    (n) => !only || only.includes(n),
  );
  for (const name of names) {
    const mapped = goldenSettingToSpec(name);
    if (isUnsupportedGolden(mapped)) {
      it(`golden '${name}' has no packed format and is reported as such`, () => {
        expect(mapped.reason).toMatch(/no (packed )?format/);
      });
      continue;
    }
    const spec = formatSpec(mapped);
    it(`golden '${name}' (${spec}): perplexity within 0.5% of the float64 reference`, async () => {
      const want = golden.results[name].tinystories_L512!;
      const m = await load(spec);
      const rep = await quantizeModel(m, spec);
      if (mapped.weights) {
        expect(rep.packed.size).toBe(35); // 5 layers × 7 linears, all packed
        const info = m.native.linearInfo("model.layers.2.mlp.down_proj");
        expect(info.quantized).toBe(true);
        expect(info.quant).toMatchObject({ bits: mapped.weights.bits, symmetric: mapped.weights.symmetric });
      }
      expect(m.execution).toBe(rep.execution.activations === "simulated" ? "simulated" : "native");
      const got = await perplexity(m, stream, 512);
      expect(got.windows).toBe(want.windows);
      const rel = Math.abs(got.ppl - want.ppl) / want.ppl;
      console.log(`golden ${name.padEnd(11)} ${spec.padEnd(9)} ppl ${got.ppl.toFixed(5)} ref ${want.ppl.toFixed(5)} rel ${rel.toExponential(2)} [${rep.execution.activations}]`);
      expect(rel).toBeLessThanOrEqual(0.005);
    });
  }

  describe("calibrated methods vs RTN (first 100 windows)", () => {
    const W = 100;
    const calib: QuantizeOptions = { calibration: { nsamples: 128, seqlen: 256, seed: 0 } };
    const results = new Map<string, number>();
    async function ppl(spec: string): Promise<number> {
      if (!results.has(spec)) {
        const m = await load(spec);
        await quantizeModel(m, spec, calib);
        results.set(spec, (await perplexity(m, stream, 512, W)).ppl);
      }
      return results.get(spec)!;
    }
    for (const w of ["w3", "w4", "w3g32", "w4g32"])
      it(`GPTQ and AWQ beat RTN at ${w}`, async () => {
        const [rtn, gptq, awq] = [await ppl(w), await ppl(`${w}+gptq`), await ppl(`${w}+awq`)];
        console.log(`${w.padEnd(6)} rtn ${rtn.toFixed(4)}  gptq ${gptq.toFixed(4)}  awq ${awq.toFixed(4)}`);
        expect(gptq).toBeLessThan(rtn);
        expect(awq).toBeLessThan(rtn);
      });
    it("SmoothQuant w8a8 is no worse than plain w8a8", async () => {
      const [plain, sq] = [await ppl("w8a8"), await ppl("w8a8+sq0.5")];
      console.log(`w8a8 ${plain.toFixed(5)}  w8a8+sq0.5 ${sq.toFixed(5)}`);
      expect(sq).toBeLessThanOrEqual(plain);
    });
  });

  for (const spec of ["w3g32+awq", "w8a8+sq0.5+gptq", "w4a4kv4", "w6g32+gptq"])
    it(`save → load of ${spec} gives identical logits without recalibration`, async () => {
      const m = await load(spec);
      const rep = await quantizeModel(m, spec, { calibration: { nsamples: 8, seqlen: 128 } });
      const dir = mkdtempSync(path.join(tmpdir(), "qe-qmodel-"));
      const meta = saveQuantizedModel(dir, m, rep);
      expect(meta.spec).toBe(formatSpec(parseSpec(spec)));
      if (rep.calibration) expect(meta.calibration?.sha256).toBe(rep.calibration.sha256);
      const { model: back } = await loadQuantizedModel(dir, { expectSpec: spec });
      expect(back.native.linearInfo("model.layers.0.self_attn.q_proj").quantized).toBe(true);
      const seqs = [stream.subarray(0, 300), stream.subarray(5000, 5100)];
      const a = await m.forward(seqs, { rows: "all" });
      const b = await back.forward(seqs, { rows: "all" });
      expect(b.logits!.length).toBe(a.logits!.length);
      expect(Buffer.compare(Buffer.from(b.logits!.buffer), Buffer.from(a.logits!.buffer))).toBe(0);
      expect(back.execution).toBe(m.execution);
      await expect(loadQuantizedModel(dir, { expectSpec: "w4g128" })).rejects.toThrow(/spec mismatch/);
    });
});
