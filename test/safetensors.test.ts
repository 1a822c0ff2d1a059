// safetensors reader/writer and checkpoint validation: round trip, and malformed files (built here in a temp dir)
// rejected with errors naming the file, the tensor and what was expected vs found.
import { copyFileSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointError, loadCheckpoint } from "../lib/model/checkpoint.js";
import { readConfig, ConfigError, parseConfig } from "../lib/model/config.js";
import { createNativeModel } from "../lib/model/model.js";
import { openSafetensors, SafetensorsError, writeSafetensors } from "../lib/model/safetensors.js";
import { sharedPath } from "../lib/model/shared.js";

const tmp = () => mkdtempSync(path.join(tmpdir(), "qe-st-"));

/** A raw safetensors file from a header object and a data section. */
function rawFile(file: string, header: unknown, data: Uint8Array, lenOverride?: bigint): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
  return file;
}

describe("safetensors", () => {
  it("round-trips tensors of several dtypes and the metadata", () => {
    const f = path.join(tmp(), "a.safetensors");
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const b = Uint16Array.from([0x3c00, 0xc000, 0x7bff]); // f16 1, -2, 65504
    const c = Int32Array.from([7, -3]);
    writeSafetensors(f, { a: { dtype: "F32", shape: [2, 3], data: a }, b: { dtype: "F16", shape: [3], data: b },
      c: { dtype: "I32", shape: [2], data: c } }, { format: "pt" });
    const st = openSafetensors(f);
    expect(st.metadata).toEqual({ format: "pt" });
    expect(st.names()).toEqual(["a", "b", "c"]);
    expect(st.info("a").shape).toEqual([2, 3]);
    expect(Array.from(st.read("a").data as Float32Array)).toEqual(Array.from(a));
    expect(Array.from(st.readFloat32("b"))).toEqual([1, -2, 65504]);
    expect(Array.from(st.read("c").data as Int32Array)).toEqual([7, -3]);
    st.close();
  });

  const ok = { x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const cases: [string, () => string, RegExp][] = [
    ["a file shorter than the length field", () => { const f = path.join(tmp(), "s"); writeFileSync(f, Buffer.alloc(4)); return f; }, /shorter than the 8-byte header length/],
    ["a header length past the end (truncated)", () => rawFile(path.join(tmp(), "t"), ok, new Uint8Array(8), 1000n), /header length 1000 exceeds/],
    ["a header that is not JSON", () => rawFile(path.join(tmp(), "j"), "{not json", new Uint8Array(8)), /not valid JSON/],
    ["an unknown dtype", () => rawFile(path.join(tmp(), "d"), { x: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor 'x': unknown dtype "F33"/],
    ["a shape that disagrees with the byte range", () => rawFile(path.join(tmp(), "h"), { x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(12)), /tensor 'x': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] span 8/],
    ["a range past the end of the file", () => rawFile(path.join(tmp(), "r"), { x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /tensor 'x': data_offsets \[0, 16\] extend past the data section of 8 bytes/],
    ["overlapping ranges", () => rawFile(path.join(tmp(), "o"), { x: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, y: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /'x' \[0, 8\) and 'y' \[4, 12\) overlap/],
    ["a bad __metadata__", () => rawFile(path.join(tmp(), "m"), { __metadata__: { a: 1 }, ...ok }, new Uint8Array(8)), /__metadata__.a must be a string/],
  ];
  for (const [what, make, msg] of cases)
    it(`rejects ${what}`, () => {
      const f = make();
      expect(() => openSafetensors(f)).toThrow(SafetensorsError);
      expect(() => openSafetensors(f)).toThrow(msg);
    });
});

describe("checkpoint validation", () => {
  const src = sharedPath("data", "models", "stories260K");
  const cfg = readConfig(path.join(src, "config.json"));
  /** A copy of stories260K whose model.safetensors is rewritten by `edit`. */
  function variant(edit: (t: Map<string, { dtype: "F32"; shape: number[]; data: Float32Array }>) => void): string {
    const dir = tmp();
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(src, f), path.join(dir, f));
    const st = openSafetensors(path.join(src, "model.safetensors"));
    const t = new Map(st.names().map((n) => [n, { dtype: "F32" as const, shape: st.info(n).shape, data: st.readFloat32(n) }]));
    st.close();
    edit(t);
    writeSafetensors(path.join(dir, "model.safetensors"), t);
    return dir;
  }
  const newModel = () => createNativeModel(cfg, 512);

  it("loads an unmodified copy", () => {
    const dir = variant(() => {});
    const r = loadCheckpoint(dir, cfg, newModel());
    expect(r.tensors).toBe(2 + 9 * cfg.numLayers); // embed + final norm + (2 norms + 7 linears) a layer; tied head
  });
  it("names a missing tensor", () => {
    const dir = variant((t) => t.delete("model.layers.3.mlp.down_proj.weight"));
    expect(() => loadCheckpoint(dir, cfg, newModel())).toThrow(/missing tensor 'model.layers.3.mlp.down_proj.weight' \(expected shape \[64,172\]\)/);
  });
  it("names a tensor of the wrong shape", () => {
    const dir = variant((t) => t.set("model.layers.0.self_attn.k_proj.weight", { dtype: "F32", shape: [64, 64], data: new Float32Array(4096).fill(0.1) }));
    expect(() => loadCheckpoint(dir, cfg, newModel())).toThrow(/tensor 'model.layers.0.self_attn.k_proj.weight': expected shape \[32,64\], got \[64,64\]/);
  });
  it("rejects a truncated checkpoint before reading any tensor", () => {
    const dir = variant(() => {});
    const f = path.join(dir, "model.safetensors");
    truncateSync(f, readFileSync(f).length - 100);
    expect(() => loadCheckpoint(dir, cfg, newModel())).toThrow(CheckpointError);
    expect(() => loadCheckpoint(dir, cfg, newModel())).toThrow(/extend past the data section/);
  });
  it("rejects unsupported configs naming the field", () => {
    const base = JSON.parse(readFileSync(path.join(src, "config.json"), "utf8"));
    expect(() => parseConfig({ ...base, architectures: ["GPT2LMHeadModel"] })).toThrow(/field 'architectures': expected one of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, got "GPT2LMHeadModel"/);
    expect(() => parseConfig({ ...base, hidden_act: "gelu" })).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, num_key_value_heads: 3 })).toThrow(/num_key_value_heads/);
    expect(() => parseConfig({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } })).toThrow(/rope_scaling.rope_type/);
  });
  it("reads transformers 5 rope_parameters and ≤4 rope_theta/rope_scaling alike", () => {
    const c5 = readConfig(sharedPath("data", "models", "tiny-llama3-gqa", "config.json"));
    const base = JSON.parse(readFileSync(sharedPath("data", "models", "tiny-llama3-gqa", "config.json"), "utf8"));
    const { rope_parameters: rp, ...rest } = base;
    const c4 = parseConfig({ ...rest, rope_theta: rp.rope_theta, rope_scaling: { ...rp, rope_theta: undefined } });
    expect(c4.rope).toEqual(c5.rope);
    expect(c5.rope).toMatchObject({ theta: 500000, scaling: "llama3", factor: 8, originalMaxPosition: 64 });
    const q = readConfig(sharedPath("data", "models", "tiny-qwen2-bias", "config.json"));
    expect(q).toMatchObject({ architecture: "qwen2", qkvBias: true, tieWordEmbeddings: true });
    expect(q.rope.theta).toBe(1e6);
  });

  it("loads sharded checkpoints (index.json) exactly and bf16 checkpoints in either storage dtype", async () => {
    const dir = tmp();
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(src, f), path.join(dir, f));
    const st = openSafetensors(path.join(src, "model.safetensors"));
    const names = st.names();
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ns, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(dir, file), Object.fromEntries(ns.map((n) => [n, { dtype: "F32" as const, shape: st.info(n).shape, data: st.readFloat32(n) }])));
      for (const n of ns) weightMap[n] = file;
    });
    writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    // bf16 copy: round to nearest even on the upper 16 bits.
    const bdir = tmp();
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(src, f), path.join(bdir, f));
    const toBf16 = (x: Float32Array) => {
      const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
      return Uint16Array.from(u, (v) => (v + 0x7fff + ((v >> 16) & 1)) >>> 16);
    };
    writeSafetensors(path.join(bdir, "model.safetensors"), Object.fromEntries(names.map((n) => [n, { dtype: "BF16" as const, shape: st.info(n).shape, data: toBf16(st.readFloat32(n)) }])));
    st.close();
    const { LlamaModel } = await import("../lib/model/model.js");
    const ids = [[1, 403, 407, 261, 378, 11, 300]];
    const ref = (await (await LlamaModel.fromDir(src)).forward(ids)).logits!;
    const sharded = (await (await LlamaModel.fromDir(dir)).forward(ids)).logits!;
    expect(Array.from(sharded)).toEqual(Array.from(ref));
    const bKeep = await LlamaModel.fromDir(bdir);
    expect(bKeep.native.linearInfo("model.layers.0.mlp.up_proj").dtype).toBe("bf16");
    const bf = (await bKeep.forward(ids)).logits!;
    const bf32 = (await (await LlamaModel.fromDir(bdir, { keepDtype: false })).forward(ids)).logits!;
    let d = 0, e = 0;
    for (let i = 0; i < ref.length; i++) {
      d = Math.max(d, Math.abs(bf[i] - bf32[i]));
      e = Math.max(e, Math.abs(bf[i] - ref[i]));
    }
    expect(d).toBeLessThan(1e-4); // same values, bf16 weights converted exactly either way
    expect(e).toBeGreaterThan(0);
    expect(e).toBeLessThan(0.5); // bf16 rounding of every weight
  });
});
