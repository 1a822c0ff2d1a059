/**
 * Bounded KV cache of sliding-window layers: bytes held and decode speed, bounded (windowEvict, the default) against
 * keep-everything (windowEvict: false, the baseline, measured in the same run).
 *
 * 1. Bytes: Mistral-7B v0.1 attention shape (8 kv heads of 128, window 4096), 2 of its 32 layers (layers are
 *    independent; the whole model is 16x), sequences of 4k / 16k / 32k positions grown like a prefill in chunks of
 *    512 then 64 single-token decode steps (Session.fillZeros: the cache bookkeeping without the compute), KV f16 /
 *    int8 / int4. Prints the session's KV bytes (its memory accounting) and the ratio.
 * 2. Speed: a small synthetic windowed model (4 layers, hidden 512, 8 heads over 4 kv heads of 64, window 512,
 *    random weights), context grown to 8192 positions, then decode steps: tokens/s (median of reps), bounded vs
 *    keep. Both attend over the same 512 positions; the difference is the compaction and where the rows live.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/window-cache.js [--reps 5]
 *
 * Writes bench/results/cpu-window-cache-<date>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import os from "node:os";
import { repoRoot } from "../lib/eval/data.js";
import { parseConfig } from "../lib/model/config.js";
import type { KVSetting } from "../lib/model/kv.js";
import { createNativeModel, LlamaModel } from "../lib/model/model.js";
import type { NativeSession, RuntimeAddon } from "../lib/model/native-types.js";
import { PRESETS } from "../lib/model/synthetic.js";
import { native } from "../lib/native.js";

const args = process.argv.slice(2);
const reps = Number(args[args.indexOf("--reps") + 1] ?? 5) || 5;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const kvBytes = (s: NativeSession) => Object.entries(s.memory()).filter(([k]) => k.startsWith("kv:")).reduce((a, [, b]) => a + b, 0);
const sessionKv = (kv: KVSetting) => (typeof kv === "string" ? { kvType: kv } : { kType: kv.k, vType: kv.v });

// ── 1. bytes ─────────────────────────────────────────────────────────────────────────────────────────────────
const mistral = parseConfig({ ...PRESETS["mistral-7b-v0.1"], num_hidden_layers: 2 });
const addon = native() as unknown as RuntimeAddon;
const nm = createNativeModel(mistral, 32768);
const bytesRows: Record<string, unknown>[] = [];
console.log(`KV bytes, Mistral-7B v0.1 attention (window ${mistral.layerWindows?.[0]}), 2 of 32 layers:`);
for (const kv of ["f16", "int8", "int4"] as KVSetting[]) {
  for (const len of [4096, 16384, 32768 - 64]) {
    const held: Record<string, number> = {};
    for (const evict of [true, false]) {
      const s = new addon.Session(nm, { ...sessionKv(kv), maxLen: 32768, windowEvict: evict });
      const id = s.alloc();
      for (let p = 512; p <= len; p += 512) s.fillZeros(id, p);
      if (len % 512) s.fillZeros(id, len);
      for (let i = 1; i <= 64; i++) s.fillZeros(id, len + i);
      held[evict ? "bounded" : "keep"] = kvBytes(s);
      s.dispose();
    }
    const row = { kv, positions: len + 64, boundedBytes: held.bounded, keepBytes: held.keep, ratio: held.keep / held.bounded };
    bytesRows.push(row);
    console.log(`  ${String(kv).padEnd(5)} ${String(len + 64).padStart(6)} positions: bounded ${(held.bounded / 2 ** 20).toFixed(1)} MiB, ` +
      `keep ${(held.keep / 2 ** 20).toFixed(1)} MiB (x${row.ratio.toFixed(2)}); whole model x16: ${(16 * held.bounded / 2 ** 30).toFixed(2)} vs ${(16 * held.keep / 2 ** 30).toFixed(2)} GiB`);
  }
}
nm.dispose();

// ── 2. decode speed ──────────────────────────────────────────────────────────────────────────────────────────
const small = parseConfig({
  architectures: ["MistralForCausalLM"], hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 4,
  num_attention_heads: 8, num_key_value_heads: 4, head_dim: 64, vocab_size: 1024, max_position_embeddings: 16384,
  rms_norm_eps: 1e-5, rope_theta: 10000, sliding_window: 512, tie_word_embeddings: false,
});
const model = await LlamaModel.synthetic(small, { seed: 1, maxContext: 16384 });
const ctx = 8192, steps = 256;
const speedRows: Record<string, unknown>[] = [];
console.log(`decode, ${small.numLayers} layers, hidden ${small.hiddenSize}, window 512, context ${ctx}, ${steps} steps a rep:`);
for (const kv of ["f16", "int8"] as KVSetting[]) {
  const samples: Record<string, number[]> = { bounded: [], keep: [] };
  for (let r = 0; r < reps; r++)
    for (const evict of [true, false]) {
      const s = model.newSession({ kvType: kv, windowEvict: evict });
      const id = s.alloc();
      for (let p = 512; p <= ctx; p += 512) s.fillZeros(id, p);
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await s.decode(Int32Array.of(id), Int32Array.of(3 + (i % 1000)));
      samples[evict ? "bounded" : "keep"].push(steps / ((performance.now() - t0) / 1000));
      s.dispose();
    }
  const b = median(samples.bounded), k = median(samples.keep);
  speedRows.push({ kv, context: ctx, boundedTokPerS: b, keepTokPerS: k, ratio: b / k, samples });
  console.log(`  ${String(kv).padEnd(5)} bounded ${b.toFixed(0)} tok/s, keep ${k.toFixed(0)} tok/s (x${(b / k).toFixed(3)})`);
}
model.dispose();

const date = new Date().toISOString().slice(0, 10);
const out = join(repoRoot(), "bench", "results");
mkdirSync(out, { recursive: true });
const file = join(out, `cpu-window-cache-${date}.json`);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), loadavg: os.loadavg(), reps, bytes: bytesRows, decode: speedRows }, null, 2));
console.log(`wrote ${file}`);
