/**
 * MMLU as lm-evaluation-harness `mmlu` (default prompt): per subject, k-shot (default 5) from the dev split in
 * file order (sampler first_n), description "The following are multiple choice questions (with answers) about
 * {subject with spaces}.\n\n", text "{question.strip()}\nA. …\nB. …\nC. …\nD. …\nAnswer:", choices " A" … " D".
 * `acc` is over all questions (lm-eval's group aggregate weights subjects by size); `acc_macro` averages the
 * subjects; `groups` holds every subject. `limit` applies per subject, as lm-eval's --limit does per subtask.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { dataFile, DatasetError, readCsv } from "../data.js";
import { evaluateMc, fewshotPrompt, prepareMc, type McDoc, type PreparedMc } from "./multiple_choice.js";
import type { EvalTask } from "./types.js";

const HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"];
const LETTERS = ["A", "B", "C", "D"];

interface MmluQuestion {
  question: string;
  choices: string[];
  answer: number;
  line: number;
}

function readSubject(file: string): MmluQuestion[] {
  return readCsv(file, HEADER).map(({ line, row }) => {
    const answer = Number(row[5]);
    if (!Number.isInteger(answer) || answer < 0 || answer > 3) {
      throw new DatasetError(file, line, `field "answer": expected 0..3, got ${JSON.stringify(row[5])}`);
    }
    return { question: row[0], choices: row.slice(1, 5), answer, line };
  });
}

export function mmluText(q: { question: string; choices: string[] }): string {
  return `${q.question.trim()}\n${q.choices.map((c, i) => `${LETTERS[i]}. ${c}`).join("\n")}\nAnswer:`;
}

export function mmluDescription(subject: string): string {
  return `The following are multiple choice questions (with answers) about ${subject.replaceAll("_", " ")}.\n\n`;
}

export const mmlu: EvalTask<PreparedMc> = {
  name: "mmlu",
  kind: "loglikelihood",
  display: [{ metric: "acc", higherIsBetter: true }],
  prepare(env) {
    const testDir = dataFile(env.dataDir, "mmlu/test");
    const subjects = readdirSync(testDir)
      .filter((f) => f.endsWith("_test.csv"))
      .map((f) => f.slice(0, -"_test.csv".length))
      .sort();
    if (subjects.length === 0) throw new DatasetError(testDir, undefined, "expected <subject>_test.csv files, found none");
    const k = env.options.numFewshot ?? 5;
    const docs: McDoc[] = [];
    for (const subject of subjects) {
      const test = readSubject(join(testDir, `${subject}_test.csv`));
      const dev = k > 0 ? readSubject(dataFile(env.dataDir, `mmlu/dev/${subject}_dev.csv`)) : [];
      const shots = dev.slice(0, k).map((q) => ({ text: mmluText(q), target: LETTERS[q.answer] }));
      const description = mmluDescription(subject);
      for (const q of test.slice(0, env.options.limit ?? test.length)) {
        const prompt = fewshotPrompt(description, shots, mmluText(q));
        docs.push({
          id: `mmlu/test/${subject}_test.csv:${q.line}`,
          pairs: LETTERS.map((l) => ({ context: prompt, continuation: ` ${l}` })),
          gold: q.answer,
          normLengths: [1, 1, 1, 1],
          group: subject,
        });
      }
    }
    return prepareMc(env.tok, docs, env.options.bos ?? true);
  },
  evaluate(p, model, env) {
    return evaluateMc(p, model, env, "mmlu", { metrics: ["acc"], groups: true });
  },
};
