/**
 * The natively executed model (lib/model's LlamaModel, quantized by lib/quant) as the evaluation loop sees it:
 * EvalModel plus three capabilities the loop uses when present —
 * - `loglikelihoodGroups`: requests sharing a context are scored with the context run once (LlamaModel's prefix
 *   caching: the context's KV cache is forked for each continuation);
 * - `generateBatch`: the runtime's batched decode;
 * - `efficiency()`: the EfficiencyProbe (weights and KV bytes from the runtime's memory accounting, TTFT and decode
 *   steps timed on a fresh session).
 * A separate tokenizer can be attached (synthetic models have none); the chat template is offered only when the
 * tokenizer has one.
 */
import type { LlamaModel } from "../model/model.js";
import { kvBytesPerToken, kvCacheBytes, type KVSetting } from "../model/kv.js";
import type { NativeSession } from "../model/native-types.js";
import type { Tokenizer as HfTokenizer } from "../model/tokenizer.js";
import type { EfficiencyProbe, LatencyRequest, LatencyResult } from "./efficiency.js";
import type { EvalModel, GenerateOptions, GenerateResult, LoglikelihoodRequest, LoglikelihoodResult, WindowScore } from "./model.js";
import { mulberry32 } from "./toy_model.js";
import type { PrefixScorer } from "./batching.js";

/** A context and the continuations scored after it (token ids; context non-empty). */
export interface PrefixGroup {
  context: readonly number[];
  continuations: readonly (readonly number[])[];
}

export interface NativeEvalOptions {
  name: string;
  /** KV cache of the sessions: one type, or K and V types ({ k, v }). */
  kvType: KVSetting;
  /** Tokenizer to use instead of the model's own (required when the model has none). */
  tokenizer?: HfTokenizer;
  /** What the quantizer reported, kept for the results file. */
  quantization?: Record<string, unknown>;
}

export class NativeEvalModel implements EvalModel, PrefixScorer {
  readonly name: string;
  readonly applyChatTemplate?: EvalModel["applyChatTemplate"];
  private readonly tok?: HfTokenizer;

  constructor(
    readonly model: LlamaModel,
    private readonly opts: NativeEvalOptions,
  ) {
    this.name = opts.name;
    this.tok = opts.tokenizer ?? model.tokenizer;
    const tok = this.tok;
    if (tok?.chatTemplate) this.applyChatTemplate = (messages) => tok.applyChatTemplate(messages);
  }

  get vocabSize(): number {
    return this.model.vocabSize;
  }
  get maxContext(): number {
    return this.model.maxContext;
  }
  get bosId(): number | undefined {
    return this.tok?.bosId ?? this.model.bosId;
  }
  get eosIds(): readonly number[] {
    return this.tok?.eosIds.length ? this.tok.eosIds : this.model.eosIds;
  }

  private tokenizer(): HfTokenizer {
    if (!this.tok) throw new Error(`${this.name}: this model has no tokenizer (a synthetic model needs --tokenizer <dir>)`);
    return this.tok;
  }
  encode(text: string, opts?: { bos?: boolean }): number[] {
    // EvalModel: bos defaults to false (LlamaModel's tokenizer would add one by default).
    return this.tokenizer().encode(text, { bos: opts?.bos ?? false });
  }
  decode(ids: readonly number[]): string {
    return this.tokenizer().decode(ids);
  }

  loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    return this.model.loglikelihood(requests);
  }
  scoreWindows(windows: readonly Int32Array[], opts?: { logSoftmax?: boolean }): Promise<WindowScore[]> {
    return this.model.scoreWindows(windows, opts);
  }
  generate(prompt: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
    return this.model.generate(prompt, opts);
  }
  generateBatch(prompts: readonly (readonly number[])[], opts: Omit<GenerateOptions, "onToken">): Promise<GenerateResult[]> {
    return this.model.generateBatch(prompts, opts);
  }

  /** Frees the native weights and caches now (the evaluation loop calls it when a run ends). */
  dispose(): void {
    this.model.dispose();
  }

  /** Settings of this model for the results file: execution (native or simulated), memory, quantizer report. */
  describe(): Record<string, unknown> {
    return { name: this.name, execution: this.model.execution, kvType: this.opts.kvType, memory: this.model.memory(), quantization: this.opts.quantization };
  }

  loglikelihoodGroups(groups: readonly PrefixGroup[]): Promise<LoglikelihoodResult[][]> {
    return this.model.loglikelihoodGroups(groups);
  }

  efficiency(): EfficiencyProbe {
    const cfg = this.model.config;
    const model = this.model;
    const kvType = this.opts.kvType;
    return {
      weightBytes: () => Object.entries(model.native.memory()).filter(([k]) => k.startsWith("weights")).reduce((a, [, v]) => a + v, 0),
      // Sliding-window layers hold a bounded number of positions (kvHeldTokens), full layers all ctx of them.
      kvCacheBytes: (ctx, batch) => kvCacheBytes(cfg, kvType, ctx) * batch,
      // Peak resident memory of the process so far (weights are in native memory, counted by RSS); on a GPU backend
      // the runtime's own device accounting would belong here.
      peakMemoryBytes: () => process.resourceUsage().maxRSS * 1024,
      measureLatency: (req) => measureLatency(model, kvType, req),
    };
  }
}

/** Bytes of K and V for one token (lib/model/kv.ts): int8/int4/int3/int2 sides also store an f32 scale and zero point per
 * token and head. Re-exported here for the efficiency task. */
export { kvBytesPerToken };

async function measureLatency(model: LlamaModel, kvType: KVSetting, req: LatencyRequest): Promise<LatencyResult> {
  const s: NativeSession = model.newSession({ kvType, maxLen: req.contextLength + req.decodeTokens + 1 });
  const rnd = mulberry32(req.contextLength * 31 + req.batchSize);
  const V = model.vocabSize;
  const seqs = Int32Array.from({ length: req.batchSize }, () => s.alloc());
  try {
    const tokens = Int32Array.from({ length: req.contextLength * req.batchSize }, () => 3 + Math.floor(rnd() * (V - 3)));
    const t0 = performance.now();
    const r = await s.prefill(seqs, tokens, Int32Array.from(seqs, () => req.contextLength), { rows: "last", logits: false });
    let next = r.argmax;
    const ttftMs = performance.now() - t0;
    const decodeMs: number[] = [];
    for (let i = 0; i < req.decodeTokens; i++) {
      const t = performance.now();
      const logits = await s.decode(seqs, Int32Array.from(next));
      decodeMs.push(performance.now() - t);
      next = Int32Array.from({ length: req.batchSize }, (_, b) => {
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[b * V + v] > logits[b * V + best]) best = v;
        return best;
      });
    }
    return { ttftMs, decodeMs };
  } finally {
    for (const id of seqs) s.free(id);
    s.dispose();
  }
}
