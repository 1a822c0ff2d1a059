// The evaluation loop on the real runtime (stories260K): shared-prefix scoring equals per-request scoring, scores
// and greedy generations do not depend on the batch size, and the efficiency probe reports consistent sizes.
// A `k8v4` spec runs (K int8 and V int4 caches) and is reported with both types.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generateBatched, scoreLoglikelihood } from "../lib/eval/batching.js";
import { sharedRoot } from "../lib/eval/data.js";
import { kvBytesPerToken, NativeEvalModel } from "../lib/eval/native_model.js";
import { loadModel } from "../lib/eval/model_factory.js";
import { encodePair } from "../lib/eval/requests.js";

const dir = join(sharedRoot(), "data/models/stories260K");
const present = existsSync(join(dir, "model.safetensors"));

describe.skipIf(!present)("native model (stories260K)", async () => {
  const model = present ? ((await loadModel(dir, null)) as NativeEvalModel) : (undefined as unknown as NativeEvalModel);
  const contexts = ["Once upon a time, there was a little girl named Lily.", "The dog ran to the park. He saw a big", "Tom and Sue"];
  const conts = [" She liked to play outside.", " ball", " went to the store to buy some candy.", " cat"];
  const requests = contexts.flatMap((c) => conts.map((x) => encodePair(model, c, x)));

  it("shared-prefix scoring equals scoring each request from position 0", async () => {
    const plain = await model.model.loglikelihood(requests, { prefixCache: false });
    const grouped = (await model.loglikelihoodGroups(contexts.map((_, i) => ({ context: requests[i * 4].context, continuations: requests.slice(i * 4, i * 4 + 4).map((r) => r.continuation) })))).flat();
    grouped.forEach((g, i) => {
      expect(Math.abs(g.logprob - plain[i].logprob), `request ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(plain[i].logprob)));
      expect(g.isGreedy).toBe(plain[i].isGreedy);
    });
    expect(new Set(plain.map((p) => p.logprob.toFixed(3))).size).toBeGreaterThan(6);
  });

  it("identical scores at batch sizes 1 and 16", async () => {
    const a = await scoreLoglikelihood(model, requests, { batchSize: 1 });
    const b = await scoreLoglikelihood(model, requests, { batchSize: 16 });
    expect(b).toEqual(a);
  });

  it("greedy generation is the same one prompt at a time and batched", async () => {
    const prompts = contexts.map((c) => model.encode(c, { bos: true }));
    const a = await generateBatched(model, prompts, { maxTokens: 12, temperature: 0 }, { batchSize: 1 });
    const b = await generateBatched(model, prompts, { maxTokens: 12, temperature: 0 }, { batchSize: 4 });
    expect(b.map((x) => x.tokens)).toEqual(a.map((x) => x.tokens));
    expect(a[0].tokens.length).toBeGreaterThan(0);
  });

  it("efficiency probe: weight bytes from the runtime, KV bytes per token from the cache format, timed decode", async () => {
    const probe = model.efficiency();
    expect(probe.weightBytes()).toBeGreaterThan(200_000);
    // stories260K: 5 layers, 4 KV heads, head_dim 8; fp32 K and V
    expect(probe.kvCacheBytes(100, 2)).toBe(2 * 5 * 4 * 8 * 4 * 100 * 2);
    expect(kvBytesPerToken(5, 4, 8, "int8")).toBe(2 * 5 * 4 * (8 + 8));
    const lat = await probe.measureLatency({ contextLength: 64, batchSize: 2, decodeTokens: 5 });
    expect(lat.decodeMs).toHaveLength(5);
    expect(lat.ttftMs).toBeGreaterThan(0);
  });

  it("--quant k8v4 runs with a K int8 and a V int4 cache, reported as both types", async () => {
    const m = (await loadModel(dir, "k8v4")) as NativeEvalModel;
    try {
      expect(m.name.endsWith("@k8v4")).toBe(true);
      const d = m.describe();
      expect(d.kvType).toEqual({ k: "int8", v: "int4" });
      expect((d.quantization as { execution: { kv: unknown } }).execution.kv).toEqual({ k: "int8", v: "int4" });
      const [r] = await m.loglikelihood(requests.slice(0, 1));
      const [ref] = await model.loglikelihood(requests.slice(0, 1));
      expect(Number.isFinite(r.logprob)).toBe(true);
      expect(r.logprob).not.toBe(ref.logprob);  // a quantized cache changes the scores
      const mem = m.describe().memory as Record<string, number>;
      expect(mem["kv:k:int8"]).toBeGreaterThan(0);
      expect(mem["kv:v:int4"]).toBeGreaterThan(0);
      // K: 8 int8 codes + f32 scale and zero; V: 4 bytes of int4 codes + scale and zero; 5 layers x 4 kv heads.
      expect(m.efficiency().kvCacheBytes(10, 3)).toBe(5 * 4 * (8 + 8 + 4 + 8) * 10 * 3);
      expect(kvBytesPerToken(5, 4, 8, { k: "int8", v: "int4" })).toBe(5 * 4 * (16 + 12));
    } finally {
      m.dispose();
    }
  });
});
