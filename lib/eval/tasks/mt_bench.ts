/**
 * MT-Bench (FastChat llm_judge): two-turn answers are generated and saved for judging — the second turn sees the
 * first question and the model's own first answer. The chat template is used when the model has one (else a plain
 * "USER:/ASSISTANT:" transcript). Sampling temperature per category as FastChat's `temperature_config`, seeded.
 *
 * With `judgeModel` set (`--judge-model <source>`), a model the tool can run rates every answer 1–10 with FastChat's
 * single-answer prompts (single-v1, and single-math-v1 with the reference answer for math, reasoning and coding;
 * the "-multi-turn" variants for turn 2) and the rating is parsed from "[[N]]". The answers are always in
 * `details.answers`, in FastChat's model_answer layout.
 */
import { generateBatched } from "../batching.js";
import { dataFile, DatasetError, jsonlRows } from "../data.js";
import type { EvalModel } from "../model.js";
import { loadModel } from "../model_factory.js";
import { mean, meanMetric, type Metric } from "../stats.js";
import { encodeChat, maxGen, PLAIN_CHAT_STOPS, type Message } from "./generation.js";
import type { EvalTask, RunEnv, TaskResult } from "./types.js";

export const TEMPERATURE: Record<string, number> = {
  writing: 0.7,
  roleplay: 0.7,
  extraction: 0.0,
  math: 0.0,
  coding: 0.0,
  reasoning: 0.0,
  stem: 0.1,
  humanities: 0.1,
};
const NEED_REF = new Set(["math", "reasoning", "coding"]);

interface Question {
  id: number;
  category: string;
  turns: [string, string];
  reference?: [string, string];
}

interface JudgePrompt {
  system: string;
  template: string;
}

export interface PreparedMtBench {
  questions: Question[];
  judgePrompts: Map<string, JudgePrompt>;
  maxTokens: number;
  seed: number;
  judgeModel?: string;
}

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? vars[k] : m));
}

/** FastChat's rating parse: "[[x]]", else "[x]"; -1 when absent. */
export function parseRating(judgment: string): number {
  const m = /\[\[(\d+\.?\d*)\]\]/.exec(judgment) ?? /\[(\d+\.?\d*)\]/.exec(judgment);
  return m ? Number(m[1]) : -1;
}

export const mtBench: EvalTask<PreparedMtBench> = {
  name: "mt_bench",
  kind: "generation",
  display: [
    { metric: "score", higherIsBetter: true },
    { metric: "answered", higherIsBetter: true },
  ],
  prepare(env) {
    const qfile = dataFile(env.dataDir, "mt_bench/question.jsonl");
    const refs = new Map<number, [string, string]>();
    for (const r of jsonlRows(dataFile(env.dataDir, "mt_bench/reference_answer_gpt-4.jsonl"))) {
      const choices = r.raw("choices") as { turns?: string[] }[] | undefined;
      const turns = choices?.[0]?.turns;
      if (!Array.isArray(turns) || turns.length < 2) throw new DatasetError(r.file, r.line, `field "choices[0].turns": expected 2 strings`);
      refs.set(r.int("question_id"), [turns[0], turns[1]]);
    }
    const judgePrompts = new Map<string, JudgePrompt>();
    for (const r of jsonlRows(dataFile(env.dataDir, "mt_bench/judge_prompts.jsonl"))) {
      judgePrompts.set(r.string("name"), { system: r.string("system_prompt"), template: r.string("prompt_template") });
    }
    const questions = jsonlRows(qfile).map((r): Question => {
      const turns = r.strings("turns", 2);
      const id = r.int("question_id");
      return { id, category: r.string("category"), turns: [turns[0], turns[1]], reference: refs.get(id) };
    });
    return {
      questions: questions.slice(0, env.options.limit ?? questions.length),
      judgePrompts,
      maxTokens: env.options.maxGenTokens ?? 1024,
      seed: env.options.seed ?? 1234,
      judgeModel: env.options.judgeModel,
    };
  },
  async evaluate(p, model, env): Promise<TaskResult> {
    const notes: string[] = [];
    const progress = env.progress(`${env.setting} mt_bench`, p.questions.length * 2);
    const stops = model.applyChatTemplate ? undefined : PLAIN_CHAT_STOPS;
    if (!model.applyChatTemplate) notes.push("model has no chat template: plain USER:/ASSISTANT: transcript");
    const gen = async (convs: Message[][]) => {
      const prompts = convs.map((c) => encodeChat(model, c).ids);
      return generateBatched(
        model,
        prompts,
        (i) => ({ maxTokens: maxGen(model, prompts[i].length, p.maxTokens), stop: stops, temperature: TEMPERATURE[p.questions[i].category] ?? 0.7, seed: p.seed + p.questions[i].id }),
        env.batch,
        progress,
      );
    };
    const first = await gen(p.questions.map((q) => [{ role: "user", content: q.turns[0] }]));
    const second = await gen(
      p.questions.map((q, i) => [
        { role: "user", content: q.turns[0] },
        { role: "assistant", content: first[i].text.trim() },
        { role: "user", content: q.turns[1] },
      ]),
    );
    progress.done();
    const answers = p.questions.map((q, i) => ({ question_id: q.id, category: q.category, model_id: model.name, choices: [{ index: 0, turns: [first[i].text.trim(), second[i].text.trim()] }] }));
    const answered = answers.map((a) => (a.choices[0].turns.every((t) => t.length > 0) ? 1 : 0));
    const lengths = p.questions.flatMap((_, i) => [first[i].tokens.length, second[i].tokens.length]);
    const metrics: Record<string, Metric> = { answered: meanMetric(answered), mean_tokens: { value: mean(lengths) } };
    const details: Record<string, unknown> = { answers };
    if (p.judgeModel) {
      const judged = await judge(p, answers.map((a) => a.choices[0].turns as [string, string]), await judgeModelFor(p.judgeModel), env);
      Object.assign(metrics, judged.metrics);
      details.judgments = judged.judgments;
    }
    return { n: p.questions.length, metrics, notes: notes.length ? notes : undefined, details };
  },
};

