/**
 * The single-file multiple-choice tasks, with lm-evaluation-harness prompts rebuilt from the llm-foundry JSONL
 * fields in `multiple_choice/` (see its PROVENANCE.txt: the stored query strings differ slightly from lm-eval's):
 *
 * | task          | lm-eval doc_to_text                          | choices                    | metrics        |
 * | arc_easy/…    | "Question: {q}\nAnswer:"                     | " " + choice               | acc, acc_norm  |
 * | piqa          | "Question: {goal}\nAnswer:"                  | " " + sol                  | acc, acc_norm  |
 * | boolq         | "{passage}\nQuestion: {question}?\nAnswer:"  | " no", " yes"              | acc            |
 * | openbookqa    | "{question_stem}"                            | " " + choice               | acc, acc_norm  |
 * | copa          | premise[:-1] + " because"/" therefore"      | " " + lowercased-first     | acc            |
 * | hellaswag     | preprocess(label + ": " + ctx_a + " " + ctx_b.capitalize()) | " " + preprocess(ending) | acc, acc_norm |
 * | winogrande    | partial scoring: one context per option      | " " + shared continuation  | acc            |
 * | lambada_openai| text without the last word                   | " " + last word            | acc, perplexity|
 *
 * Zero-shot by default; with numFewshot k the examples come from the same file (these are the only splits
 * staged), drawn with a seed, never the document itself.
 */
import { dataFile, DatasetError, jsonlRows, type Row } from "../data.js";
import type { EvalModel } from "../model.js";
import { mean, type Metric } from "../stats.js";
import { evaluateMc, fewshotPrompt, fewshotSampler, prepareMc, type DocScorer, type McDoc, type McEvalOptions, type PreparedMc } from "./multiple_choice.js";
import type { EvalTask, PrepareEnv, RunEnv, TaskResult } from "./types.js";
import { existsSync } from "node:fs";
import { join } from "node:path";

interface ParsedChoiceDoc {
  text: string;
  choices: string[];
  gold: number;
}

const len = (s: string): number => [...s].length;

