// Perplexity protocols (GPTQ non-overlapping windows, transformers strided windows), the WikiText-2 GPTQ join,
// and the agreement statistics (KL, top-1, Δp) on hand-made distributions and through the perplexity task.
import { describe, expect, it } from "vitest";
import { AgreementAccumulator } from "../lib/eval/kl.js";
import { nonOverlappingWindows, slidingWindows, wikitext2GptqText } from "../lib/eval/perplexity.js";
import { silentProgress } from "../lib/eval/progress.js";
import { getTask } from "../lib/eval/tasks/registry.js";
import { ToyBigramModel, TOY_BOS, TOY_VOCAB } from "../lib/eval/toy_model.js";
import { refLogp, TRAIN, writeDataDir } from "./helpers/eval_fixtures.js";

const env = (setting = "t", batchSize: number | "auto" = "auto") => ({ batch: { batchSize }, progress: silentProgress, samples: false, setting });

describe("perplexity windows", () => {
  const stream = Int32Array.from({ length: 10 }, (_, i) => 100 + i);

  it("non-overlapping: windows of L from 0, remainder dropped, every window scored from position 1", () => {
    const w = nonOverlappingWindows(stream, 4);
    expect(w.map((x) => [x.start, Array.from(x.tokens), x.scoreFrom])).toEqual([
      [0, [100, 101, 102, 103], 1],
      [4, [104, 105, 106, 107], 1],
    ]);
  });

  it("sliding (transformers): only the new tokens of each window count", () => {
    const w = slidingWindows(stream, 4, 2);
    expect(w.map((x) => [x.start, x.tokens.length, x.scoreFrom])).toEqual([
      [0, 4, 1],
      [2, 4, 2],
      [4, 4, 2],
      [6, 4, 2],
    ]);
    // with stride < L every stream position 1..n-1 is scored exactly once
    for (const [n, L, s] of [[10, 4, 2], [37, 8, 3], [37, 8, 7], [5, 8, 4], [64, 16, 1]]) {
      const st = Int32Array.from({ length: n }, (_, i) => i);
      const seen = new Array(n).fill(0);
      for (const x of slidingWindows(st, L, s)) for (let p = x.scoreFrom; p < x.tokens.length; p++) seen[x.tokens[p]]++;
      expect(seen.slice(1), `n=${n} L=${L} stride=${s}`).toEqual(new Array(n - 1).fill(1));
      expect(seen[0]).toBe(0);
    }
    // stride == L is the non-overlapping case: the first token of every window has no prediction
    const st = Int32Array.from({ length: 37 }, (_, i) => i);
    const seen = new Array(37).fill(0);
    for (const x of slidingWindows(st, 8, 8)) for (let p = x.scoreFrom; p < x.tokens.length; p++) seen[x.tokens[p]]++;
    expect(seen.map((c, i) => (c === 0 ? i : -1)).filter((i) => i >= 0)).toEqual([0, 8, 16, 24, 32]);
  });

  it("rejects bad window parameters with the argument's name", () => {
    expect(() => nonOverlappingWindows(stream, 1)).toThrow(/seqLen/);
    expect(() => slidingWindows(stream, 4, 5)).toThrow(/stride: expected an integer in \[1, 4\], got 5/);
  });

  it("WikiText-2 GPTQ join: '\\n\\n'.join(line + '\\n' or '' for blank lines)", () => {
    const dir = writeDataDir({ "w.raw": " = A = \n \n B b . \n \n" });
    expect(wikitext2GptqText(`${dir}/w.raw`)).toBe(" = A = \n" + "\n\n" + "" + "\n\n" + " B b . \n" + "\n\n" + "");
  });
});

