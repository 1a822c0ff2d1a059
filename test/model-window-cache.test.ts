// Bounded KV cache of sliding-window layers (Session windowEvict, the default).
//
// Synthetic Mistral-style model (2 layers, 4 heads over 2 kv heads, head_dim 8, window W = 32, seeded random
// weights) and a Qwen2-style one with mixed layers (max_window_layers = 2 of 4: layers 0-1 full, 2-3 windowed).
// A session that drops the positions no query can see any more gives IDENTICAL logits (bit for bit: the kernels
// read the same keys in the same order through KVView::pos0) to a session that keeps every position
// (windowEvict: false), over 10x the window of decode, prefill in uneven pieces crossing the window (and one
// prefill longer than the runtime's 512-token chunk), batched decode of sequences at different positions, every
// KV type; its last row also equals a fresh whole prefill within 1e-5. The cache of a window layer stays bounded
// (KV bytes of a 10W-token sequence < 2W tokens' worth) while full layers keep everything; truncation inside the
// held range works and below it fails naming the layer.
import { describe, expect, it } from "vitest";
import { parseConfig, type ModelConfig } from "../lib/model/config.js";
import { NativeEvalModel } from "../lib/eval/native_model.js";
import { kvBytesPerToken, kvCacheBytes, kvHeldTokens, type KVSetting } from "../lib/model/kv.js";
import { LlamaModel } from "../lib/model/model.js";
import type { NativeSession } from "../lib/model/native-types.js";
import { makeRng } from "../lib/model/sampling.js";
import { PRESETS } from "../lib/model/synthetic.js";
import { allocKVCache, attentionDecode, attentionPrefill, kvAppend, type KVCache } from "../lib/ops.js";

const W = 32;
const mistral: ModelConfig = parseConfig({ ...PRESETS["tiny-mistral-sw4"], sliding_window: W, max_position_embeddings: 1024 });
const qwen: ModelConfig = parseConfig({
  architectures: ["Qwen2ForCausalLM"], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 4,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 1024, rms_norm_eps: 1e-6,
  rope_theta: 10000, sliding_window: W, use_sliding_window: true, max_window_layers: 2, tie_word_embeddings: false,
});

const tokensOf = (n: number, seed: number) => {
  const r = makeRng(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(r() * 60));
};
const kvBytes = (s: NativeSession) => Object.entries(s.memory()).filter(([k]) => k.startsWith("kv:")).reduce((a, [, b]) => a + b, 0);
const maxAbs = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** Two sessions over one model: bounded (default) and keep-everything. */
function pair(m: LlamaModel, kvType: KVSetting) {
  return { ev: m.newSession({ kvType }), keep: m.newSession({ kvType, windowEvict: false }) };
}

