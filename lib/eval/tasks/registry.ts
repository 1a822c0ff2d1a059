/** Task names accepted by `--tasks`, and the lookup that turns a name into a task. */
import { arcChallenge, arcEasy, boolq, copa, hellaswag, lambada, openbookqa, piqa, winogrande } from "./mc_tasks.js";
import { mmlu } from "./mmlu.js";
import { textPerplexity, tinystories, wikitext2 } from "./perplexity_task.js";
import { truthfulqaMc1, truthfulqaMc2 } from "./truthfulqa.js";
import type { EvalTask } from "./types.js";
import { gsm8k, gsm8kCot } from "./gsm8k.js";
import { mtBench } from "./mt_bench.js";
import { longevalLines, longevalTopics } from "./longeval.js";
import { needleHaystack } from "./needle.js";
import { efficiency } from "./efficiency_task.js";

const TASKS: EvalTask<any>[] = [
  wikitext2,
  tinystories,
  arcEasy,
  arcChallenge,
  piqa,
  winogrande,
  boolq,
  hellaswag,
  openbookqa,
  copa,
  lambada,
  mmlu,
  truthfulqaMc1,
  truthfulqaMc2,
  gsm8kCot,
  gsm8k,
  mtBench,
  longevalLines,
  longevalTopics,
  needleHaystack,
  efficiency,
];

const ALIASES: Record<string, string> = {
  lambada: "lambada_openai",
  obqa: "openbookqa",
  wikitext: "wikitext2",
  arc_e: "arc_easy",
  arc_c: "arc_challenge",
  niah: "needle",
  needle_haystack: "needle",
};

export function taskNames(): string[] {
  return [...TASKS.map((t) => t.name), "text:<file>"];
}

export function registerTask(task: EvalTask<any>): void {
  if (TASKS.some((t) => t.name === task.name)) throw new Error(`task ${task.name} is already registered`);
  TASKS.push(task);
}

export function getTask(name: string): EvalTask<any> {
  if (name.startsWith("text:")) return textPerplexity(name.slice(5));
  const canonical = ALIASES[name] ?? name;
  const t = TASKS.find((x) => x.name === canonical);
  if (!t) throw new Error(`--tasks: unknown task "${name}"; known: ${taskNames().join(", ")}`);
  return t;
}
