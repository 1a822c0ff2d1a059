/**
 * A byte-level bigram model in plain TypeScript: the test double for the evaluation loop, and the `toy:` model of
 * `quanteval eval` (so the whole CLI runs without native code). Its probabilities are simple enough to compute by
 * hand in a test: p(b | a) = (count(a→b) + α) / (count(a) + α·V) over the bytes of a training text (BOS before
 * it), V = 258 (256 bytes, BOS = 256, EOS = 257).
 *
 * `logitBits` simulates a low-precision copy of the model for KL tests: the log-probability table is rounded to a
 * grid of 2^-logitBits nats and renormalized. It is a toy; it says nothing about real quantization.
 */
import type { EvalModel, GenerateOptions, GenerateResult, LoglikelihoodRequest, LoglikelihoodResult, WindowScore } from "./model.js";
import type { EfficiencyProbe, LatencyRequest, LatencyResult } from "./efficiency.js";

export const TOY_BOS = 256;
export const TOY_EOS = 257;
export const TOY_VOCAB = 258;

export interface ToyOptions {
  name?: string;
  /** Add-α smoothing (default 0.5). */
  alpha?: number;
  /** Round log-probabilities to 2^-bits nats and renormalize (simulated low precision), default exact. */
  logitBits?: number;
  maxContext?: number;
  /** Give the model a chat template ("<|user|>\n…\n<|assistant|>\n"). */
  chat?: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class ToyBigramModel implements EvalModel {
  readonly name: string;
  readonly vocabSize = TOY_VOCAB;
  readonly bosId = TOY_BOS;
  readonly eosIds: readonly number[] = [TOY_EOS];
  readonly maxContext: number;
  /** [V, V] log p(col | row). */
  readonly table: Float32Array;
  /** Counters for tests of batching: model calls and tokens run. */
  calls = { loglikelihood: 0, scoreWindows: 0, generate: 0, batchSizes: [] as number[] };
  readonly applyChatTemplate?: EvalModel["applyChatTemplate"];

  constructor(trainText: string, opts: ToyOptions = {}) {
    this.name = opts.name ?? "toy";
    this.maxContext = opts.maxContext ?? 4096;
    const V = TOY_VOCAB;
    const alpha = opts.alpha ?? 0.5;
    const counts = new Float64Array(V * V);
    const ids = [TOY_BOS, ...enc.encode(trainText)];
    for (let i = 0; i + 1 < ids.length; i++) counts[ids[i] * V + ids[i + 1]]++;
    this.table = new Float32Array(V * V);
    for (let a = 0; a < V; a++) {
      let tot = 0;
      for (let b = 0; b < V; b++) tot += counts[a * V + b];
      for (let b = 0; b < V; b++) this.table[a * V + b] = Math.log((counts[a * V + b] + alpha) / (tot + alpha * V));
    }
    if (opts.logitBits !== undefined) {
      const step = 2 ** -opts.logitBits;
      for (let a = 0; a < V; a++) {
        const row = this.table.subarray(a * V, (a + 1) * V);
        let z = 0;
        for (let b = 0; b < V; b++) {
          row[b] = Math.round(row[b] / step) * step;
          z += Math.exp(row[b]);
        }
        const lz = Math.log(z);
        for (let b = 0; b < V; b++) row[b] -= lz;
      }
    }
    if (opts.chat) {
      this.applyChatTemplate = (messages) =>
        this.encode(messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join("") + "<|assistant|>\n", { bos: true });
    }
  }

  logp(prev: number, next: number): number {
    return this.table[prev * TOY_VOCAB + next];
  }

  row(prev: number): Float32Array {
    return this.table.subarray(prev * TOY_VOCAB, (prev + 1) * TOY_VOCAB);
  }

  encode(text: string, opts?: { bos?: boolean }): number[] {
    const bytes = enc.encode(text);
    const off = opts?.bos ? 1 : 0;
    const ids = new Array<number>(bytes.length + off);
    if (off) ids[0] = TOY_BOS;
    for (let i = 0; i < bytes.length; i++) ids[i + off] = bytes[i];
    return ids;
  }

  decode(ids: readonly number[]): string {
    return dec.decode(Uint8Array.from(ids.filter((i) => i < 256)));
  }

  private isArgmax(prev: number, next: number): boolean {
    const r = this.row(prev);
    let best = 0;
    for (let i = 1; i < r.length; i++) if (r[i] > r[best]) best = i;
    return best === next;
  }

  async loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    this.calls.loglikelihood++;
    this.calls.batchSizes.push(requests.length);
    return requests.map(({ context, continuation }) => {
      if (context.length === 0) throw new Error("loglikelihood: context must be non-empty");
      if (context.length + continuation.length > this.maxContext) {
        throw new RangeError(`loglikelihood: request of ${context.length + continuation.length} tokens exceeds maxContext ${this.maxContext}`);
      }
      let prev = context[context.length - 1];
      let logprob = 0;
      let isGreedy = true;
      for (const t of continuation) {
        logprob += this.logp(prev, t);
        isGreedy &&= this.isArgmax(prev, t);
        prev = t;
      }
      return { logprob, isGreedy };
    });
  }

