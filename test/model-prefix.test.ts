// Prefix caching on stories260K: Session.fork copies a sequence's KV cache exactly (fp32 and int4 caches), and
// LlamaModel.loglikelihood, which runs a shared context once and forks it per continuation, gives the same scores
// and greedy flags as scoring every request from position 0 — with shared contexts, singletons, one-token
// continuations, left-truncated contexts and a token budget small enough to split a group.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../lib/model/model.js";
import { sharedPath } from "../lib/model/shared.js";
import type { LoglikelihoodRequest } from "../lib/eval/model.js";
import type { NativeSession } from "../lib/model/native-types.js";

const dir = sharedPath("data", "models", "stories260K");
let ids: number[];

beforeAll(() => {
  const text = readFileSync(sharedPath("data", "datasets", "tinystories_val_subset", "tinystories_val_subset.txt"), "utf8").slice(0, 20000);
  ids = [];
  // Token ids without a tokenizer dependency in the assertions: any in-vocabulary ids work for scoring.
  for (let i = 0; i < 4000; i++) ids.push(1 + ((text.charCodeAt(i) * 7 + i) % 500));
});

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe("prefix caching", () => {
  for (const kvType of ["f32", "int4"] as const) {
    it(`fork copies the cache exactly (${kvType})`, async () => {
      const model = await LlamaModel.fromDir(dir, { kvType });
      const s = model.newSession({ kvType });
      const a = s.alloc();
      await s.prefill(Int32Array.of(a), Int32Array.from(ids.slice(0, 40)), Int32Array.of(40), { rows: "none" });
      const [b, c] = await s.fork(a, 2);
      expect(new Set([a, b, c]).size).toBe(3);
      expect([s.length(b), s.length(c)]).toEqual([40, 40]);
      // Same next token on the original and a copy: identical logits; a different token on the other copy equals a
      // fresh sequence run from position 0 with that token.
      const la = await s.decode(Int32Array.of(a), Int32Array.of(7));
      const lb = await s.decode(Int32Array.of(b), Int32Array.of(7));
      expect(maxDiff(la, lb)).toBe(0);
      const lc = await s.decode(Int32Array.of(c), Int32Array.of(99));
      const f = s.alloc();
      await s.prefill(Int32Array.of(f), Int32Array.from([...ids.slice(0, 40), 99]), Int32Array.of(41), { rows: "none" });
      const fresh = await s.prefill(Int32Array.of(f), Int32Array.of(5), Int32Array.of(1), { rows: "last" });
      const cont = await s.prefill(Int32Array.of(c), Int32Array.of(5), Int32Array.of(1), { rows: "last" });
      expect(maxDiff(fresh.logits!, cont.logits!)).toBeLessThan(1e-5);
      expect(maxDiff(la, lc)).toBeGreaterThan(1e-3);  // the copies are independent
      // The original is untouched by what its copies appended.
      expect(s.length(a)).toBe(41);
      expect(() => s.fork(1234)).toThrow(/no live sequence with id 1234/);  // argument errors throw at once
      expect(() => s.fork(a, 0)).toThrow(RangeError);
      s.dispose();
      model.dispose();
    });
  }

  it("loglikelihood with shared contexts equals scoring each request from position 0", async () => {
    const model = await LlamaModel.fromDir(dir, { maxContext: 256, batchTokens: 300 });
    const ctx = (o: number, n: number) => ids.slice(o, o + n);
    const reqs: LoglikelihoodRequest[] = [];
    // Three contexts with four continuations each (one of a single token), a singleton, a context long enough to
    // be left-truncated (two continuations of different lengths truncate it differently), and a group whose
    // copies overflow the 300-token budget (split in parts).
    for (const [o, n] of [[0, 30], [100, 57], [300, 5]]) {
      for (const c of [ctx(900, 6), ctx(950, 1), ctx(1000, 13), ctx(1100, 3)]) reqs.push({ context: ctx(o, n), continuation: c });
    }
    reqs.push({ context: ctx(2000, 20), continuation: ctx(2100, 9) });
    reqs.push({ context: ctx(2200, 250), continuation: ctx(2600, 4) }, { context: ctx(2200, 250), continuation: ctx(2700, 12) });
    for (let j = 0; j < 5; j++) reqs.push({ context: ctx(3000, 90), continuation: ctx(3200 + 10 * j, 2 + j) });
    // Count the tokens each way runs through the model.
    let ran = 0;
    const real = model.session;
    model.session = new Proxy(real, {
      get: (t, p) => {
        if (p === "prefill") return (...a: Parameters<NativeSession["prefill"]>) => ((ran += a[1].length), t.prefill(...a));
        const v = Reflect.get(t, p);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const cached = await model.loglikelihood(reqs);
    const ranCached = ran;
    ran = 0;
    const plain = await model.loglikelihood(reqs, { prefixCache: false });
    // 3 x 4 shared contexts of 30/57/5 tokens and the 5-way 90-token one run once (or twice when split).
    expect(ranCached).toBeLessThan(ran - 250);
    console.log(`prefix caching: ${ranCached} tokens run vs ${ran} without`);
    expect(cached.length).toBe(reqs.length);
    cached.forEach((r, i) => {
      expect(Math.abs(r.logprob - plain[i].logprob), `request ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(plain[i].logprob)));
      expect(r.isGreedy, `request ${i}`).toBe(plain[i].isGreedy);
    });
    expect(new Set(plain.map((p) => p.logprob.toFixed(3))).size).toBeGreaterThan(15);
    // The one-token continuation's score is log p(token | context) from a direct forward.
    const f = await model.forward([ctx(0, 30)], { rows: "last", logSoftmax: true });
    expect(cached[1].logprob).toBeCloseTo(f.logSoftmax![ids[950]], 4);
    // Every sequence went back to the session: a fresh one starts empty and the cache bytes are reused.
    const s = model.session;
    const id = s.alloc();
    expect(s.length(id)).toBe(0);
    s.free(id);
    model.dispose();
  });
});
