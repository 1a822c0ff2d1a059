/**
 * Next-token choice from a logits row: greedy (temperature 0) or sampling with temperature, top-k and top-p
 * (nucleus), from a seeded PRNG so runs are reproducible.
 */

/** mulberry32: a small seedable PRNG, uniform in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SamplingOptions {
  /** 0 (default): greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0/undefined: all). */
  topK?: number;
  /** Keep the smallest set whose probability reaches p (1/undefined: all). */
  topP?: number;
}

/** Index of the largest value (lowest index on ties). */
export function argmax(row: Float32Array): number {
  let b = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[b]) b = i;
  return b;
}

/** Chooses a token from one logits row. */
export function sampleToken(row: Float32Array, opts: SamplingOptions, rng: () => number): number {
  const t = opts.temperature ?? 0;
  if (!(t > 0)) return argmax(row);
  const V = row.length;
  // Candidates: the top-k by value (threshold from a sorted copy, native and fast even for 128K vocabularies),
  // and never tokens whose probability is below e^-40 of the best one (they cannot be drawn in float64 anyway).
  let mxAll = -Infinity;
  for (let i = 0; i < V; i++) if (row[i] > mxAll) mxAll = row[i];
  let thr = mxAll - 40 * t;
  if (opts.topK && opts.topK > 0 && opts.topK < V) thr = Math.max(thr, Float32Array.from(row).sort()[V - opts.topK]);
  let idx: number[] = [];
  for (let i = 0; i < V; i++) if (row[i] >= thr) idx.push(i);
  idx.sort((a, b) => row[b] - row[a] || a - b);
  if (opts.topK && opts.topK > 0 && opts.topK < idx.length) idx = idx.slice(0, opts.topK);
  const mx = row[idx[0]];
  let probs = idx.map((i) => Math.exp((row[i] - mx) / t));
  let sum = probs.reduce((a, b) => a + b, 0);
  if (opts.topP !== undefined && opts.topP < 1) {
    let c = 0, keep = probs.length;
    for (let i = 0; i < probs.length; i++) {
      c += probs[i] / sum;
      if (c >= opts.topP) {
        keep = i + 1;
        break;
      }
    }
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng() * sum;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r <= 0) return idx[i];
  }
  return idx[idx.length - 1];
}