  async scoreWindows(windows: readonly Int32Array[], opts?: { logSoftmax?: boolean }): Promise<WindowScore[]> {
    this.calls.scoreWindows++;
    this.calls.batchSizes.push(windows.length);
    const V = TOY_VOCAB;
    return windows.map((w) => {
      const n = w.length - 1;
      const logprobs = new Float32Array(n);
      for (let i = 0; i < n; i++) logprobs[i] = this.logp(w[i], w[i + 1]);
      if (!opts?.logSoftmax) return { logprobs };
      const rows = new Float32Array(n * V);
      for (let i = 0; i < n; i++) rows.set(this.row(w[i]), i * V);
      return { logprobs, logSoftmax: rows };
    });
  }

  async generate(prompt: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
    this.calls.generate++;
    const rng = mulberry32(opts.seed ?? 0);
    const tokens: number[] = [];
    let prev = prompt[prompt.length - 1] ?? TOY_BOS;
    const room = Math.max(0, this.maxContext - prompt.length);
    for (let step = 0; step < Math.min(opts.maxTokens, room); step++) {
      const next = sampleRow(this.row(prev), opts.temperature ?? 0, rng);
      if (this.eosIds.includes(next)) return { tokens, text: this.decode(tokens), finishReason: "eos" };
      tokens.push(next);
      opts.onToken?.(next, this.decode([next]));
      const text = this.decode(tokens);
      for (const s of opts.stop ?? []) {
        const k = text.indexOf(s);
        if (s !== "" && k >= 0) return { tokens, text: text.slice(0, k), finishReason: "stop" };
      }
      prev = next;
    }
    return { tokens, text: this.decode(tokens), finishReason: "length" };
  }

  /** A probe whose sizes are the toy's own (table bytes; no KV cache) and whose timings are measured. */
  efficiency(): EfficiencyProbe {
    return {
      weightBytes: () => this.table.byteLength,
      kvCacheBytes: () => 0,
      peakMemoryBytes: () => process.memoryUsage().rss,
      measureLatency: async (req: LatencyRequest): Promise<LatencyResult> => {
        const prompt = Array.from({ length: req.contextLength }, (_, i) => 97 + (i % 26));
        const t0 = performance.now();
        await this.loglikelihood([{ context: prompt.slice(0, -1), continuation: prompt.slice(-1) }]);
        const ttftMs = performance.now() - t0;
        const decodeMs: number[] = [];
        let prev = prompt[prompt.length - 1];
        for (let i = 0; i < req.decodeTokens; i++) {
          const t = performance.now();
          for (let b = 0; b < req.batchSize; b++) prev = sampleRow(this.row(prev), 0, Math.random);
          decodeMs.push(performance.now() - t);
        }
        return { ttftMs, decodeMs };
      },
    };
  }
}

function sampleRow(row: Float32Array, temperature: number, rng: () => number): number {
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }
  let z = 0;
  const p = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) z += p[i] = Math.exp(row[i] / temperature);
  let u = rng() * z;
  for (let i = 0; i < row.length; i++) if ((u -= p[i]) <= 0) return i;
  return row.length - 1;
}

/** Small seeded PRNG (uniform in [0, 1)): the runtime's sampler PRNG. */
import { makeRng as mulberry32 } from "../model/sampling.js";
export { mulberry32 };
