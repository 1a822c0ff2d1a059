/**
 * `quanteval eval`: baseline + every `--quant` setting on every `--tasks` task; prints the summary table to stdout
 * (logs and progress go to stderr) and writes the results JSON after each finished (setting, task).
 */
import type { Command } from "commander";
import { renderTable } from "../report/table.js";
import type { EvalConfig, SettingSpec } from "../report/results.js";
import { dataRoot } from "./data.js";
import { loadModel } from "./model_factory.js";
import { progressFactory, type ProgressMode } from "./progress.js";
import { runEvaluation } from "./runner.js";
import { getTask, taskNames } from "./tasks/registry.js";
import type { TaskOptions } from "./tasks/types.js";

interface EvalCliOptions {
  model: string;
  quant?: string;
  tasks: string;
  limit?: string;
  batchSize: string;
  data?: string;
  output?: string;
  samples?: boolean;
  numFewshot?: string;
  seed: string;
  seqLen?: string;
  stride?: string;
  bos: boolean;
  kl: boolean;
  maxGenTokens?: string;
  contextLengths?: string;
  depths?: string;
  judgeModel?: string;
  tokenizer?: string;
  decodeBatchSizes?: string;
  progress: string;
}

function int(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer ≥ ${min}, got "${v}"`);
  return n;
}

function intList(name: string, v: string | undefined): number[] | undefined {
  return v === undefined ? undefined : v.split(",").map((x) => int(name, x.trim(), 0)!);
}

export function parseSettings(quant: string | undefined): SettingSpec[] {
  const specs = (quant ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  const seen = new Set<string>();
  for (const s of specs) {
    if (s === "baseline") throw new Error(`--quant: "baseline" is always evaluated; list only quantized settings`);
    if (seen.has(s)) throw new Error(`--quant: setting "${s}" is listed twice`);
    seen.add(s);
  }
  return [{ name: "baseline", quant: null }, ...specs.map((s) => ({ name: s, quant: s }))];
}

export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description("evaluate a model and its quantized settings on perplexity, multiple-choice, generation and long-context tasks")
    .requiredOption("--model <source>", "model folder, quantized checkpoint, hub id, synthetic:<preset>, or toy:<text file|builtin>")
    .option("--quant <specs>", "comma-separated quantization settings (the baseline is always evaluated first)")
    .requiredOption("--tasks <tasks>", `comma-separated tasks: ${taskNames().join(", ")}`)
    .option("--limit <n>", "only the first N documents of each task (windows for perplexity)")
    .option("--batch-size <n|auto>", "requests per model call, or auto (packed to a token budget)", "auto")
    .option("--data <dir>", "dataset folder (default $QUANTEVAL_DATA or <repo>/../shared/data/datasets)")
    .option("--output <file.json>", "results file, written after every task; an existing one is resumed")
    .option("--samples", "keep per-sample outputs in the results file")
    .option("--num-fewshot <n>", "few-shot examples (default: each task's lm-eval default)")
    .option("--seed <n>", "seed for few-shot sampling and sampled generation", "1234")
    .option("--seq-len <n>", "perplexity window length (default 512 or the model's maxContext)")
    .option("--stride <n>", "perplexity: sliding windows with this stride (default: non-overlapping windows)")
    .option("--no-bos", "do not prepend BOS to contexts")
    .option("--no-kl", "perplexity: skip KL / top-1 / Δp against the baseline (no log-softmax rows)")
    .option("--max-gen-tokens <n>", "generation tasks: cap on generated tokens")
    .option("--context-lengths <list>", "needle-in-a-haystack / efficiency context lengths (tokens)")
    .option("--depths <list>", "needle-in-a-haystack depths (percent)")
    .option("--tokenizer <dir>", "tokenizer folder for models without one (synthetic presets)")
    .option("--judge-model <source>", "mt_bench: judge the answers with this model (same sources as --model)")
    .option("--decode-batch-sizes <list>", "efficiency: batch sizes to time decode at (default 1,4)")
    .option("--progress <mode>", "auto | bar | lines | silent", "auto")
    .action(async (o: EvalCliOptions) => {
      const tasks = o.tasks.split(",").map((t) => t.trim()).filter((t) => t !== "");
      if (tasks.length === 0) throw new Error("--tasks: expected at least one task");
      const taskObjs = tasks.map(getTask);
      const batchSize = o.batchSize === "auto" ? "auto" : int("--batch-size", o.batchSize, 1)!;
      const options: TaskOptions = {
        limit: int("--limit", o.limit, 1),
        numFewshot: int("--num-fewshot", o.numFewshot, 0),
        seed: int("--seed", o.seed, 0),
        bos: o.bos,
        kl: o.kl ? undefined : false,
        seqLen: int("--seq-len", o.seqLen, 2),
        stride: int("--stride", o.stride, 1),
        maxGenTokens: int("--max-gen-tokens", o.maxGenTokens, 1),
        contextLengths: intList("--context-lengths", o.contextLengths),
        depths: intList("--depths", o.depths),
        judgeModel: o.judgeModel,
        batchSizes: intList("--decode-batch-sizes", o.decodeBatchSizes),
      };
      for (const k of Object.keys(options) as (keyof TaskOptions)[]) if (options[k] === undefined) delete options[k];
      const config: EvalConfig = {
        model: o.model,
        settings: parseSettings(o.quant),
        tasks: taskObjs.map((t) => t.name),
        options,
        dataDir: dataRoot(o.data),
        batchSize,
        samples: o.samples ?? false,
      };
      if (!o.model.startsWith("toy:")) {
        // Reject a bad spec before any data is read or model loaded.
        const { parseSpec } = await import("../quant/spec.js");
        for (const s of config.settings) {
          if (s.quant === null) continue;
          try {
            parseSpec(s.quant);
          } catch (e) {
            throw new Error(`--quant: setting "${s.quant}": ${(e as Error).message}`);
          }
        }
      }
      const mode = o.progress as ProgressMode;
      if (!["auto", "bar", "lines", "silent"].includes(mode)) throw new Error(`--progress: expected auto, bar, lines or silent, got "${o.progress}"`);
      const log = mode === "silent" ? undefined : (l: string) => process.stderr.write(`${l}\n`);
      const results = await runEvaluation(config, (s) => loadModel(o.model, s.quant, { tokenizer: o.tokenizer, dataDir: config.dataDir, log }), o.output, {
        progress: progressFactory(mode),
        log,
        onResult: (s, t, r) => {
          log?.(`${s} ${t}: ${Object.entries(r.metrics).slice(0, 3).map(([k, m]) => `${k}=${m.value.toPrecision(5)}`).join(" ")}`);
        },
      });
      process.stdout.write(`${renderTable(results, taskObjs)}\n`);
      if (o.output) process.stdout.write(`results: ${o.output}\n`);
    });
}