function stripPrefix(row: Row, field: string, value: string, prefix: string): string {
  if (!value.startsWith(prefix)) {
    throw new DatasetError(row.file, row.line, `field "${field}": expected it to start with ${JSON.stringify(prefix)}, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return value.slice(prefix.length);
}

function choicesAndGold(row: Row): { choices: string[]; gold: number } {
  const choices = row.strings("choices", 2);
  return { choices, gold: row.int("gold", 0, choices.length - 1) };
}

/** Build docs for a "text + one of choices" task, with k-shot prompts from the same pool. */
function choiceDocs(parsed: ParsedChoiceDoc[], ids: string[], k: number, seed: number, limit?: number): McDoc[] {
  const sample = fewshotSampler(parsed.length, seed);
  const n = Math.min(limit ?? parsed.length, parsed.length);
  const docs: McDoc[] = [];
  for (let i = 0; i < n; i++) {
    const d = parsed[i];
    const shots = sample(k, i).map((j) => ({ text: parsed[j].text, target: parsed[j].choices[parsed[j].gold] }));
    const prompt = fewshotPrompt("", shots, d.text);
    docs.push({
      id: ids[i],
      pairs: d.choices.map((c) => ({ context: prompt, continuation: ` ${c}` })),
      gold: d.gold,
      normLengths: d.choices.map(len),
    });
  }
  return docs;
}

interface ChoiceTaskSpec {
  name: string;
  /** Files tried in order under the data root (first existing wins). */
  files: string[];
  metrics: string[];
  parse(row: Row): ParsedChoiceDoc;
}

function choiceTask(spec: ChoiceTaskSpec): EvalTask<PreparedMc> {
  return {
    name: spec.name,
    kind: "loglikelihood",
    display: spec.metrics.map((m) => ({ metric: m, higherIsBetter: true })),
    prepare(env: PrepareEnv): PreparedMc {
      const notes: string[] = [];
      const rel = spec.files.find((f) => existsSync(join(env.dataDir, f))) ?? spec.files[0];
      if (rel !== spec.files[0]) notes.push(`${spec.files[0]} not found; using ${rel}`);
      const rows = jsonlRows(dataFile(env.dataDir, rel));
      const parsed = rows.map((r) => spec.parse(r));
      const docs = choiceDocs(parsed, rows.map((r) => `${rel}:${r.line}`), env.options.numFewshot ?? 0, env.options.seed ?? 1234, env.options.limit);
      return prepareMc(env.tok, docs, env.options.bos ?? true, notes);
    },
    evaluate(p: PreparedMc, model: EvalModel, env: RunEnv): Promise<TaskResult> {
      return evaluateMc(p, model, env, spec.name, { metrics: spec.metrics });
    },
  };
}

const arc = (name: string, file: string): EvalTask<PreparedMc> =>
  choiceTask({
    name,
    files: [`multiple_choice/${file}`],
    metrics: ["acc", "acc_norm"],
    parse(row) {
      const q = stripPrefix(row, "query", row.string("query"), "Question: ");
      return { text: `Question: ${q}\nAnswer:`, ...choicesAndGold(row) };
    },
  });

export const arcEasy = arc("arc_easy", "arc_easy.jsonl");
export const arcChallenge = arc("arc_challenge", "arc_challenge.jsonl");

export const piqa = choiceTask({
  name: "piqa",
  files: ["multiple_choice/piqa.jsonl"],
  metrics: ["acc", "acc_norm"],
  parse(row) {
    const goal = stripPrefix(row, "query", row.string("query"), "Question: ").replace(/\n$/, "");
    return { text: `Question: ${goal}\nAnswer:`, ...choicesAndGold(row) };
  },
});

export const boolq = choiceTask({
  name: "boolq",
  files: ["multiple_choice/boolq.jsonl"],
  metrics: ["acc"],
  parse(row) {
    const body = stripPrefix(row, "query", row.string("query"), "Passage: ");
    return { text: `${body}\nAnswer:`, ...choicesAndGold(row) };
  },
});

export const openbookqa = choiceTask({
  name: "openbookqa",
  files: ["multiple_choice/openbook_qa.jsonl"],
  metrics: ["acc", "acc_norm"],
  parse(row) {
    return { text: row.string("query"), ...choicesAndGold(row) };
  },
});

export const copa = choiceTask({
  name: "copa",
  files: ["multiple_choice/copa.jsonl"],
  metrics: ["acc"],
  parse(row) {
    const q = row.string("query");
    const m = /^(.*), (because|therefore)$/s.exec(q);
    if (!m) throw new DatasetError(row.file, row.line, `field "query": expected "<premise>, because|therefore", got ${JSON.stringify(q.slice(-40))}`);
    const { choices, gold } = choicesAndGold(row);
    return { text: `${m[1]} ${m[2]}`, choices: choices.map((c) => c.charAt(0).toLowerCase() + c.slice(1)), gold };
  },
});

/** lm-eval hellaswag `preprocess`. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

/** Python str.capitalize(): first character upper case, the rest lower case. */
function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
}

export const hellaswag = choiceTask({
  name: "hellaswag",
  files: ["multiple_choice/hellaswag.jsonl", "multiple_choice/hellaswag_small.jsonl"],
  metrics: ["acc", "acc_norm"],
  parse(row) {
    if (row.has("ctx_a")) {
      // Hugging Face format: apply lm-eval's preprocessing.
      const ctx = `${row.string("ctx_a")} ${capitalize(row.string("ctx_b"))}`;
      const endings = row.strings("endings", 2);
      const label = row.raw("label");
      const gold = typeof label === "string" ? Number.parseInt(label, 10) : row.int("label");
      if (!Number.isInteger(gold) || gold < 0 || gold >= endings.length) {
        throw new DatasetError(row.file, row.line, `field "label": expected an index below ${endings.length}, got ${JSON.stringify(label)}`);
      }
      return { text: hellaswagPreprocess(`${row.string("activity_label")}: ${ctx}`), choices: endings.map(hellaswagPreprocess), gold };
    }
    // llm-foundry format: query and choices are already preprocessed.
    return { text: row.string("query"), ...choicesAndGold(row) };
  },
});

export const winogrande: EvalTask<PreparedMc> = {
  name: "winogrande",
  kind: "loglikelihood",
  display: [{ metric: "acc", higherIsBetter: true }],
  prepare(env) {
    const rel = "multiple_choice/winogrande.jsonl";
    const rows = jsonlRows(dataFile(env.dataDir, rel));
    const parsed = rows.map((r) => {
      const options = r.strings("context_options", 2);
      return { options, continuation: r.string("continuation"), gold: r.int("gold", 0, options.length - 1) };
    });
    const sample = fewshotSampler(parsed.length, env.options.seed ?? 1234);
    const k = env.options.numFewshot ?? 0;
    const n = Math.min(env.options.limit ?? parsed.length, parsed.length);
    const docs: McDoc[] = [];
    for (let i = 0; i < n; i++) {
      const d = parsed[i];
      const prefix = fewshotPrompt("", sample(k, i).map((j) => ({ text: parsed[j].options[parsed[j].gold], target: parsed[j].continuation })), "");
      docs.push({
        id: `${rel}:${rows[i].line}`,
        pairs: d.options.map((o) => ({ context: prefix + o, continuation: ` ${d.continuation}` })),
        gold: d.gold,
        normLengths: d.options.map(len),
      });
    }
    return prepareMc(env.tok, docs, env.options.bos ?? true);
  },
  evaluate(p, model, env) {
    return evaluateMc(p, model, env, "winogrande", { metrics: ["acc"] });
  },
};

/** LAMBADA: acc = the last word is the greedy continuation; perplexity = exp(−mean log p(last word)). */
const lambadaScorer: DocScorer = (_doc, res) => ({ acc: res[0].isGreedy ? 1 : 0, perplexity: res[0].logprob });
const lambadaOptions: McEvalOptions = {
  metrics: ["acc", "perplexity"],
  scorer: lambadaScorer,
  aggregate: { perplexity: (lls: number[]): Metric => ({ value: Math.exp(-mean(lls)) }) },
};

export const lambada: EvalTask<PreparedMc> = {
  name: "lambada_openai",
  kind: "loglikelihood",
  display: [
    { metric: "acc", higherIsBetter: true },
    { metric: "perplexity", higherIsBetter: false },
  ],
  prepare(env) {
    const rel = "multiple_choice/lambada_openai.jsonl";
    const rows = jsonlRows(dataFile(env.dataDir, rel));
    const n = Math.min(env.options.limit ?? rows.length, rows.length);
    const docs: McDoc[] = rows.slice(0, n).map((r) => {
      const cont = r.string("continuation");
      return { id: `${rel}:${r.line}`, pairs: [{ context: r.string("context"), continuation: ` ${cont}` }], gold: 0, normLengths: [len(cont)] };
    });
    return prepareMc(env.tok, docs, env.options.bos ?? true);
  },
  evaluate(p, model, env) {
    return evaluateMc(p, model, env, "lambada_openai", lambadaOptions);
  },
};