describe("perplexity task on the toy model (hand-computed)", () => {
  const text = "the cat sat on the mat. the dog sat on the log. it was a sunny day. ".repeat(3);
  const dir = writeDataDir({ "tinystories_val_subset/tinystories_val_subset.txt": text });
  const lp = refLogp(TRAIN);
  const stream = [TOY_BOS, ...Buffer.from(text)];

  function refPpl(L: number, stride?: number): number {
    let nll = 0;
    let count = 0;
    if (stride === undefined) {
      for (let s = 0; s + L <= stream.length; s += L) for (let p = s + 1; p < s + L; p++) (nll -= lp(stream[p - 1], stream[p])), count++;
    } else {
      // transformers loop, written out directly
      let prevEnd = 0;
      for (let begin = 0; begin < stream.length; begin += stride) {
        const end = Math.min(begin + L, stream.length);
        for (let p = Math.max(begin + 1, prevEnd); p < end; p++) (nll -= lp(stream[p - 1], stream[p])), count++;
        prevEnd = end;
        if (end === stream.length) break;
      }
    }
    return Math.exp(nll / count);
  }

  it("non-overlapping windows: ppl = exp(Σ NLL of tokens 1..L-1 / count), one BOS for the whole file", async () => {
    const t = getTask("tinystories");
    const p = await t.prepare({ tok: new ToyBigramModel(TRAIN), dataDir: dir, options: { seqLen: 32 } });
    const r = await t.evaluate(p, new ToyBigramModel(TRAIN), env());
    expect(r.n).toBe(Math.floor(stream.length / 32) * 31);
    expect(r.metrics.ppl.value).toBeCloseTo(refPpl(32), 6);
    expect(r.metrics.ppl.value).not.toBeCloseTo(refPpl(16), 3);
  });

  it("sliding windows give the transformers number, identical at batch sizes 1 and 16", async () => {
    const t = getTask("tinystories");
    const p = await t.prepare({ tok: new ToyBigramModel(TRAIN), dataDir: dir, options: { seqLen: 32, stride: 8 } });
    const r1 = await t.evaluate(p, new ToyBigramModel(TRAIN), env("a", 1));
    const r16 = await t.evaluate(p, new ToyBigramModel(TRAIN), env("b", 16));
    expect(r1.n).toBe(stream.length - 1);
    expect(r1.metrics.ppl.value).toBeCloseTo(refPpl(32, 8), 6);
    expect(r16.metrics).toEqual(r1.metrics);
  });

  it("KL / top-1 / Δp of a low-precision copy against the baseline, computed from the two tables", async () => {
    const t = getTask("tinystories");
    const base = new ToyBigramModel(TRAIN);
    const q = new ToyBigramModel(TRAIN, { logitBits: 1 });
    const p = await t.prepare({ tok: base, dataDir: dir, options: { seqLen: 32, limit: 3 } });
    const [rb, rq, rself] = await t.evaluateMany!(p, [
      { setting: "base", model: base, record: true },
      { setting: "q", model: q, record: true },
      { setting: "self", model: new ToyBigramModel(TRAIN), record: true },
    ], env());
    const kls: number[] = [];
    let same = 0;
    const dps: number[] = [];
    for (let w = 0; w < 3; w++) {
      for (let i = 0; i < 31; i++) {
        const a = stream[w * 32 + i];
        const b = stream[w * 32 + i + 1];
        let kl = 0;
        let ab = 0;
        let aq = 0;
        for (let v = 0; v < TOY_VOCAB; v++) {
          kl += Math.exp(base.logp(a, v)) * (base.logp(a, v) - q.logp(a, v));
          if (base.logp(a, v) > base.logp(a, ab)) ab = v;
          if (q.logp(a, v) > q.logp(a, aq)) aq = v;
        }
        kls.push(kl);
        same += ab === aq ? 1 : 0;
        dps.push(Math.exp(q.logp(a, b)) - Math.exp(base.logp(a, b)));
      }
    }
    expect(rb.metrics.kl_mean).toBeUndefined();
    expect(rq.metrics.kl_mean.value).toBeCloseTo(kls.reduce((x, y) => x + y) / kls.length, 6);
    expect(rq.metrics.kl_mean.value).toBeGreaterThan(1e-4);
    expect(rq.metrics.top1.value).toBeCloseTo(same / kls.length, 12);
    expect(rq.metrics.delta_p_mean.value).toBeCloseTo(dps.reduce((x, y) => x + y) / dps.length, 6);
    expect(rself.metrics.kl_mean.value).toBe(0);
    expect(rself.metrics.top1.value).toBe(1);
    expect(rq.metrics.ppl.value).toBeCloseTo(Math.exp(rb.metrics.nll.value + rq.metrics.ln_ppl_ratio.value), 5);
  });
});

describe("agreement statistics on hand-made distributions", () => {
  it("KL, top-1, Δp, ln PPL ratio", () => {
    const V = 3;
    const L = (xs: number[]) => Float32Array.from(xs.map(Math.log));
    const base = Float32Array.from([...L([0.5, 0.3, 0.2]), ...L([0.1, 0.6, 0.3])]);
    const quant = Float32Array.from([...L([0.4, 0.4, 0.2]), ...L([0.1, 0.2, 0.7])]);
    const acc = new AgreementAccumulator(V);
    acc.add(base, quant, [1, 2], 0, 2);
    const s = acc.result();
    const kl1 = 0.5 * Math.log(0.5 / 0.4) + 0.3 * Math.log(0.3 / 0.4);
    const kl2 = 0.6 * Math.log(0.6 / 0.2) + 0.3 * Math.log(0.3 / 0.7);
    expect(s.tokens).toBe(2);
    expect(s.kl.mean.value).toBeCloseTo((kl1 + kl2) / 2, 6);
    expect(s.kl.median).toBeCloseTo((kl1 + kl2) / 2, 6);
    expect(s.kl.max).toBeCloseTo(Math.max(kl1, kl2), 6);
    expect(s.kl.p99).toBeCloseTo(kl1 + 0.99 * (kl2 - kl1), 6);
    // row 1: argmax 0 vs tie 0.4/0.4 → first index 0: agree; row 2: 1 vs 2: disagree
    expect(s.top1.value).toBe(0.5);
    expect(s.deltaP.mean.value).toBeCloseTo((0.1 + 0.4) / 2, 6);
    expect(s.deltaP.rms).toBeCloseTo(Math.sqrt((0.01 + 0.16) / 2), 6);
    expect(s.lnPplRatio.value).toBeCloseTo((Math.log(0.3 / 0.4) + Math.log(0.3 / 0.7)) / 2, 6);
  });
});