describe("bounded sliding-window KV cache (W = 32)", () => {
  let mm: LlamaModel, mq: LlamaModel;
  const V = mistral.vocabSize;

  it("setup: window layers as configured", async () => {
    mm = await LlamaModel.synthetic(mistral, { seed: 11 });
    mq = await LlamaModel.synthetic(qwen, { seed: 12 });
    expect(mistral.layerWindows).toEqual([W, W]);
    expect(qwen.layerWindows).toEqual([0, 0, W, W]);
  });

  for (const kvType of ["f32", "f16", "int8", "int4", "int3", { k: "int8", v: "int4" }] as KVSetting[]) {
    const name = typeof kvType === "string" ? kvType : `k:${kvType.k}/v:${kvType.v}`;
    it(`decode of 10W tokens (KV ${name}): identical logits to the unbounded cache, bounded memory`, async () => {
      const { ev, keep } = pair(mm, kvType);
      const toks = tokensOf(10 * W + 1, 21);
      const a = ev.alloc(), b = keep.alloc();
      const prompt = Int32Array.from(toks.slice(0, 5));
      await ev.prefill(Int32Array.of(a), prompt, Int32Array.of(5), { rows: "last" });
      await keep.prefill(Int32Array.of(b), prompt, Int32Array.of(5), { rows: "last" });
      let moves = 0, prev = 0;
      for (let p = 5; p < toks.length; p++) {
        const x = await ev.decode(Int32Array.of(a), Int32Array.of(toks[p]));
        const y = await keep.decode(Int32Array.of(b), Int32Array.of(toks[p]));
        if (maxAbs(x, y) !== 0) expect.fail(`decode at position ${p}: max |diff| ${maxAbs(x, y)}`);
        if (ev.firstHeld(a, 0) !== prev) moves++;
        prev = ev.firstHeld(a, 0);
      }
      // Amortized compaction: the held range moves once per slack (16) positions, plus when the arrays grow — not
      // on every step.
      expect(moves).toBeGreaterThan(5);
      expect(moves).toBeLessThanOrEqual(Math.ceil((toks.length - 5) / 16) + 4);
      expect(ev.length(a)).toBe(10 * W + 1);
      // Every layer dropped its dead prefix, but holds at least the window the next query needs.
      for (const l of [0, 1]) {
        expect(ev.firstHeld(a, l)).toBeGreaterThan(0);
        expect(ev.firstHeld(a, l)).toBeLessThanOrEqual(10 * W + 1 - W + 1);
        expect(keep.firstHeld(b, l)).toBe(0);
        // What lib/model/kv.ts reports (eval's efficiency probe) bounds what the layer holds.
        expect(ev.length(a) - ev.firstHeld(a, l)).toBeLessThanOrEqual(kvHeldTokens(W, ev.length(a)));
      }
      const per = kvBytesPerToken(mistral.numLayers, mistral.numKvHeads, mistral.headDim, kvType);
      const bounded = kvBytes(ev), full = kvBytes(keep);
      console.log(`KV ${name}, ${10 * W + 1} tokens, window ${W}: bounded ${bounded} B (${(bounded / per).toFixed(1)} tokens' worth), ` +
        `unbounded ${full} B (${(full / per).toFixed(1)})`);
      expect(bounded).toBeLessThan(2 * W * per);
      expect(full).toBeGreaterThanOrEqual((10 * W + 1) * per);
      ev.dispose();
      keep.dispose();
    });
  }

  it("compaction stays amortized when the arrays' size lands just above the window (W = 64: 64 rows after growth)", async () => {
    const m64 = await LlamaModel.synthetic({ ...mistral, layerWindows: [64, 64] }, { seed: 3 });
    const s = m64.newSession({ kvType: "int8" });
    const id = s.alloc();
    await s.prefill(Int32Array.of(id), Int32Array.of(5), Int32Array.of(1), { rows: "none" });
    let moves = 0, prev = 0;
    const steps = 6 * 64;
    for (let i = 0; i < steps; i++) {
      await s.decode(Int32Array.of(id), Int32Array.of(3 + (i % 50)));
      if (s.firstHeld(id, 1) !== prev) moves++;
      prev = s.firstHeld(id, 1);
    }
    expect(moves).toBeGreaterThan(5);
    expect(moves).toBeLessThanOrEqual(Math.ceil(steps / 16) + 4);
    m64.dispose();
  });

  it("prefill in uneven pieces crossing the window, then one longer than a 512-token chunk: identical rows", async () => {
    const { ev, keep } = pair(mm, "int8");
    const toks = tokensOf(900, 31);
    const pieces = [3, 29, 1, 40, 7, 64, 33, 2, 100]; // 279 tokens, then 621 at once (chunks 512 + 109)
    pieces.push(toks.length - pieces.reduce((x, y) => x + y, 0));
    const a = ev.alloc(), b = keep.alloc();
    let p = 0;
    let last = new Float32Array(0);
    for (const n of pieces) {
      const t = Int32Array.from(toks.slice(p, p + n));
      const x = await ev.prefill(Int32Array.of(a), t, Int32Array.of(n), { rows: "all" });
      const y = await keep.prefill(Int32Array.of(b), t, Int32Array.of(n), { rows: "all" });
      expect(maxAbs(x.logits!, y.logits!), `piece at ${p} (+${n})`).toBe(0);
      last = x.logits!.slice((n - 1) * V);
      // Held from at most the window start of the last 512-token chunk's first query.
      const lastChunk = p + 512 * Math.floor((n - 1) / 512);
      p += n;
      for (const l of [0, 1]) expect(ev.firstHeld(a, l), `after piece ending at ${p}`).toBeLessThanOrEqual(Math.max(0, lastChunk - W + 1));
    }
    expect(ev.firstHeld(a, 0)).toBeGreaterThan(p - 512 - W);
    // A fresh whole prefill of the same 900 tokens (other chunking, other GEMM shapes): last row within 1e-5, and
    // so is the next decode step over both caches.
    const f = ev.alloc();
    const whole = await ev.prefill(Int32Array.of(f), Int32Array.from(toks), Int32Array.of(toks.length), { rows: "last" });
    expect(maxAbs(last, whole.logits!)).toBeLessThanOrEqual(1e-5);
    const next = await ev.decode(Int32Array.of(a, f), Int32Array.of(5, 5));
    expect(maxAbs(next.subarray(0, V), next.subarray(V))).toBeLessThanOrEqual(1e-5);
    ev.dispose();
    keep.dispose();
  });

  it("batched decode of sequences at different positions equals the unbounded cache", async () => {
    const { ev, keep } = pair(mm, "int4");
    const lens = [2, 45, 130];
    const prompts = lens.map((n, i) => tokensOf(n, 40 + i));
    const run = async (s: NativeSession) => {
      const ids = lens.map(() => s.alloc());
      await s.prefill(Int32Array.from(ids), Int32Array.from(prompts.flat()), Int32Array.from(lens), { rows: "last" });
      const out: Float32Array[] = [];
      const r = makeRng(9);
      for (let k = 0; k < 3 * W; k++) out.push(await s.decode(Int32Array.from(ids), Int32Array.from(ids, () => 3 + Math.floor(r() * 60))));
      return { ids, out };
    };
    const x = await run(ev), y = await run(keep);
    x.out.forEach((o, k) => expect(maxAbs(o, y.out[k]), `step ${k}`).toBe(0));
    // Every sequence ends past 2W tokens: all dropped something, by their own positions.
    x.ids.forEach((id, i) => expect(ev.firstHeld(id, 0), `seq ${i}`).toBeGreaterThan(0));
    expect(kvBytes(ev)).toBeLessThan(kvBytes(keep));
    ev.dispose();
    keep.dispose();
  });

  it("mixed layers (Qwen2 max_window_layers): full layers keep everything, window layers are bounded", async () => {
    const { ev, keep } = pair(mq, "f32");
    const toks = tokensOf(10 * W, 51);
    const a = ev.alloc(), b = keep.alloc();
    await ev.prefill(Int32Array.of(a), Int32Array.from(toks.slice(0, 10)), Int32Array.of(10), { rows: "last" });
    await keep.prefill(Int32Array.of(b), Int32Array.from(toks.slice(0, 10)), Int32Array.of(10), { rows: "last" });
    for (let p = 10; p < toks.length; p++) {
      const x = await ev.decode(Int32Array.of(a), Int32Array.of(toks[p]));
      const y = await keep.decode(Int32Array.of(b), Int32Array.of(toks[p]));
      if (maxAbs(x, y) !== 0) expect.fail(`decode at position ${p}`);
    }
    expect([0, 1, 2, 3].map((l) => ev.firstHeld(a, l) > 0)).toEqual([false, false, true, true]);
    // The full layers grow alike in both sessions (half of the unbounded bytes); the window layers hold < 2W
    // tokens each (per-layer bytes a token = per-token / numLayers).
    const per = kvBytesPerToken(qwen.numLayers, qwen.numKvHeads, qwen.headDim, "f32") / qwen.numLayers;
    const bounded = kvBytes(ev), full = kvBytes(keep);
    console.log(`mixed layers, ${10 * W} tokens: bounded ${bounded} B, unbounded ${full} B`);
    expect(full).toBeGreaterThanOrEqual(4 * 10 * W * per);
    expect(bounded - full / 2).toBeLessThan(2 * 2 * W * per);
    ev.dispose();
    keep.dispose();
  });

  it("truncate inside the held range works; below it fails naming the layer; truncate(0) restarts", async () => {
    const { ev, keep } = pair(mm, "f32");
    const toks = tokensOf(6 * W, 61);
    const a = ev.alloc(), b = keep.alloc();
    // Two calls: the second drops the first's dead prefix (a single call holds all of its own tokens).
    for (const [s, id] of [[ev, a], [keep, b]] as const) {
      await s.prefill(Int32Array.of(id), Int32Array.from(toks.slice(0, 100)), Int32Array.of(100), { rows: "none" });
      await s.prefill(Int32Array.of(id), Int32Array.from(toks.slice(100)), Int32Array.of(toks.length - 100), { rows: "none" });
    }
    const base = ev.firstHeld(a, 0);
    expect(base).toBeGreaterThan(0);
    // The next token at position len attends to [len - W + 1, len): fine down to base + W - 1.
    const ok = base + W - 1;
    expect(ev.canTruncate(a, ok)).toBe(true);
    expect(ev.canTruncate(a, ok - 1)).toBe(false);
    expect(() => ev.truncate(a, ok - 1)).toThrow(
      new RegExp(`cannot truncate sequence ${a} to ${ok - 1} tokens: layer 0 \\(sliding window ${W}\\) holds positions \\[${base}, ${toks.length}\\)`));
    expect(ev.length(a)).toBe(toks.length);  // unchanged by the failed call
    ev.truncate(a, ok);
    keep.truncate(b, ok);
    for (let p = ok; p < ok + 40; p++) {
      const x = await ev.decode(Int32Array.of(a), Int32Array.of(toks[p % toks.length]));
      const y = await keep.decode(Int32Array.of(b), Int32Array.of(toks[p % toks.length]));
      expect(maxAbs(x, y), `after truncate, position ${p}`).toBe(0);
    }
    // To 0: the sequence starts over (and equals a fresh one).
    ev.truncate(a, 0);
    expect(ev.firstHeld(a, 0)).toBe(0);
    const c = ev.alloc();
    const r1 = await ev.prefill(Int32Array.of(a), Int32Array.from(toks.slice(0, 70)), Int32Array.of(70), { rows: "last" });
    const r2 = await ev.prefill(Int32Array.of(c), Int32Array.from(toks.slice(0, 70)), Int32Array.of(70), { rows: "last" });
    expect(maxAbs(r1.logits!, r2.logits!)).toBe(0);
    ev.dispose();
    keep.dispose();
  });

  it("QUANTEVAL_WINDOW_EVICT=0 turns eviction off for sessions that do not say", () => {
    process.env.QUANTEVAL_WINDOW_EVICT = "0";
    try {
      const s = mm.newSession({ kvType: "f32" });
      const id = s.alloc();
      s.fillZeros(id, 10 * W);
      s.fillZeros(id, 10 * W + 1);
      expect(s.firstHeld(id, 0)).toBe(0);
      s.dispose();
      const t = mm.newSession({ kvType: "f32", windowEvict: true });
      const j = t.alloc();
      t.fillZeros(j, 10 * W);
      t.fillZeros(j, 10 * W + 1);
      expect(t.firstHeld(j, 0)).toBeGreaterThan(0);
      t.dispose();
    } finally {
      delete process.env.QUANTEVAL_WINDOW_EVICT;
    }
    expect(() => mm.newSession({ windowEvict: "yes" as unknown as boolean })).toThrow(/options.windowEvict: expected a boolean/);
    mm.dispose();
    mq.dispose();
  });
});