/** The judge is loaded once per process and shared by every setting's evaluation. */
const judges = new Map<string, Promise<EvalModel>>();
function judgeModelFor(source: string): Promise<EvalModel> {
  if (!judges.has(source)) judges.set(source, loadModel(source, null));
  return judges.get(source)!;
}

async function judge(p: PreparedMtBench, answers: [string, string][], judgeModel: EvalModel, env: RunEnv) {
  const jobs: { qi: number; turn: 1 | 2; messages: Message[] }[] = [];
  p.questions.forEach((q, qi) => {
    const ref = NEED_REF.has(q.category) && q.reference;
    for (const turn of [1, 2] as const) {
      const name = `single-${ref ? "math-" : ""}v1${turn === 2 ? "-multi-turn" : ""}`;
      const jp = p.judgePrompts.get(name);
      if (!jp) throw new Error(`mt_bench/judge_prompts.jsonl: no prompt named "${name}"`);
      const vars: Record<string, string> = {
        question: q.turns[0],
        answer: answers[qi][0],
        question_1: q.turns[0],
        question_2: q.turns[1],
        answer_1: answers[qi][0],
        answer_2: answers[qi][1],
        ref_answer_1: ref ? ref[0] : "",
        ref_answer_2: ref ? ref[1] : "",
      };
      jobs.push({ qi, turn, messages: [{ role: "system", content: jp.system }, { role: "user", content: fill(jp.template, vars) }] });
    }
  });
  const progress = env.progress(`${env.setting} mt_bench judge`, jobs.length);
  const prompts = jobs.map((j) => encodeChat(judgeModel, j.messages).ids);
  const outs = await generateBatched(judgeModel, prompts, (i) => ({ maxTokens: maxGen(judgeModel, prompts[i].length, 2048), temperature: 0 }), env.batch, progress);
  progress.done();
  const judgments = jobs.map((j, i) => ({ question_id: p.questions[j.qi].id, turn: j.turn, judgment: outs[i].text, rating: parseRating(outs[i].text) }));
  const valid = (turn?: number) => judgments.filter((j) => j.rating >= 0 && (turn === undefined || j.turn === turn)).map((j) => j.rating);
  return {
    judgments,
    metrics: {
      score: meanMetric(valid()),
      score_turn1: meanMetric(valid(1)),
      score_turn2: meanMetric(valid(2)),
      judge_parse_rate: { value: valid().length / judgments.length },
    } as Record<string, Metric>,
  };
}
