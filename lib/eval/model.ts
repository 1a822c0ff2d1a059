/**
 * The contract between the evaluation loop (lib/eval) and whatever runs a model (lib/model's natively executed
 * models, or a test double). The evaluation code only ever talks to this interface.
 *
 * All token ids are vocabulary ids of the model's own tokenizer. Every scoring call is independent of the batch
 * it arrives in: implementations may batch internally, but results must be identical whatever the batch size.
 */
export interface EvalModel {
  /** Short name for tables and file names, e.g. "stories260K" or "stories260K@w4g128". */
  readonly name: string;
  readonly vocabSize: number;
  /** Token id prepended by encode({ bos: true }); undefined when the tokenizer has none. */
  readonly bosId?: number;
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** Longest sequence (prompt + continuation) the model can run. */
  readonly maxContext: number;

  encode(text: string, opts?: { bos?: boolean }): number[];
  decode(ids: readonly number[]): string;
  /** Chat template from the tokenizer config rendered to ids, when the model has one. */
  applyChatTemplate?(messages: { role: "system" | "user" | "assistant"; content: string }[]): number[];

  /**
   * Log-likelihood requests (lm-evaluation-harness `loglikelihood`): for each request, the sum of
   * log p(continuation[i] | context + continuation[<i]) and whether every continuation token is the argmax.
   * `context` is non-empty (callers prepend BOS as the model expects).
   */
  loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;

  /**
   * Windows evaluated independently from position 0 (perplexity). For each window of L tokens returns the
   * log-probabilities of tokens 1..L-1 (length L-1). With `logSoftmax: true` also returns the full
   * log-softmax rows [L-1, vocabSize] (row i predicts token i+1), for KL divergence against a baseline.
   */
  scoreWindows(windows: readonly Int32Array[], opts?: { logSoftmax?: boolean }): Promise<WindowScore[]>;

  /** Greedy or sampled continuation of `prompt`; stops at EOS, a stop string, or maxTokens. */
  generate(prompt: readonly number[], opts: GenerateOptions): Promise<GenerateResult>;
}

export interface LoglikelihoodRequest {
  context: readonly number[];
  continuation: readonly number[];
}

export interface LoglikelihoodResult {
  logprob: number;
  isGreedy: boolean;
}

export interface WindowScore {
  /** [L-1] log p(token i+1 | tokens 0..i) */
  logprobs: Float32Array;
  /** [L-1, vocabSize] log-softmax rows, when asked for. */
  logSoftmax?: Float32Array;
}

export interface GenerateOptions {
  maxTokens: number;
  /** Generation stops when the decoded continuation contains one of these (the stop string is cut off). */
  stop?: readonly string[];
  /** 0 (default) is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Called with each new token as it is produced. */
  onToken?: (id: number, text: string) => void;
}

export interface GenerateResult {
  tokens: number[];
  text: string;
  finishReason: "eos" | "stop" | "length";
}