describe("KV cache views with pos0 (ops bindings)", () => {
  it("attention over the tail of a cache (kv.pos0) equals attention over the whole cache; below pos0 is rejected", async () => {
    const H = 2, D = 16, nHeads = 6, T = 300, win = 40;
    const r = makeRng(77);
    const randn = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1 + 0.2);
    for (const type of [{ k: "i8", v: "i4" }, "f16", "i3"] as const) {
      const full = allocKVCache(type, T, H, D);
      await kvAppend(full, randn(T * H * D), randn(T * H * D), 0);
      // The tail [pos0, T) as its own arrays (subarray views of the whole cache's rows).
      const pos0 = T - win;
      const rows = (a: Float32Array | Uint16Array | Uint8Array | undefined) => a && a.slice((a.length / T) * pos0);
      const tail = { ...full, k: rows(full.k)!, v: rows(full.v)!, kScale: rows(full.kScale) as Float32Array | undefined,
        kZero: rows(full.kZero) as Float32Array | undefined, vScale: rows(full.vScale) as Float32Array | undefined,
        vZero: rows(full.vZero) as Float32Array | undefined, pos0 } as KVCache;
      const q = randn(2 * nHeads * D);
      // Sequence 0 at length T sees [260, 300) = exactly the tail; sequence 1 a shorter window inside it.
      const a = await attentionDecode({ q, nHeads, kv: [full, full], lens: [T, T], window: win });
      const b = await attentionDecode({ q, nHeads, kv: [tail, { ...tail }], lens: [T, T], window: win });
      expect(Array.from(b)).toEqual(Array.from(a));
      // Length T - 1: the query at 298 needs position 259 < pos0 = 260.
      await expect(attentionDecode({ q: q.subarray(0, nHeads * D), nHeads, kv: [tail], lens: [T - 1], window: win })).rejects.toThrow(
        /attention_decode: the query of sequence 0 at position 298 needs cached positions from 259 \(window 40\), but the cache starts at pos0 = 260/);
      // lens beyond pos0 + rows is a range error of the binding (thrown before any work starts).
      expect(() => attentionDecode({ q: q.subarray(0, nHeads * D), nHeads, kv: [tail], lens: [T + 1], window: win })).toThrow(/lens\[0\]: expected an integer in \[1, 300\]/);
      const qp = randn(10 * nHeads * D);
      const pa = await attentionPrefill({ q: qp, nHeads, kv: full, pos0: T - 10, window: 30 });
      const pb = await attentionPrefill({ q: qp, nHeads, kv: tail, pos0: T - 10, window: 30 });
      expect(Array.from(pb)).toEqual(Array.from(pa));
      await expect(attentionPrefill({ q: qp, nHeads, kv: tail, pos0: T - 10, window: 32 })).rejects.toThrow(
        /attention_prefill: query 0 at position 290 needs cached positions from 259 \(window 32\), but the cache starts at pos0 = 260/);
    }
  });
});

describe("eval scoring over a bounded window cache", () => {
  it("shared-prefix scoring (forked context caches) equals scoring from position 0 when continuations move the window on", async () => {
    const lm = await LlamaModel.synthetic(mistral, { seed: 13, maxContext: 1024 });
    const m = new NativeEvalModel(lm, { name: "sw", kvType: "f32" });
    const context = tokensOf(40, 71);
    const conts = [tokensOf(600, 72), tokensOf(5, 73), tokensOf(650, 74)];  // 599 / 649 inputs: 2 prefill chunks
    const grouped = (await m.loglikelihoodGroups([{ context, continuations: conts }]))[0];
    const plain = await lm.loglikelihood(conts.map((c) => ({ context, continuation: c })), { prefixCache: false });
    grouped.forEach((g, i) => expect(Math.abs(g.logprob - plain[i].logprob), `continuation ${i}`).toBeLessThanOrEqual(1e-4 * Math.abs(plain[i].logprob)));
    expect(kvCacheBytes(mistral, "f32", 4096)).toBe(kvBytesPerToken(2, 2, 8, "f32") * (W - 1 + 16));
    lm.dispose();
  });
});
