// Runtime behaviour on stories260K: batching never changes results, prefill+decode equals one full forward,
// greedy generation reproduces llama2.c's reference output and is identical across batch sizes, scoring outputs
// agree with each other, calibration capture equals a direct computation, channel scaling leaves the function
// unchanged, RTN quantization runs the packed kernels.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../lib/model/model.js";
import { sharedPath } from "../lib/model/shared.js";

let model: LlamaModel;
let text: string;
const V = 512;

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

beforeAll(async () => {
  model = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
  text = readFileSync(sharedPath("data", "datasets", "tinystories_val_subset", "tinystories_val_subset.txt"), "utf8").slice(0, 20000);
});

// Prompts of different lengths cut from the dataset.
function prompts(n: number): number[][] {
  const ids = model.encode(text);
  return Array.from({ length: n }, (_, i) => [1, ...ids.slice(1 + i * 97, 1 + i * 97 + 5 + ((i * 37) % 60))]);
}

describe("stories260K runtime", () => {
  it("batched prefill equals single-sequence prefill exactly", async () => {
    const ps = prompts(6);
    const batched = await model.forward(ps, { rows: "all" });
    let off = 0;
    for (const p of ps) {
      const single = await model.forward([p], { rows: "all" });
      expect(maxDiff(single.logits!, batched.logits!.subarray(off * V, (off + p.length) * V))).toBe(0);
      off += p.length;
    }
  });

  it("prefill then decode equals one full forward; batched decode equals single decode", async () => {
    const ps = prompts(5);
    const s = model.newSession();
    const seqs = ps.map(() => s.alloc());
    // Prefill all but the last 3 tokens, then decode those 3 one at a time for the whole batch.
    const pre = ps.map((p) => p.slice(0, p.length - 3));
    await s.prefill(Int32Array.from(seqs), Int32Array.from(pre.flat()), Int32Array.from(pre, (p) => p.length), { rows: "none" });
    const full = await model.forward(ps, { rows: "all" });
    const offs = ps.map((_, i) => ps.slice(0, i).reduce((a, p) => a + p.length, 0));
    for (let k = 3; k >= 1; k--) {
      const toks = Int32Array.from(ps, (p) => p[p.length - k]);
      const lg = await s.decode(Int32Array.from(seqs), toks);
      for (let b = 0; b < ps.length; b++) {
        const row = full.logits!.subarray((offs[b] + ps[b].length - k) * V, (offs[b] + ps[b].length - k + 1) * V);
        expect(maxDiff(lg.subarray(b * V, (b + 1) * V), row)).toBeLessThan(1e-4);
      }
    }
    // A single-sequence decode of the same step equals row 0 of the batched decode.
    const s1 = model.newSession();
    const id = s1.alloc();
    await s1.prefill(Int32Array.of(id), Int32Array.from(ps[0]), Int32Array.of(ps[0].length), { rows: "none" });
    const b1 = await s.decode(Int32Array.from(seqs), Int32Array.from(ps, () => 5));
    const one = await s1.decode(Int32Array.of(id), Int32Array.of(5));
    expect(maxDiff(one, b1.subarray(0, V))).toBeLessThan(1e-5);
    for (const q of seqs) s.free(q);
    expect(s.memory()["kv:f32"]).toBeGreaterThan(0);
  });

  it("greedy generation from BOS reproduces llama2.c's reference and is identical across batch sizes and runs", async () => {
    // shared/data/models/stories260K/PROVENANCE.txt: `run stories260K.bin -t 0.0 -n 200` output (200 generated tokens after BOS).
    const expected = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\nLily didn't want to help her mom, so she";
    const one = await model.generate([1], { maxTokens: 200 });
    expect(one.text).toBe(expected);
    expect(one.finishReason).toBe("length");
    const streamed: number[] = [];
    const again = await model.generate([1], { maxTokens: 200, onToken: (id) => streamed.push(id) });
    expect(again.tokens).toEqual(one.tokens);
    expect(streamed).toEqual(one.tokens);
    const ps = prompts(7);
    for (const bs of [4, 16]) {
      const batch = await model.generateBatch([[1], ...ps, ...Array(Math.max(0, bs - 8)).fill([1])].slice(0, bs), { maxTokens: 60 });
      expect(batch[0].tokens).toEqual(one.tokens.slice(0, 60));
      for (let i = 1; i < Math.min(bs, 8); i++) {
        const solo = await model.generate(ps[i - 1], { maxTokens: 60 });
        expect(batch[i].tokens).toEqual(solo.tokens);
      }
    }
  });

  it("stops at stop strings and samples reproducibly from a seed", async () => {
    const r = await model.generate([1], { maxTokens: 100, stop: ["Lily"] });
    expect(r.finishReason).toBe("stop");
    expect(r.text).toBe("Once upon a time, there was a little girl named ");
    const a = await model.generate([1], { maxTokens: 40, temperature: 1, topK: 40, topP: 0.9, seed: 7 });
    const b = await model.generate([1], { maxTokens: 40, temperature: 1, topK: 40, topP: 0.9, seed: 7 });
    const c = await model.generate([1], { maxTokens: 40, temperature: 1, topK: 40, topP: 0.9, seed: 8 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    const parts: string[] = [];
    for await (const t of model.stream([1], { maxTokens: 20 })) parts.push(t.text);
    expect(parts.join("")).toBe((await model.generate([1], { maxTokens: 20 })).text);
  });

  it("scoring is batch-independent and consistent with logits", async () => {
    const ids = model.encode(text);
    const wins = Array.from({ length: 5 }, (_, w) => Int32Array.from(ids.slice(w * 128, w * 128 + 64 + w * 16)));
    const all = await model.scoreWindows(wins, { logSoftmax: true });
    for (const [i, w] of wins.entries()) {
      const [solo] = await model.scoreWindows([w], { logSoftmax: true });
      expect(Array.from(solo.logprobs)).toEqual(Array.from(all[i].logprobs));
      // logprobs equal the gathered log-softmax rows and the logits' own log-softmax.
      const f = await model.forward([Array.from(w)], { rows: "all" });
      for (let t = 0; t < w.length - 1; t++) {
        const row = f.logits!.subarray(t * V, (t + 1) * V);
        let mx = -Infinity;
        for (const x of row) mx = Math.max(mx, x);
        let s = 0;
        for (const x of row) s += Math.exp(x - mx);
        const lp = row[w[t + 1]] - mx - Math.log(s);
        expect(Math.abs(all[i].logprobs[t] - lp)).toBeLessThan(1e-4);
        expect(Math.abs(all[i].logSoftmax![t * V + w[t + 1]] - all[i].logprobs[t])).toBeLessThan(1e-5);
      }
    }
    const reqs = [
      { context: [1, 403, 407], continuation: [261, 378] },
      { context: [1], continuation: [403, 407, 261] },
      { context: ids.slice(0, 40), continuation: ids.slice(40, 45) },
    ];
    const ll = await model.loglikelihood(reqs);
    for (const [i, r] of reqs.entries()) {
      const [solo] = await model.loglikelihood([r]);
      expect(solo).toEqual(ll[i]);
    }
    expect(ll[0].logprob).toBeLessThan(0);
    // "Once upon a time" after BOS is the model's greedy continuation (see the generation test).
    expect(ll[1].isGreedy).toBe(true);
  });

  it("capture accumulates the Hessian and channel statistics of a linear's input", async () => {
    const m = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
    const name = "model.layers.1.mlp.down_proj";
    m.native.captureStart([name, "model.layers.0.self_attn.q_proj"]);
    const ps = prompts(3);
    const s = m.newSession();
    const ids = ps.map(() => s.alloc());
    await s.prefill(Int32Array.from(ids), Int32Array.from(ps.flat()), Int32Array.from(ps, (p) => p.length), { rows: "none", capture: true });
    const c = m.native.captureGet(name);
    const rows = ps.reduce((a, p) => a + p.length, 0);
    expect(c.rows).toBe(rows);
    const K = 172;
    expect(c.hessian!.length).toBe(K * K);
    // Symmetric, positive diagonal; mean|x| <= max|x|; trace(H) = sum over rows of |x|^2 >= (sum |x|)^2 / (rows*K).
    for (let i = 0; i < K; i += 13) {
      expect(c.hessian![i * K + i]).toBeGreaterThan(0);
      for (let j = 0; j < K; j += 17) expect(c.hessian![i * K + j]).toBe(c.hessian![j * K + i]);
      expect(c.absMean[i]).toBeLessThanOrEqual(c.absMax[i]);
      expect(c.absMax[i] ** 2 * rows).toBeGreaterThanOrEqual(c.hessian![i * K + i] * (1 - 1e-6));
    }
    // Running the same prompts again doubles every statistic.
    for (const id of ids) s.truncate(id, 0);
    await s.prefill(Int32Array.from(ids), Int32Array.from(ps.flat()), Int32Array.from(ps, (p) => p.length), { rows: "none", capture: true });
    const c2 = m.native.captureGet(name);
    expect(c2.rows).toBe(2 * rows);
    expect(Math.abs(c2.hessian![5 * K + 9] - 2 * c.hessian![5 * K + 9])).toBeLessThan(1e-9 * Math.abs(c.hessian![5 * K + 9]) + 1e-12);
    m.native.captureStop();
    expect(() => m.native.captureGet(name)).toThrow(/no capture/);
  });

  it("folding per-channel scales into the previous RMSNorm leaves the logits unchanged", async () => {
    const m = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
    const p = prompts(1)[0];
    const before = await m.forward([p]);
    const s = Float32Array.from({ length: 64 }, (_, i) => 0.5 + (i % 7) * 0.3);
    m.native.scaleChannels("model.layers.2.input_layernorm",
      ["model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.k_proj", "model.layers.2.self_attn.v_proj"], s);
    const after = await m.forward([p]);
    expect(maxDiff(before.logits!, after.logits!)).toBeLessThan(1e-4);
    expect(() => m.native.scaleChannels("model.layers.2.input_layernorm", ["model.layers.2.mlp.down_proj"], s)).toThrow(/has 172 input channels/);
  });

  it("RTN quantization runs packed weights, reports memory by format, and a8 is native only per channel", async () => {
    const m = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
    const p = prompts(1)[0];
    const ref = await m.forward([p]);
    for (const n of m.native.linearNames()) if (n !== "lm_head") await m.native.quantizeLinear(n, { bits: 8, groupSize: 1 << 30 });
    const info = m.native.linearInfo("model.layers.0.mlp.down_proj");
    expect(info).toMatchObject({ quantized: true, format: "q8", K: 172, N: 64 });
    const q8 = await m.forward([p]);
    const d = maxDiff(ref.logits!, q8.logits!);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(0.2);
    const mem = m.memory();
    expect(mem["weights:q8"]).toBeGreaterThan(0);
    expect(mem["weights:f32"]).toBeUndefined();
    m.native.setActivation("model.layers.0.mlp.down_proj", "a8");
    expect(m.native.linearInfo("model.layers.0.mlp.down_proj").execution).toBe("native");
    expect(m.execution).toBe("native");
    m.native.setActivation("model.layers.0.mlp.up_proj", "sim", 4);
    expect(m.execution).toBe("simulated");
    await m.native.quantizeLinear("model.layers.1.mlp.up_proj", { bits: 4, groupSize: 32 });
    expect(m.native.linearInfo("model.layers.1.mlp.up_proj").format).toBe("q4g32");
    // The packed weight as the kernels see it equals dequantize(RTN) within a half step of its group's scale.
    expect(() => m.native.quantizeLinear("nope", { bits: 4, groupSize: 32 })).toThrow(/no linear named 'nope'/);
  });

  it("dispose frees weights and caches at once; later steps fail with a clear error", async () => {
    const m = await LlamaModel.fromDir(sharedPath("data", "models", "stories260K"));
    await m.forward([[1, 403, 407]]);
    const s = m.newSession();
    const id = s.alloc();
    await s.prefill(Int32Array.of(id), Int32Array.of(1, 2, 3), Int32Array.of(3), { rows: "none" });
    expect(s.memory()["kv:f32"]).toBeGreaterThan(0);
    s.dispose();
    expect(s.memory()["kv:f32"]).toBe(0);
    expect(() => s.length(id)).toThrow(/no live sequence/);
    expect(m.memory()["weights:f32"]).toBeGreaterThan(0);
    m.dispose();
    expect(m.memory()["weights:f32"]).toBe(0);
    await expect(m.forward([[1, 403]])).rejects.toThrow(/was never set/);
  });

  it("top-k and full log-softmax rows from prefill agree with each other and with argmax", async () => {
    const s = model.newSession();
    const ps = prompts(2);
    const ids = ps.map(() => s.alloc());
    const r = await s.prefill(Int32Array.from(ids), Int32Array.from(ps.flat()), Int32Array.from(ps, (p) => p.length), {
      rows: "last", logSoftmax: true, topk: 5,
    });
    expect(r.rows).toBe(2);
    for (let row = 0; row < 2; row++) {
      const ls = Array.from(r.logSoftmax!.subarray(row * V, (row + 1) * V));
      let z = 0;
      for (const x of ls) z += Math.exp(x);
      expect(Math.abs(z - 1)).toBeLessThan(1e-4);
      const order = ls.map((x, i) => [x, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      expect(Array.from(r.topkIds!.subarray(row * 5, row * 5 + 5))).toEqual(order.slice(0, 5).map((o) => o[1]));
      for (let k = 0; k < 5; k++) expect(Math.abs(r.topkLogprobs![row * 5 + k] - order[k][0])).toBeLessThan(1e-5);
      expect(r.argmax[row]).toBe(order[0][1]);
    }
    for (const id of ids) s.free(id);
  });
});
