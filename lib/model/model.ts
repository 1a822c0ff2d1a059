/**
 * A natively executed Llama-family model (Llama 1/2/3, Mistral, Qwen2): weights resident in the native runtime,
 * one native call per step, and the {@link EvalModel} contract on top (log-likelihoods, perplexity windows,
 * generation, tokenizer).
 *
 * Scoring runs each sequence on its own inside the native call (sequences of a call are spread over threads for
 * small models), so a result never depends on what else was in the batch. Generation batches decode steps over
 * the live sequences and frees each sequence's KV cache as it finishes.
 */
import path from "node:path";
import type {
  EvalModel, GenerateOptions, GenerateResult, LoglikelihoodRequest, LoglikelihoodResult, WindowScore,
} from "../eval/model.js";
import type { PackedWeight } from "../kernels.js";
import { native } from "../native.js";
import { existsSync } from "node:fs";
import { loadCheckpoint, type LoadReport } from "./checkpoint.js";
import { downloadModel, type DownloadOptions } from "./hub.js";
import { readConfig, type ModelConfig } from "./config.js";
import type {
  DenseDType, NativeModel, NativeQuantFormat, NativeSession, PrefillResult, RuntimeAddon,
} from "./native-types.js";
import { sessionKvOptions, type KVSetting } from "./kv.js";
import { makeRng, sampleToken } from "./sampling.js";
import { resolvePreset } from "./synthetic.js";
import { Tokenizer, type ChatMessage } from "./tokenizer.js";

export interface ModelOptions {
  /** Longest sequence accepted (default: the config's max_position_embeddings). */
  maxContext?: number;
  /** KV cache of the model's default session (default 'f32'): one type, or { k, v } (lib/model/kv.ts). */
  kvType?: KVSetting;
  /** Keep fp16/bf16 linears in their checkpoint dtype (default true); false converts them to f32. */
  keepDtype?: boolean;
  /** Fills the native model instead of reading `dir`'s safetensors (quantized checkpoints: lib/quant/checkpoint.ts);
   * `dir` still provides config.json and the tokenizer. */
  loadWeights?: (model: NativeModel, config: ModelConfig) => void;
  /** Name for reports (default: the directory's base name). */
  name?: string;
  /** Token budget of one native scoring call (default 16384). */
  batchTokens?: number;
}

export interface SyntheticOptions extends ModelOptions {
  seed?: number;
  /** Dense storage dtype (default 'f32'); also the embedding's. */
  denseDtype?: DenseDType;
  /** Packed format for every decoder linear (weights generated directly as codes). */
  format?: NativeQuantFormat;
  quantizeLmHead?: boolean;
}

/** An empty native model of this config (weights to be set with setTensor / setLinearQuant / randomize). */
export function createNativeModel(config: ModelConfig, maxContext = config.maxPositions): NativeModel {
  return new ((native() as unknown as RuntimeAddon).Model)({ ...config, maxContext });
}

export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelError";
  }
}

/** Options of {@link LlamaModel.generateBatch}: per-sequence callbacks get the prompt index. */
export interface BatchGenerateOptions extends Omit<GenerateOptions, "onToken"> {
  onToken?: (index: number, id: number, text: string) => void;
  /** Session to run in (default: the model's). */
  session?: NativeSession;
}

export class LlamaModel implements EvalModel {
  readonly name: string;
  readonly maxContext: number;
  readonly batchTokens: number;
  /** The default session (KV type from the options; see {@link setKvType}). */
  session: NativeSession;

  private constructor(
    readonly config: ModelConfig,
    readonly native: NativeModel,
    readonly tokenizer: Tokenizer | undefined,
    opts: ModelOptions,
    name: string,
    readonly loadReport?: LoadReport,
  ) {
    this.name = opts.name ?? name;
    this.maxContext = opts.maxContext ?? config.maxPositions;
    this.batchTokens = opts.batchTokens ?? 16384;
    this.session = this.newSession({ kvType: opts.kvType });
  }

  private static addon(): RuntimeAddon {
    return native() as unknown as RuntimeAddon;
  }

  private static createNative(config: ModelConfig, maxContext: number): NativeModel {
    return createNativeModel(config, maxContext);
  }

