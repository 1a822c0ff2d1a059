// Quantized checkpoints without a model: save → load gives back identical packed tensors, dense tensors and
// metadata; corrupted or mismatched checkpoints (truncated, missing scales, wrong shapes, spec mismatch, foreign
// files) are rejected with errors naming the tensor or field. (Logits after reload: quant-model.test.ts.)
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openSafetensors, writeSafetensors, type TensorToWrite } from "../lib/model/safetensors.js";
import { CheckpointError, loadQuantizedCheckpoint, saveQuantizedCheckpoint, type QuantizedState } from "../lib/quant/checkpoint.js";
import { rtnQuantize } from "../lib/quant/numerics.js";
import { Rng } from "../lib/quant/random.js";
import { parseSpec } from "../lib/quant/spec.js";

async function state(): Promise<QuantizedState> {
  const rng = new Rng(9);
  const packed = new Map();
  for (const [name, N, K] of [
    ["model.layers.0.mlp.down_proj", 24, 70],
    ["model.layers.0.self_attn.q_proj", 16, 64],
  ] as const) {
    const W = Float32Array.from({ length: N * K }, () => rng.normal());
    packed.set(name, await rtnQuantize(W, N, K, { bits: 3, groupSize: 32, symmetric: false }));
  }
  const emb = Float32Array.from({ length: 10 * 64 }, () => rng.normal());
  return {
    spec: parseSpec("w3g32+gptq"),
    packed,
    dense: new Map([
      ["model.embed_tokens.weight", { dtype: "F32", shape: [10, 64], data: emb }],
      ["model.norm.weight", { dtype: "F32", shape: [64], data: Float32Array.from({ length: 64 }, () => 1 + rng.next()) }],
    ]),
    calibration: { source: "wikitext2-valid", textSha256: "ab", totalTokens: 100, nsamples: 2, seqlen: 8, seed: 0, starts: [1, 5], sha256: "cd" },
    method: "gptq damp=0.01 block=128",
    sourceModel: "synthetic",
  };
}

describe("quantized checkpoints", () => {
  it("round-trips packed and dense tensors and metadata, copying config files", async () => {
    const src = mkdtempSync(path.join(tmpdir(), "qe-src-"));
    writeFileSync(path.join(src, "config.json"), '{"hidden_size": 64}');
    const dir = mkdtempSync(path.join(tmpdir(), "qe-ckpt-"));
    const s = await state();
    saveQuantizedCheckpoint(dir, s, src);
    expect(readFileSync(path.join(dir, "config.json"), "utf8")).toBe('{"hidden_size": 64}');
    const back = loadQuantizedCheckpoint(dir, { expectSpec: "w3g32+gptq-damp0.01" });
    expect(back.meta.spec).toBe("w3g32+gptq");
    expect(back.meta.format).toBe("quanteval-packed-v1");
    expect(back.calibration).toEqual(s.calibration);
    expect(back.method).toBe(s.method);
    expect([...back.packed.keys()].sort()).toEqual([...s.packed.keys()].sort());
    for (const [name, p] of s.packed) {
      const q = back.packed.get(name)!;
      expect(q.format).toEqual(p.format);
      expect(q.codes).toEqual(p.codes);
      expect(q.scales).toEqual(p.scales);
      expect(q.zeros).toEqual(p.zeros);
    }
    expect(back.dense.get("model.embed_tokens.weight")!.data).toEqual(s.dense.get("model.embed_tokens.weight")!.data);
    expect(JSON.parse(readFileSync(path.join(dir, "quanteval.json"), "utf8")).spec).toBe("w3g32+gptq");
  });

  /** Rewrites the checkpoint's safetensors with `edit` applied to its tensor map / metadata. */
  async function corrupted(edit: (t: Map<string, TensorToWrite>, md: Record<string, string>) => void): Promise<string> {
    const dir = mkdtempSync(path.join(tmpdir(), "qe-bad-"));
    saveQuantizedCheckpoint(dir, await state());
    const f = path.join(dir, "model.safetensors");
    const st = openSafetensors(f);
    const t = new Map<string, TensorToWrite>();
    for (const n of st.names()) t.set(n, st.read(n));
    const md = { ...st.metadata };
    st.close();
    edit(t, md);
    writeSafetensors(f, t, md);
    return dir;
  }

  it("rejects a truncated file", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "qe-trunc-"));
    saveQuantizedCheckpoint(dir, await state());
    const f = path.join(dir, "model.safetensors");
    truncateSync(f, statSync(f).size - 100);
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(CheckpointError);
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/invalid safetensors: .*truncated/);
  });

  it("rejects missing scales, wrong shapes, stray tensors and a missing metadata field", async () => {
    const q = "model.layers.0.self_attn.q_proj";
    let dir = await corrupted((t) => t.delete(`${q}.scales`));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(new RegExp(`tensor '${q}.scales' is missing`));
    dir = await corrupted((t) => t.set(`${q}.qzeros`, { dtype: "U8", shape: [16, 3], data: new Uint8Array(48) }));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(new RegExp(`tensor '${q}.qzeros': expected U8 \\[16,2\\], got U8 \\[16,3\\]`));
    dir = await corrupted((t) => t.set(`${q}.scales`, { dtype: "F16", shape: [16, 2], data: new Uint16Array(32) }));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/expected F32 \[16,2\], got F16 \[16,2\]/);
    dir = await corrupted((t) => t.set("model.layers.1.mlp.up_proj.qweight", { dtype: "U8", shape: [1, 12], data: new Uint8Array(12) }));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/'model.layers.1.mlp.up_proj.qweight' belongs to no linear/);
    dir = await corrupted((_t, md) => delete md["quanteval.spec"]);
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/metadata 'quanteval.spec' is missing/);
    dir = await corrupted((t) => {
      const s = t.get(`${q}.scales`)!.data as Float32Array;
      s[3] = NaN;
    });
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/element 3 is NaN/);
  });

  it("rejects a spec that disagrees with the stored formats or with what the caller expects", async () => {
    let dir = await corrupted((_t, md) => (md["quanteval.spec"] = "w4g32"));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/spec mismatch: packed linear '.*' is 3-bit group 32 but the spec 'w4g32' says 4-bit/);
    dir = await corrupted(() => {});
    expect(() => loadQuantizedCheckpoint(dir, { expectSpec: "w4g128" })).toThrow(
      /spec mismatch: the checkpoint holds 'w3g32\+gptq', expected 'w4g128'/,
    );
    dir = await corrupted((_t, md) => (md["quanteval.format"] = "gptq-v2"));
    expect(() => loadQuantizedCheckpoint(dir)).toThrow(/expected 'quanteval-packed-v1', got 'gptq-v2'/);
    const empty = mkdtempSync(path.join(tmpdir(), "qe-empty-"));
    expect(() => loadQuantizedCheckpoint(empty)).toThrow(/model.safetensors: missing/);
    // a plain (unquantized) model checkpoint is not a quantized checkpoint
    const plain = mkdtempSync(path.join(tmpdir(), "qe-plain-"));
    writeSafetensors(path.join(plain, "model.safetensors"), { w: { dtype: "F32", shape: [2], data: new Float32Array(2) } });
    expect(() => loadQuantizedCheckpoint(plain)).toThrow(/metadata 'quanteval.format' is missing/);
  });
});
