/**
 * The evaluation loop behind `quanteval eval`: the baseline and every quantization setting on every task.
 *
 * - Each task's data is read and tokenized once and shared by all settings (they share the tokenizer); the next
 *   task is prepared while the current one runs on the model.
 * - Perplexity tasks run all pending settings together so KL/top-1/Δp against the baseline come from the same
 *   windows; other tasks run setting by setting.
 * - After every finished (setting, task) the results file is rewritten atomically; a rerun with the same
 *   configuration skips the pairs already there.
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { BatchOptions } from "./batching.js";
import type { EvalModel } from "./model.js";
import { silentProgress, type ProgressFactory } from "./progress.js";
import { getTask } from "./tasks/registry.js";
import type { EvalTask, TaskResult } from "./tasks/types.js";
import { collectEnvironment, type Environment } from "../report/environment.js";
import { loadForResume, RESULTS_FORMAT, writeJsonAtomic, type EvalConfig, type ResultsFile, type SettingSpec } from "../report/results.js";

export type SettingModelFactory = (setting: SettingSpec) => Promise<EvalModel>;

export interface RunHooks {
  progress?: ProgressFactory;
  log?: (line: string) => void;
  /** Called after each (setting, task) result is recorded (and written). */
  onResult?: (setting: string, task: string, result: TaskResult) => void;
  /** Environment to record (default: collected from this machine). */
  environment?: Environment;
}

export async function runEvaluation(config: EvalConfig, factory: SettingModelFactory, output: string | undefined, hooks: RunHooks = {}): Promise<ResultsFile> {
  const log = hooks.log ?? (() => {});
  const progress = hooks.progress ?? silentProgress;
  if (config.settings.length === 0) throw new Error("settings: expected at least the baseline");
  const tasks = config.tasks.map(getTask);
  const now = new Date().toISOString();
  if (output) mkdirSync(dirname(resolve(output)), { recursive: true });
  const resumed = output ? loadForResume(output, config) : undefined;
  const results: ResultsFile = resumed ?? {
    format: RESULTS_FORMAT,
    config,
    environment: hooks.environment ?? collectEnvironment(),
    startedAt: now,
    updatedAt: now,
    results: {},
  };
  if (resumed) {
    const done = Object.values(resumed.results).reduce((a, r) => a + Object.keys(r).length, 0);
    log(`resuming ${output}: ${done} (setting, task) results already there`);
  }
  results.config = { ...results.config, batchSize: config.batchSize, samples: config.samples };

  const models = new Map<string, Promise<EvalModel>>();
  const modelFor = (s: SettingSpec): Promise<EvalModel> => {
    if (!models.has(s.name)) {
      const t0 = performance.now();
      models.set(
        s.name,
        factory(s).then((m) => {
          const d = (m as EvalModel & { describe?: () => Record<string, unknown> }).describe?.();
          (results.models ??= {})[s.name] = { ...(d ?? { name: m.name }), loadSeconds: (performance.now() - t0) / 1000 };
          return m;
        }),
      );
    }
    return models.get(s.name)!;
  };
  const baseline = config.settings[0];
  const batch: BatchOptions = { batchSize: config.batchSize };
  const isDone = (s: SettingSpec, t: EvalTask<unknown>) => results.results[s.name]?.[t.name] !== undefined;
  const pendingOf = (t: EvalTask<unknown>) => config.settings.filter((s) => !isDone(s, t));

  const record = (s: string, t: string, r: TaskResult, seconds: number) => {
    (results.results[s] ??= {})[t] = { ...r, seconds, finishedAt: new Date().toISOString() };
    results.updatedAt = new Date().toISOString();
    if (output) writeJsonAtomic(output, results);
    hooks.onResult?.(s, t, r);
  };

  // Prepare lazily, one task ahead of the one being evaluated.
  const prepared = new Map<number, Promise<unknown>>();
  const prepare = (i: number): Promise<unknown> => {
    if (!prepared.has(i)) {
      prepared.set(
        i,
        modelFor(baseline).then((tok) => tasks[i].prepare({ tok, dataDir: config.dataDir, options: config.options })),
      );
      prepared.get(i)!.catch(() => {}); // surfaced when awaited
    }
    return prepared.get(i)!;
  };

  try {
    await runTasks();
  } finally {
    // Free native weights now rather than at garbage collection (several settings of a large model add up).
    for (const m of models.values()) {
      m.then((x) => (x as EvalModel & { dispose?: () => void }).dispose?.(), () => {});
    }
  }
  if (output) writeJsonAtomic(output, results);
  return results;

  async function runTasks(): Promise<void> {
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[i];
      const pending = pendingOf(task);
      if (pending.length === 0) {
        log(`${task.name}: all settings already done, skipped`);
        continue;
      }
      const p = await prepare(i);
      const next = tasks.findIndex((t, j) => j > i && pendingOf(t).length > 0);
      if (next >= 0) void prepare(next);
      const env = (setting: string) => ({ batch, progress, samples: config.samples, setting });

      if (task.evaluateMany && config.settings.length > 1) {
        // Baseline first (for the agreement statistics) even when only its comparisons are pending.
        const run = [baseline, ...pending.filter((s) => s !== baseline)];
        const ms = await Promise.all(run.map(modelFor));
        const t0 = performance.now();
        const rs = await task.evaluateMany(p, run.map((s, k) => ({ setting: s.name, model: ms[k], record: !isDone(s, task) })), env(task.name));
        const seconds = (performance.now() - t0) / 1000;
        run.forEach((s, k) => {
          if (!isDone(s, task)) record(s.name, task.name, rs[k], seconds);
        });
      } else {
        for (const s of pending) {
          const model = await modelFor(s);
          const t0 = performance.now();
          const r = await task.evaluate(p, model, env(s.name));
          record(s.name, task.name, r, (performance.now() - t0) / 1000);
        }
      }
      prepared.delete(i);
      log(`${task.name}: done`);
    }
  }
}
