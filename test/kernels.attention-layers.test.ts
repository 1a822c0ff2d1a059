// The addon's attentionDecode `layers` option (benchmarks rotate over distinct caches, as a model's layers do):
// kv holds layers × B caches, kv[l · B + b], and run i of `repeat` reads layer i % layers — so the output of a call
// is that of its last run's layer. Checked against plain single-layer calls (bit for bit: same kernel, same
// inputs), plus the argument errors.
import { describe, expect, it } from "vitest";
import { allocKVCache, attentionDecode, kvStore, type KVCache } from "../lib/ops.js";
import { native } from "../lib/native.js";

const H = 2, NH = 4, D = 64;

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

async function cache(len: number, seed: number): Promise<KVCache> {
  const c = allocKVCache("i4", len, H, D);
  await kvStore({ x: randn(len * H * D, seed), type: "i4", nKvHeads: H, headDim: D, dst: c.k, scale: c.kScale, zero: c.kZero });
  await kvStore({ x: randn(len * H * D, seed + 1), type: "i4", nKvHeads: H, headDim: D, dst: c.v, scale: c.vScale, zero: c.vZero });
  return c;
}

const decodeLayers = (o: { q: Float32Array; kv: KVCache[]; lens: number[]; layers?: number; repeat?: number }) =>
  native().attentionDecode({ ...o, nHeads: NH }) as Promise<Float32Array>;

describe("attentionDecode layers (benchmark rotation)", () => {
  it("run i reads layer i % layers: the output is the last run's layer", async () => {
    const B = 2, lens = [300, 77];
    const layers = [[await cache(300, 1), await cache(300, 3)], [await cache(300, 5), await cache(300, 7)],
                    [await cache(300, 9), await cache(300, 11)]];
    const q = randn(B * NH * D, 13);
    const single = await Promise.all(layers.map((kv) => attentionDecode({ q, nHeads: NH, kv, lens })));
    expect(Array.from(single[0])).not.toEqual(Array.from(single[1]));  // the layers differ
    const flat = layers.flat();
    for (const repeat of [1, 2, 3, 5]) {
      const got = await decodeLayers({ q, kv: flat, lens, layers: 3, repeat });
      expect(Array.from(got)).toEqual(Array.from(single[(repeat - 1) % 3]));
    }
  });

  it("rejects a kv count that is not a multiple of layers, and layers < 1", async () => {
    const c = await cache(16, 21), q = randn(NH * D, 22);
    expect(() => decodeLayers({ q, kv: [c, c, c], lens: [16], layers: 2 })).toThrow(/layers × B caches.*layers = 2.*got 3/);
    expect(() => decodeLayers({ q, kv: [c], lens: [16], layers: 0 })).toThrow(/layers/);
  });
});
