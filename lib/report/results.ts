/**
 * The results file of `quanteval eval`: configuration, environment, and one record per (setting, task), written
 * after every finished pair with an atomic replace (temp file + rename) so an interrupted run leaves a valid file
 * and resumes where it stopped. A resumed run must have the same configuration (batch size, output and progress
 * options excepted: they do not change scores); anything else is a clear error rather than a silently mixed file.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { TaskOptions, TaskResult } from "../eval/tasks/types.js";
import type { Environment } from "./environment.js";

export const RESULTS_FORMAT = "quanteval-eval/1";

export interface SettingSpec {
  /** Row name: "baseline" for the unquantized model, else the quantization spec. */
  name: string;
  /** Quantization spec string, null for the baseline. */
  quant: string | null;
}

export interface EvalConfig {
  model: string;
  settings: SettingSpec[];
  tasks: string[];
  options: TaskOptions;
  dataDir: string;
  batchSize: number | "auto";
  samples: boolean;
}

export interface TaskRecord extends TaskResult {
  seconds: number;
  finishedAt: string;
}

export interface ResultsFile {
  format: typeof RESULTS_FORMAT;
  config: EvalConfig;
  environment: Environment;
  startedAt: string;
  updatedAt: string;
  /** Per setting, what its runner says about it (execution native/simulated, memory, quantizer report). */
  models?: Record<string, unknown>;
  /** results[setting][task] */
  results: Record<string, Record<string, TaskRecord>>;
}

export class ConfigMismatchError extends Error {
  constructor(file: string, field: string, stored: unknown, requested: unknown) {
    super(
      `${file}: cannot resume, it was written with a different configuration: ${field} is ${JSON.stringify(stored)} there, ` +
        `${JSON.stringify(requested)} now (use another --output, or delete the file to start over)`,
    );
    this.name = "ConfigMismatchError";
  }
}

/** Fields that change scores, compared on resume. */
function fingerprint(c: EvalConfig): Record<string, unknown> {
  return { model: c.model, settings: c.settings, tasks: c.tasks, options: c.options, dataDir: c.dataDir };
}

/** The stored results when `file` exists and matches `config`; undefined when there is no file. */
export function loadForResume(file: string, config: EvalConfig): ResultsFile | undefined {
  if (!existsSync(file)) return undefined;
  let stored: ResultsFile;
  try {
    stored = JSON.parse(readFileSync(file, "utf8")) as ResultsFile;
  } catch (e) {
    throw new Error(`${file}: cannot resume, not valid JSON (${(e as Error).message}); delete it or choose another --output`);
  }
  if (stored.format !== RESULTS_FORMAT) {
    throw new Error(`${file}: cannot resume, format is ${JSON.stringify(stored.format)}, expected "${RESULTS_FORMAT}"`);
  }
  const a = fingerprint(stored.config);
  const b = fingerprint(config);
  for (const k of Object.keys(b)) {
    const sa = JSON.stringify(a[k] ?? null, sortKeys);
    const sb = JSON.stringify(b[k] ?? null, sortKeys);
    if (sa !== sb) {
      if (k !== "options") throw new ConfigMismatchError(file, k, a[k], b[k]);
      const f = diffField(a[k], b[k]);
      throw new ConfigMismatchError(file, `options.${f}`, (a[k] as Record<string, unknown>)[f] ?? null, (b[k] as Record<string, unknown>)[f] ?? null);
    }
  }
  return stored;
}

function sortKeys(_k: string, v: unknown): unknown {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([x], [y]) => (x < y ? -1 : 1)));
  }
  return v;
}

function diffField(a: unknown, b: unknown): string {
  const x = (a ?? {}) as Record<string, unknown>;
  const y = (b ?? {}) as Record<string, unknown>;
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (JSON.stringify(x[k] ?? null) !== JSON.stringify(y[k] ?? null)) return k;
  }
  return "";
}

/** JSON with NaN/Infinity as null (JSON has no such numbers). */
export function toJson(data: unknown): string {
  return JSON.stringify(data, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
}

/** Writes `data` as JSON to `file` atomically: a reader sees the old or the new file, never half of one. */
export function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, toJson(data) + "\n");
  renameSync(tmp, file);
}
