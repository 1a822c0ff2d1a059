// stories260K perplexity on the TinyStories subset against shared/golden/stories260K.ppl.json (protocol in its
// `semantics`: the whole file encoded with one BOS, non-overlapping 512-token windows each from position 0, the
// remainder dropped), with the KV cache stored as fp32, int8 and int4 (real quantized cache + attention kernels).
// Bound: relative difference <= 0.5% (the golden is a float64 fake-quant reference).
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../lib/model/model.js";
import { sharedPath } from "../lib/model/shared.js";

const golden = JSON.parse(readFileSync(sharedPath("golden", "stories260K.ppl.json"), "utf8"));
let windows: Int32Array[];
let model: LlamaModel;

beforeAll(async () => {
  model = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
  const text = readFileSync(sharedPath("data", "datasets", "tinystories_val_subset", "tinystories_val_subset.txt"), "utf8");
  const ids = model.encode(text);
  expect(ids.length).toBe(golden.tokens.tinystories_val_subset);
  const L = 512;
  windows = Array.from({ length: Math.floor(ids.length / L) }, (_, w) => Int32Array.from(ids.slice(w * L, (w + 1) * L)));
});

describe("stories260K TinyStories perplexity vs golden", () => {
  for (const [kv, key] of [["f32", "fp32"], ["int8", "kv8"], ["int4", "kv4"]] as const) {
    it(`KV cache ${kv} equals golden ${key} within 0.5%`, async () => {
      const want = golden.results[key].tinystories_L512;
      model.setKvType(kv);
      let nll = 0, n = 0;
      const scores = await model.scoreWindows(windows);
      for (const s of scores) for (const x of s.logprobs) { nll -= x; n++; }
      expect(windows.length).toBe(want.windows);
      expect(n).toBe(want.predicted_tokens);
      const ppl = Math.exp(nll / n);
      expect(Math.abs(ppl / want.ppl - 1)).toBeLessThan(0.005);
      if (kv === "f32") expect(Math.abs(ppl / want.ppl - 1)).toBeLessThan(1e-5);
      expect(model.session.memory()[`kv:${kv}`]).toBeGreaterThan(0);
    });
  }
});
