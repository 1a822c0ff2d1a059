// Sliding-window attention at model level, and the config rules that decide it.
//
// A tiny Mistral (synthetic.ts preset tiny-mistral-sw4: 2 layers, 4 heads over 2 kv heads, head_dim 8, window
// W = 4) with seeded random weights written to a temporary safetensors checkpoint. Its logits over 3W tokens equal
// a float64 forward written here from the same weights (RMSNorm, rotate-half RoPE, GQA attention under the mask
// p - W < j <= p, SiLU MLP) within 1e-4 absolute (fp32 runtime), and differ from the same model without a window
// at every position p >= W while positions p < W (and any sequence of L <= W tokens) are identical; likewise over
// 600 tokens (the runtime prefills in chunks of 512, so the window crosses a chunk boundary). Prefill then
// decode, and batched decode of sequences at different lengths, equal the single-sequence full forward (1e-5).
// Config: Mistral sliding_window / null; Qwen2 use_sliding_window + max_window_layers or layer_types.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedTensors, parseConfig, type ModelConfig } from "../lib/model/config.js";
import { LlamaModel } from "../lib/model/model.js";
import { writeSafetensors } from "../lib/model/safetensors.js";
import { PRESETS } from "../lib/model/synthetic.js";

function rng(seed: number) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { u, normal: () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u()) };
}

type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Seeded weights for every tensor of the config: norms ~1, embedding ~N(0, 1), linears ~N(0, 1/K). */
function randomWeights(cfg: ModelConfig, seed: number): Weights {
  const r = rng(seed);
  const w: Weights = new Map();
  for (const [name, shape] of expectedTensors(cfg)) {
    const n = shape.reduce((a, d) => a * d, 1);
    const sd = name.includes("norm") ? 0.1 : name.includes("embed") ? 1 : 1 / Math.sqrt(shape[shape.length - 1]);
    const mean = name.includes("norm") ? 1 : 0;
    w.set(name, { shape: [...shape], data: Float32Array.from({ length: n }, () => mean + sd * r.normal()) });
  }
  return w;
}

/** y[N] = W[N, K] x[K] in float64. */
function matvec(W: Float32Array, x: Float64Array, N: number, K: number): Float64Array {
  const y = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += W[n * K + k] * x[k];
    y[n] = s;
  }
  return y;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

/** HF rotate-half RoPE in place on one head vector at position p (default rope, rotary dim = head dim). */
function rope(x: Float64Array, off: number, hd: number, p: number, theta: number): void {
  const h = hd / 2;
  for (let i = 0; i < h; i++) {
    const a = p / theta ** ((2 * i) / hd);
    const c = Math.cos(a), s = Math.sin(a), x0 = x[off + i], x1 = x[off + i + h];
    x[off + i] = x0 * c - x1 * s;
    x[off + i + h] = x1 * c + x0 * s;
  }
}

/** Float64 forward of the whole sequence: logits [L, V]. `window` 0 = full causal attention. */
function referenceForward(cfg: ModelConfig, W: Weights, tokens: number[], window: number): Float64Array[] {
  const { hiddenSize: D, numHeads: H, numKvHeads: HK, headDim: hd, intermediateSize: I, vocabSize: V } = cfg;
  const g = (n: string) => W.get(n)!.data;
  const L = tokens.length, G = H / HK;
  const xs = tokens.map((t) => Float64Array.from(g("model.embed_tokens.weight").subarray(t * D, (t + 1) * D)));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
    for (let t = 0; t < L; t++) {
      const h = rmsnorm(xs[t], g(p + "input_layernorm.weight"), cfg.rmsNormEps);
      const q = matvec(g(p + "self_attn.q_proj.weight"), h, H * hd, D);
      const k = matvec(g(p + "self_attn.k_proj.weight"), h, HK * hd, D);
      for (let i = 0; i < H; i++) rope(q, i * hd, hd, t, cfg.rope.theta);
      for (let i = 0; i < HK; i++) rope(k, i * hd, hd, t, cfg.rope.theta);
      qs.push(q); ks.push(k); vs.push(matvec(g(p + "self_attn.v_proj.weight"), h, HK * hd, D));
    }
    for (let t = 0; t < L; t++) {
      const att = new Float64Array(H * hd);
      for (let i = 0; i < H; i++) {
        const kh = Math.floor(i / G);
        const seen = [...Array(t + 1).keys()].filter((j) => window === 0 || t - j < window);
        const sc = seen.map((j) => {
          let d = 0;
          for (let e = 0; e < hd; e++) d += qs[t][i * hd + e] * ks[j][kh * hd + e];
          return d / Math.sqrt(hd);
        });
        const m = Math.max(...sc), ex = sc.map((s) => Math.exp(s - m)), z = ex.reduce((a, b) => a + b, 0);
        seen.forEach((j, n) => {
          for (let e = 0; e < hd; e++) att[i * hd + e] += (ex[n] / z) * vs[j][kh * hd + e];
        });
      }
      const o = matvec(g(p + "self_attn.o_proj.weight"), att, D, H * hd);
      for (let d = 0; d < D; d++) xs[t][d] += o[d];
      const h2 = rmsnorm(xs[t], g(p + "post_attention_layernorm.weight"), cfg.rmsNormEps);
      const gate = matvec(g(p + "mlp.gate_proj.weight"), h2, I, D), up = matvec(g(p + "mlp.up_proj.weight"), h2, I, D);
      const a = gate.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]);
      const dn = matvec(g(p + "mlp.down_proj.weight"), a, D, I);
      for (let d = 0; d < D; d++) xs[t][d] += dn[d];
    }
  }
  return xs.map((x) => matvec(g("lm_head.weight"), rmsnorm(x, g("model.norm.weight"), cfg.rmsNormEps), V, D));
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const WIN = 4;
let tmp: string;
let cfgJson: Record<string, unknown>;
let cfg: ModelConfig;
let weights: Weights;
let windowed: LlamaModel, full: LlamaModel;