  /**
   * Longest accepted sequence: the option, else max_position_embeddings. Sliding-window layers (config.layerWindows)
   * attend within their window natively, so a window does not limit the context.
   */
  private static contextOf(config: ModelConfig, opts: ModelOptions): number {
    return opts.maxContext ?? config.maxPositions;
  }

  /** Loads a Hugging Face model directory (config.json, safetensors, tokenizer.json). */
  static async fromDir(dir: string, opts: ModelOptions = {}): Promise<LlamaModel> {
    const config = readConfig(path.join(dir, "config.json"));
    const maxContext = LlamaModel.contextOf(config, opts);
    const nm = LlamaModel.createNative(config, maxContext);
    let report: LoadReport | undefined;
    if (opts.loadWeights) opts.loadWeights(nm, config);
    else report = loadCheckpoint(dir, config, nm, opts.keepDtype ?? true);
    nm.checkComplete();
    // A directory without tokenizer.json runs on token ids only; a broken tokenizer.json is an error.
    const tok = existsSync(path.join(dir, "tokenizer.json")) ? Tokenizer.fromDir(dir) : undefined;
    return new LlamaModel(config, nm, tok, { ...opts, maxContext }, path.basename(path.resolve(dir)), report);
  }

  /**
   * A model from any source: a local directory, `synthetic:<preset or config.json>`, or a hub repo id
   * ('owner/name', downloaded into the cache first; see hub.ts for the endpoint and cache settings).
   */
  static async load(source: string, opts: SyntheticOptions & { hub?: DownloadOptions } = {}): Promise<LlamaModel> {
    if (source.startsWith("synthetic:")) return LlamaModel.synthetic(source.slice("synthetic:".length), opts);
    if (existsSync(source)) return LlamaModel.fromDir(source, opts);
    const dir = await downloadModel(source, opts.hub);
    return LlamaModel.fromDir(dir, { name: source, ...opts });
  }

  /**
   * A model of a named shape preset ('tinyllama-1.1b', 'llama-2-7b', ...; see synthetic.ts) or a config, with
   * seeded random weights generated in native memory (packed directly when `format` is given).
   */
  static async synthetic(spec: string | ModelConfig, opts: SyntheticOptions = {}): Promise<LlamaModel> {
    const { name, config } = typeof spec === "string" ? resolvePreset(spec) : { name: "synthetic", config: spec };
    const maxContext = LlamaModel.contextOf(config, opts);
    const nm = LlamaModel.createNative(config, maxContext);
    await nm.randomize(opts.seed ?? 0, {
      denseDtype: opts.denseDtype ?? "f32", format: opts.format, quantizeLmHead: opts.quantizeLmHead,
    });
    return new LlamaModel(config, nm, undefined, { ...opts, maxContext }, `synthetic:${name}`);
  }

  /** A new session over the same weights (its own KV caches). */
  /** windowEvict: see RuntimeAddon.Session (default: bounded sliding-window caches unless QUANTEVAL_WINDOW_EVICT=0). */
  newSession(opts: { kvType?: KVSetting; maxLen?: number; windowEvict?: boolean } = {}): NativeSession {
    return new (LlamaModel.addon().Session)(this.native, {
      ...sessionKvOptions(opts.kvType ?? "f32"), maxLen: opts.maxLen ?? this.maxContext,
      ...(opts.windowEvict === undefined ? {} : { windowEvict: opts.windowEvict }),
    });
  }

  /** Sets a linear (module name, e.g. 'model.layers.0.mlp.down_proj') from a packed weight of lib/kernels.ts. */
  setLinearPacked(name: string, w: PackedWeight): void {
    const info = this.native.linearInfo(name);
    if (info.N !== w.N || info.K !== w.K)
      throw new ModelError(`setLinearPacked: '${name}' is [${info.N}, ${info.K}], the packed weight is [${w.N}, ${w.K}]`);
    this.native.setLinearQuant(name, w.format, w.codes, w.scales, w.zeros ?? null);
  }

  /** RTN-quantizes every decoder linear (lm_head too when `lmHead`) in place. */
  async quantizeAll(format: NativeQuantFormat, opts: { lmHead?: boolean } = {}): Promise<void> {
    for (const n of this.native.linearNames()) if (n !== "lm_head" || opts.lmHead) await this.native.quantizeLinear(n, format);
  }

