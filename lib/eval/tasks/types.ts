/**
 * What a task is to the runner: `prepare` reads and tokenizes the data once (it only needs the tokenizer, which
 * every quantization setting of a model shares), `evaluate` scores one setting. Perplexity tasks also have
 * `evaluateMany`, which runs all settings window by window so the baseline's log-softmax rows can be compared
 * with each setting's (KL divergence) without ever holding more than one chunk of rows.
 */
import type { BatchOptions } from "../batching.js";
import type { EvalModel } from "../model.js";
import type { ProgressFactory } from "../progress.js";
import type { Tokenizer } from "../requests.js";
import type { Metric } from "../stats.js";

export interface TaskOptions {
  /** Evaluate only the first N documents (windows for perplexity, questions per file for long-context tasks). */
  limit?: number;
  /** Few-shot examples per prompt; each task has its own default (lm-eval's). */
  numFewshot?: number;
  /** Seed for few-shot sampling and sampled generation (default 1234, lm-eval's). */
  seed?: number;
  /** Prepend BOS to contexts (default true). */
  bos?: boolean;
  /** Perplexity window length L (default 512, or the model's maxContext when smaller). */
  seqLen?: number;
  /** Sliding-window stride; undefined = non-overlapping windows (GPTQ protocol). */
  stride?: number;
  /** Perplexity with several settings: also KL / top-1 / Δp against the baseline (default true). */
  kl?: boolean;
  /** Generation cap for generation tasks (tokens). */
  maxGenTokens?: number;
  /** Long-context tasks: context lengths (tokens) for needle-in-a-haystack. */
  contextLengths?: number[];
  /** Needle depths in percent. */
  depths?: number[];
  /** MT-Bench: model source (as --model) that judges the answers; none = answers only. */
  judgeModel?: string;
  /** Efficiency: batch sizes to time decode at (default 1, 4, 16). */
  batchSizes?: number[];
}

export interface PrepareEnv {
  tok: Tokenizer;
  dataDir: string;
  options: TaskOptions;
}

export interface RunEnv {
  batch: BatchOptions;
  progress: ProgressFactory;
  /** Keep per-sample records in the result. */
  samples: boolean;
  /** Setting name, for progress labels. */
  setting: string;
}

export interface TaskResult {
  /** Documents (or tokens for perplexity) behind the metrics. */
  n: number;
  metrics: Record<string, Metric>;
  /** Per-subject / per-length breakdowns (MMLU subjects, LongEval lengths, NIAH cells). */
  groups?: Record<string, { n: number; metrics: Record<string, Metric> }>;
  notes?: string[];
  samples?: unknown[];
  /** Free-form extra data (efficiency reports, agreement statistics). */
  details?: unknown;
}

export interface EvalTask<P = unknown> {
  readonly name: string;
  readonly kind: "loglikelihood" | "perplexity" | "generation" | "efficiency";
  /** Metrics shown in the summary table, first is the headline; `higherIsBetter` per metric. */
  readonly display: { metric: string; higherIsBetter: boolean }[];
  prepare(env: PrepareEnv): Promise<P> | P;
  evaluate(prepared: P, model: EvalModel, env: RunEnv): Promise<TaskResult>;
  /** Perplexity: all settings at once, baseline first; returns one result per model, KL for all but the first. */
  evaluateMany?(prepared: P, models: { setting: string; model: EvalModel; record: boolean }[], env: RunEnv): Promise<TaskResult[]>;
}