/** Logits [L, V] of one sequence, all rows, in a fresh f32 session. */
async function allLogits(m: LlamaModel, tokens: number[]): Promise<Float32Array> {
  const s = m.newSession({ kvType: "f32" });
  const id = s.alloc();
  const r = await s.prefill(Int32Array.of(id), Int32Array.from(tokens), Int32Array.of(tokens.length), { rows: "all" });
  s.dispose();
  return r.logits!;
}

beforeAll(async () => {
  cfgJson = PRESETS["tiny-mistral-sw4"];
  cfg = parseConfig(cfgJson);
  weights = randomWeights(cfg, 7);
  tmp = mkdtempSync(path.join(os.tmpdir(), "qe-window-"));
  for (const [dir, sw] of [["sw", WIN], ["full", null]] as const) {
    const d = path.join(tmp, dir);
    mkdirSync(d);
    writeFileSync(path.join(d, "config.json"), JSON.stringify({ ...cfgJson, sliding_window: sw }));
    writeSafetensors(path.join(d, "model.safetensors"),
      new Map([...weights].map(([n, t]) => [n, { dtype: "F32", shape: t.shape, data: t.data }])));
  }
  windowed = await LlamaModel.fromDir(path.join(tmp, "sw"));
  full = await LlamaModel.fromDir(path.join(tmp, "full"));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("sliding-window attention, tiny Mistral (W = 4)", () => {
  const r = rng(3);
  const tokens = Array.from({ length: 3 * WIN }, () => 3 + Math.floor(r.u() * 61));

  it("config: every layer gets the window; the model accepts sequences longer than it", () => {
    expect(windowed.config.layerWindows).toEqual([WIN, WIN]);
    expect(full.config.layerWindows).toBeUndefined();
    expect(windowed.maxContext).toBe(64);
  });

  it("logits over 3W tokens equal a float64 reference forward with the window, and differ without it after W", async () => {
    const got = await allLogits(windowed, tokens), none = await allLogits(full, tokens);
    const V = cfg.vocabSize;
    const ref = referenceForward(cfg, weights, tokens, WIN), refFull = referenceForward(cfg, weights, tokens, 0);
    let worst = 0, worstFull = 0;
    for (let p = 0; p < tokens.length; p++) {
      const row = got.subarray(p * V, (p + 1) * V), rowNone = none.subarray(p * V, (p + 1) * V);
      worst = Math.max(worst, maxAbs(row, ref[p]));
      worstFull = Math.max(worstFull, maxAbs(rowNone, refFull[p]));
      if (p < WIN) expect(Array.from(row), `position ${p}`).toEqual(Array.from(rowNone));
      else expect(maxAbs(row, rowNone), `position ${p}`).toBeGreaterThan(1e-3);
    }
    console.log(`window ${WIN}: max |logit - float64| ${worst.toExponential(2)} (no window: ${worstFull.toExponential(2)})`);
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(worstFull).toBeLessThanOrEqual(1e-4);
  });

  it("a sequence longer than a prefill chunk (600 tokens, chunks of 512) matches the float64 reference", async () => {
    const long = await LlamaModel.fromDir(path.join(tmp, "sw"), { maxContext: 1024 });
    const rr = rng(5);
    const toks = Array.from({ length: 600 }, () => 3 + Math.floor(rr.u() * 61));
    const got = await allLogits(long, toks);
    const ref = referenceForward(cfg, weights, toks, WIN);
    const V = cfg.vocabSize;
    let worst = 0;
    for (let p = 0; p < toks.length; p++) worst = Math.max(worst, maxAbs(got.subarray(p * V, (p + 1) * V), ref[p]));
    console.log(`window ${WIN}, 600 tokens: max |logit - float64| ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-4);
    long.dispose();
  });

  it("sequences of L <= W tokens are unaffected by the window", async () => {
    for (const L of [1, WIN]) {
      const t = tokens.slice(0, L);
      expect(Array.from(await allLogits(windowed, t))).toEqual(Array.from(await allLogits(full, t)));
    }
  });

  it("prefill then decode equals the full forward; batched decode equals single-sequence decode", async () => {
    const V = cfg.vocabSize;
    const whole = await allLogits(windowed, tokens);
    // One sequence: prefill 3 tokens, decode the rest one at a time.
    const s = windowed.newSession({ kvType: "f32" });
    const id = s.alloc();
    await s.prefill(Int32Array.of(id), Int32Array.from(tokens.slice(0, 3)), Int32Array.of(3), { rows: "last" });
    for (let p = 3; p < tokens.length; p++) {
      const lg = await s.decode(Int32Array.of(id), Int32Array.of(tokens[p]));
      expect(maxAbs(lg, whole.subarray(p * V, (p + 1) * V)), `decode at ${p}`).toBeLessThanOrEqual(1e-5);
    }
    s.dispose();
    // Three sequences at different lengths (2, 5, 9 prompt tokens) decoded together for 6 steps vs each alone.
    const prompts = [2, 5, 9].map((n, i) => tokens.slice(i, i + n));
    const steps = Array.from({ length: 6 }, (_, k) => prompts.map((_p, i) => tokens[(3 * i + k) % tokens.length]));
    const run = async (which: number[]) => {
      const ss = windowed.newSession({ kvType: "f32" });
      const ids = which.map(() => ss.alloc());
      await ss.prefill(Int32Array.from(ids), Int32Array.from(which.flatMap((i) => prompts[i])),
        Int32Array.from(which.map((i) => prompts[i].length)), { rows: "last" });
      const out: Float32Array[][] = which.map(() => []);
      for (const st of steps) {
        const lg = await ss.decode(Int32Array.from(ids), Int32Array.from(which.map((i) => st[i])));
        which.forEach((_i, b) => out[b].push(lg.slice(b * V, (b + 1) * V)));
      }
      ss.dispose();
      return out;
    };
    const batched = await run([0, 1, 2]);
    for (let i = 0; i < 3; i++) {
      const [alone] = await run([i]);
      alone.forEach((lg, k) => expect(maxAbs(batched[i][k], lg), `seq ${i} step ${k}`).toBeLessThanOrEqual(1e-5));
    }
  });
});

describe("sliding-window config rules (transformers)", () => {
  const qwen = (o: Record<string, unknown>) => parseConfig({
    architectures: ["Qwen2ForCausalLM"], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 4,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 64, ...o,
  });
  it("Mistral: sliding_window on every layer, null = none", () => {
    expect(parseConfig({ ...PRESETS["tiny-mistral-sw4"], sliding_window: 16 }).layerWindows).toEqual([16, 16]);
    expect(parseConfig({ ...PRESETS["tiny-mistral-sw4"], sliding_window: null }).layerWindows).toBeUndefined();
  });
  it("Qwen2: only with use_sliding_window, on layers >= max_window_layers, or as layer_types says", () => {
    expect(qwen({ sliding_window: 8, use_sliding_window: false, max_window_layers: 2 }).layerWindows).toBeUndefined();
    expect(qwen({ sliding_window: 8, use_sliding_window: true, max_window_layers: 2 }).layerWindows).toEqual([0, 0, 8, 8]);
    expect(qwen({ sliding_window: 8, use_sliding_window: true, max_window_layers: 0 }).layerWindows).toEqual([8, 8, 8, 8]);
    expect(qwen({ sliding_window: 8, use_sliding_window: true, max_window_layers: 4 }).layerWindows).toBeUndefined();
    expect(qwen({
      sliding_window: 8, use_sliding_window: true, max_window_layers: 0,
      layer_types: ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
    }).layerWindows).toEqual([0, 8, 0, 8]);
    expect(() => qwen({ sliding_window: 8, use_sliding_window: true, layer_types: ["full_attention"] })).toThrow(
      /field 'layer_types': expected an array of 4 'full_attention' \/ 'sliding_attention'/);
    expect(() => qwen({ sliding_window: 0, use_sliding_window: true })).toThrow(/field 'sliding_window': expected an integer >= 1/);
  });
  it("the native model rejects a window list of the wrong length", async () => {
    const { createNativeModel } = await import("../lib/model/model.js");
    expect(() => createNativeModel({ ...cfg, layerWindows: [4] })).toThrow(/config.layerWindows: expected 2 entries \(numLayers\), got 1/);
    expect(() => createNativeModel({ ...cfg, layerWindows: [4, -1] })).toThrow(/config.layerWindows\[1\]/);
  });
});