  /** Replaces the default session by one whose KV cache is stored as `kv` (f32, f16, int8, int4, int3, int2, or { k, v }). */
  setKvType(kv: KVSetting): void {
    this.session = this.newSession({ kvType: kv });
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }
  get bosId(): number | undefined {
    return this.tokenizer?.bosId ?? this.config.bosTokenId;
  }
  get eosIds(): readonly number[] {
    return this.tokenizer?.eosIds.length ? this.tokenizer.eosIds : this.config.eosTokenIds;
  }

  private tok(): Tokenizer {
    if (!this.tokenizer) throw new ModelError(`${this.name}: this model has no tokenizer`);
    return this.tokenizer;
  }
  encode(text: string, opts?: { bos?: boolean }): number[] {
    return this.tok().encode(text, opts);
  }
  decode(ids: readonly number[]): string {
    return this.tok().decode(ids);
  }
  applyChatTemplate(messages: ChatMessage[]): number[] {
    return this.tok().applyChatTemplate(messages);
  }

  /** Frees the native weights and the default session's caches now (sessions made by newSession: dispose them). */
  dispose(): void {
    this.session.dispose();
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Memory by category: weights by format, KV cache, workspace (bytes). */
  memory(): Record<string, number> {
    return { ...this.native.memory(), ...this.session.memory() };
  }

  /** Whether any linear runs with simulated (fake-quantized) activations. */
  get execution(): "native" | "simulated" {
    return this.native.info().simulated ? "simulated" : "native";
  }

  /**
   * Runs sequences from position 0 in a fresh cache each; `rows` as in prefill. Mostly for tests: logits of every
   * position of every sequence.
   */
  async forward(
    seqs: readonly (readonly number[] | Int32Array)[],
    opts: { rows?: "last" | "all"; session?: NativeSession; logSoftmax?: boolean } = {},
  ): Promise<PrefillResult> {
    const s = opts.session ?? this.session;
    const ids = seqs.map(() => s.alloc());
    try {
      const counts = Int32Array.from(seqs, (q) => q.length);
      const tokens = new Int32Array(counts.reduce((a, b) => a + b, 0));
      let o = 0;
      for (const q of seqs) {
        tokens.set(q, o);
        o += q.length;
      }
      return await s.prefill(Int32Array.from(ids), tokens, counts, { rows: opts.rows ?? "all", logSoftmax: opts.logSoftmax });
    } finally {
      for (const id of ids) s.free(id);
    }
  }

  /** Groups items into batches whose token total stays under batchTokens. */
  private batches<T>(items: readonly T[], len: (t: T) => number): T[][] {
    const out: T[][] = [];
    let cur: T[] = [], n = 0;
    for (const it of items) {
      const l = len(it);
      if (cur.length && n + l > this.batchTokens) {
        out.push(cur);
        cur = [];
        n = 0;
      }
      cur.push(it);
      n += l;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  /** Scores `inputs[i]` predicting `targets[i]` (same length, −1 = skip), every sequence from position 0. */
  private async scoreRaw(
    inputs: Int32Array[], targets: Int32Array[], logSoftmax: boolean, session = this.session,
  ): Promise<{ logprobs: Float32Array; argmax: Int32Array; logSoftmax?: Float32Array }[]> {
    const idx = inputs.map((_, i) => i);
    const out: { logprobs: Float32Array; argmax: Int32Array; logSoftmax?: Float32Array }[] = new Array(inputs.length);
    for (const batch of this.batches(idx, (i) => inputs[i].length)) {
      const seqIds = batch.map(() => session.alloc());
      try {
        const counts = Int32Array.from(batch, (i) => inputs[i].length);
        const total = counts.reduce((a, b) => a + b, 0);
        const tokens = new Int32Array(total), tg = new Int32Array(total);
        let o = 0;
        for (const i of batch) {
          tokens.set(inputs[i], o);
          tg.set(targets[i], o);
          o += inputs[i].length;
        }
        const r = await session.prefill(Int32Array.from(seqIds), tokens, counts, {
          rows: "all", logits: false, logSoftmax, targets: tg,
        });
        o = 0;
        const V = this.vocabSize;
        for (const i of batch) {
          const n = inputs[i].length;
          out[i] = {
            logprobs: r.logprobs!.slice(o, o + n),
            argmax: r.argmax.slice(o, o + n),
            logSoftmax: logSoftmax ? r.logSoftmax!.slice(o * V, (o + n) * V) : undefined,
          };
          o += n;
        }
      } finally {
        for (const id of seqIds) session.free(id);
      }
    }
    return out;
  }

  /**
   * log p(continuation | context) of each request and whether the continuation is the greedy one. Requests whose
   * context (after left-truncation to the window) is the same share it: the context runs once and each
   * continuation continues from a copy of its KV cache (`prefixCache: false` scores every request from position 0,
   * which gives the same numbers at more cost).
   */
  async loglikelihood(
    requests: readonly LoglikelihoodRequest[], opts: { prefixCache?: boolean } = {},
  ): Promise<LoglikelihoodResult[]> {
    const contexts: number[][] = [];
    for (const [i, r] of requests.entries()) {
      if (!r.context.length) throw new ModelError(`loglikelihood: request ${i}: context must not be empty`);
      if (!r.continuation.length) throw new ModelError(`loglikelihood: request ${i}: continuation must not be empty`);
      if (r.continuation.length > this.maxContext)
        throw new ModelError(`loglikelihood: request ${i}: continuation of ${r.continuation.length} tokens exceeds maxContext ${this.maxContext}`);
      // Left-truncate to the context window (the input is all but the last token).
      const cut = Math.max(0, r.context.length + r.continuation.length - 1 - this.maxContext);
      contexts.push(r.context.slice(cut));
    }
    if (opts.prefixCache === false) return this.loglikelihoodPlain(requests, contexts);
    const byContext = new Map<string, number[]>();
    for (const [i, c] of contexts.entries()) {
      const k = c.join(",");
      const g = byContext.get(k);
      if (g) g.push(i);
      else byContext.set(k, [i]);
    }
    const groups: { context: readonly number[]; continuations: readonly (readonly number[])[]; members: number[] }[] = [];
    for (const members of byContext.values()) {
      const context = contexts[members[0]];
      // A group holds one context copy per continuation: split it so each part fits the token budget.
      let part: number[] = [], held = 0;
      for (const i of members) {
        const n = context.length + requests[i].continuation.length;
        if (part.length && held + n > this.batchTokens) {
          groups.push({ context, continuations: part.map((j) => requests[j].continuation), members: part });
          part = [];
          held = 0;
        }
        part.push(i);
        held += n;
      }
      groups.push({ context, continuations: part.map((j) => requests[j].continuation), members: part });
    }
    const out: LoglikelihoodResult[] = new Array(requests.length);
    const scored = await this.loglikelihoodGroups(groups);
    groups.forEach((g, gi) => g.members.forEach((i, j) => (out[i] = scored[gi][j])));
    return out;
  }

  /**
   * Scores each group's continuations after its context: the contexts of a batch run in one prefill (their last
   * rows give every continuation's first token), then each group's sequence is forked once per further continuation
   * and all continuations run in one prefill. Contexts must fit: context + continuation − 1 <= maxContext.
   */
  async loglikelihoodGroups(
    groups: readonly { context: readonly number[]; continuations: readonly (readonly number[])[] }[], session = this.session,
  ): Promise<LoglikelihoodResult[][]> {
    for (const [i, g] of groups.entries()) {
      if (g.context.length === 0) throw new ModelError(`loglikelihoodGroups: group ${i}: context must not be empty`);
      for (const c of g.continuations) {
        if (c.length === 0) throw new ModelError(`loglikelihoodGroups: group ${i}: empty continuation`);
        if (g.context.length + c.length - 1 > this.maxContext)
          throw new ModelError(`loglikelihoodGroups: group ${i}: ${g.context.length + c.length - 1} tokens exceed maxContext ${this.maxContext}`);
      }
    }
    const V = this.vocabSize;
    const out: LoglikelihoodResult[][] = groups.map((g) => new Array(g.continuations.length));
    const cost = (gi: number) => groups[gi].continuations.reduce((a, c) => a + groups[gi].context.length + c.length, 0);
    for (const batch of this.batches([...groups.keys()], cost)) {
      const held: number[] = [];
      try {
        const seqs: number[] = [];
        for (let i = 0; i < batch.length; i++) {
          const id = session.alloc();  // held at once: a failure later in the batch still frees it
          seqs.push(id);
          held.push(id);
        }
        const ctx = await session.prefill(
          Int32Array.from(seqs), Int32Array.from(batch.flatMap((gi) => [...groups[gi].context])),
          Int32Array.from(batch, (gi) => groups[gi].context.length), { rows: "last", logits: false, logSoftmax: true },
        );
        // Continuations longer than one token continue on the group's own sequence (the first) or on a fork.
        const live: { gi: number; j: number; seq: number }[] = [];
        for (const [b, gi] of batch.entries()) {
          const conts = groups[gi].continuations;
          conts.forEach((c, j) => (out[gi][j] = { logprob: ctx.logSoftmax![b * V + c[0]], isGreedy: ctx.argmax[b] === c[0] }));
          const longer = [...conts.keys()].filter((j) => conts[j].length > 1);
          if (!longer.length) continue;
          const forks = longer.length > 1 ? [...(await session.fork(seqs[b], longer.length - 1))] : [];
          held.push(...forks);
          longer.forEach((j, k) => live.push({ gi, j, seq: k === 0 ? seqs[b] : forks[k - 1] }));
        }
        if (!live.length) continue;
        const inputs = live.map((x) => groups[x.gi].continuations[x.j].slice(0, -1));
        const r = await session.prefill(Int32Array.from(live, (x) => x.seq), Int32Array.from(inputs.flat()), Int32Array.from(inputs, (x) => x.length), {
          rows: "all", logits: false, targets: Int32Array.from(live.flatMap((x) => groups[x.gi].continuations[x.j].slice(1))),
        });
        let o = 0;
        for (const x of live) {
          const c = groups[x.gi].continuations[x.j], res = out[x.gi][x.j];
          for (let t = 1; t < c.length; t++, o++) {
            res.logprob += r.logprobs![o];
            if (r.argmax[o] !== c[t]) res.isGreedy = false;
          }
        }
      } finally {
        for (const id of held) session.free(id);
      }
    }
    return out;
  }

  /** Every request scored from position 0 in its own sequence (no shared prefixes). */
  private async loglikelihoodPlain(requests: readonly LoglikelihoodRequest[], contexts: readonly number[][]): Promise<LoglikelihoodResult[]> {
    const inputs: Int32Array[] = [], targets: Int32Array[] = [], spans: [number, number][] = [];
    for (const [i, r] of requests.entries()) {
      const all = [...contexts[i], ...r.continuation];
      const n = all.length - 1, first = n - r.continuation.length;
      const tg = new Int32Array(n).fill(-1);
      for (let t = first; t < n; t++) tg[t] = all[t + 1];
      inputs.push(Int32Array.from(all.slice(0, n)));
      targets.push(tg);
      spans.push([first, n]);
    }
    const scored = await this.scoreRaw(inputs, targets, false);
    return scored.map((s, i) => {
      const [a, b] = spans[i];
      let lp = 0, greedy = true;
      for (let t = a; t < b; t++) {
        lp += s.logprobs[t];
        if (s.argmax[t] !== targets[i][t]) greedy = false;
      }
      return { logprob: lp, isGreedy: greedy };
    });
  }

  async scoreWindows(windows: readonly Int32Array[], opts: { logSoftmax?: boolean } = {}): Promise<WindowScore[]> {
    const inputs: Int32Array[] = [], targets: Int32Array[] = [];
    for (const [i, w] of windows.entries()) {
      if (w.length < 2) throw new ModelError(`scoreWindows: window ${i} has ${w.length} tokens, needs at least 2`);
      if (w.length - 1 > this.maxContext)
        throw new ModelError(`scoreWindows: window ${i} has ${w.length} tokens, over maxContext ${this.maxContext} + 1`);
      inputs.push(w.subarray(0, w.length - 1));
      targets.push(w.subarray(1));
    }
    const scored = await this.scoreRaw(inputs, targets, opts.logSoftmax ?? false);
    return scored.map((s) => (opts.logSoftmax ? { logprobs: s.logprobs, logSoftmax: s.logSoftmax } : { logprobs: s.logprobs }));
  }

  async generate(prompt: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
    const cb = opts.onToken;
    const [r] = await this.generateBatch([prompt], { ...opts, onToken: cb ? (_i, id, text) => cb(id, text) : undefined });
    return r;
  }

  /** Streams the tokens of one generation as they are produced. */
  async *stream(prompt: readonly number[], opts: Omit<GenerateOptions, "onToken">): AsyncGenerator<{ id: number; text: string }, GenerateResult> {
    const queue: { id: number; text: string }[] = [];
    let wake: (() => void) | undefined;
    let done = false, result: GenerateResult | undefined, error: unknown;
    this.generate(prompt, { ...opts, onToken: (id, text) => { queue.push({ id, text }); wake?.(); } })
      .then((r) => { result = r; }, (e) => { error = e; })
      .finally(() => { done = true; wake?.(); });
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (done) break;
      await new Promise<void>((res) => (wake = res));
      wake = undefined;
    }
    while (queue.length) yield queue.shift()!;
    if (error) throw error;
    return result!;
  }

  /**
   * Generates continuations of several prompts at once: one prefill, then one batched decode step per token over
   * the sequences still running. Each prompt samples from its own PRNG (seed + index), so the result of a prompt
   * does not depend on the others.
   */
  async generateBatch(prompts: readonly (readonly number[])[], opts: BatchGenerateOptions): Promise<GenerateResult[]> {
    const s = opts.session ?? this.session;
    const n = prompts.length;
    const eos = new Set(this.eosIds);
    const stops = (opts.stop ?? []).filter((x) => x.length);
    const hasTok = !!this.tokenizer;
    if (stops.length && !hasTok) throw new ModelError("generate: stop strings need a tokenizer");
    for (const [i, p] of prompts.entries()) {
      if (!p.length) throw new ModelError(`generate: prompt ${i} is empty (start it with BOS)`);
      if (p.length >= this.maxContext) throw new ModelError(`generate: prompt ${i} has ${p.length} tokens, maxContext is ${this.maxContext}`);
    }
    if (!(opts.maxTokens >= 0)) throw new ModelError(`generate: maxTokens must be >= 0, got ${opts.maxTokens}`);
    const results: GenerateResult[] = prompts.map(() => ({ tokens: [], text: "", finishReason: "length" }));
    if (opts.maxTokens === 0 || n === 0) return results;
    const rngs = prompts.map((_, i) => makeRng((opts.seed ?? 0) + i));
    const seqs = prompts.map(() => s.alloc());
    const live = new Set<number>(prompts.keys());
    const emitted = prompts.map(() => 0);
    const V = this.vocabSize;
    try {
      const counts = Int32Array.from(prompts, (p) => p.length);
      const tokens = Int32Array.from(prompts.flat());
      let logits = (await s.prefill(Int32Array.from(seqs), tokens, counts, { rows: "last" })).logits!;
      let order = [...prompts.keys()];
      for (;;) {
        const next: number[] = [];
        for (const [r, i] of order.entries()) {
          const id = sampleToken(logits.subarray(r * V, (r + 1) * V), opts, rngs[i]);
          const res = results[i];
          if (eos.has(id)) {
            res.finishReason = "eos";
            live.delete(i);
            continue;
          }
          res.tokens.push(id);
          if (hasTok) {
            const text = this.decode(res.tokens);
            const hit = stops.map((x) => text.indexOf(x)).filter((k) => k >= 0);
            if (hit.length) {
              res.text = text.slice(0, Math.min(...hit));
              res.finishReason = "stop";
              live.delete(i);
            } else res.text = text;
            // Hold back an incomplete UTF-8 sequence (byte-fallback tokens) until it is complete.
            const stable = res.text.endsWith("\uFFFD") ? res.text.length - 1 : res.text.length;
            if (stable > emitted[i] || !hasTok) opts.onToken?.(i, id, res.text.slice(emitted[i], stable));
            else opts.onToken?.(i, id, "");
            emitted[i] = Math.max(emitted[i], stable);
          } else opts.onToken?.(i, id, "");
          if (!live.has(i)) continue;
          if (res.tokens.length >= opts.maxTokens || prompts[i].length + res.tokens.length >= this.maxContext) {
            res.finishReason = "length";
            live.delete(i);
            continue;
          }
          next.push(i);
        }
        for (const i of order) if (!live.has(i) && seqs[i] >= 0) { s.free(seqs[i]); seqs[i] = -1; }
        if (!next.length) break;
        order = next;
        logits = await s.decode(Int32Array.from(order, (i) => seqs[i]), Int32Array.from(order, (i) => results[i].tokens.at(-1)!));
      }
    } finally {
      for (const id of seqs) if (id >= 0) s.free(id);
    }
    return results;
  }
}
