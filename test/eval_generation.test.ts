// Generation and long-context tasks with a scripted model (the toy bigram model whose `generate` answers from a
// script): prompts, stop strings, lm-eval answer extraction, MT-Bench turns and judging, LongEval, needle in a
// haystack, and the efficiency task.
import { describe, expect, it } from "vitest";
import type { EvalModel, GenerateOptions, GenerateResult } from "../lib/eval/model.js";
import { registerModelLoader } from "../lib/eval/model_factory.js";
import { silentProgress } from "../lib/eval/progress.js";
import { getTask } from "../lib/eval/tasks/registry.js";
import { NEEDLE } from "../lib/eval/tasks/needle.js";
import type { TaskOptions, TaskResult } from "../lib/eval/tasks/types.js";
import { ToyBigramModel, type ToyOptions } from "../lib/eval/toy_model.js";
import { jsonl, TRAIN, writeDataDir } from "./helpers/eval_fixtures.js";

/** Toy model whose generate() answers `respond(promptText)`, honouring maxTokens and stop strings. */
class ScriptedModel extends ToyBigramModel {
  prompts: string[] = [];
  constructor(private respond: (prompt: string) => string, opts: ToyOptions = {}) {
    super(TRAIN, opts);
  }
  override async generate(prompt: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
    const text = this.decode(prompt);
    this.prompts.push(text);
    let ids = this.encode(this.respond(text));
    let finishReason: GenerateResult["finishReason"] = "eos";
    if (ids.length > opts.maxTokens) {
      ids = ids.slice(0, opts.maxTokens);
      finishReason = "length";
    }
    let out = this.decode(ids);
    for (const s of opts.stop ?? []) {
      const k = out.indexOf(s);
      if (k >= 0) {
        out = out.slice(0, k);
        finishReason = "stop";
      }
    }
    return { tokens: this.encode(out), text: out, finishReason };
  }
}

async function run(task: string, dataDir: string, model: EvalModel, options: TaskOptions = {}): Promise<TaskResult> {
  const t = getTask(task);
  const p = await t.prepare({ tok: model, dataDir, options });
  return t.evaluate(p, model, { batch: { batchSize: 4 }, progress: silentProgress, samples: true, setting: "test" });
}

describe("gsm8k", () => {
  const dir = writeDataDir({
    "gsm8k/test.jsonl": jsonl([
      { question: "Janet sells eggs. How much?", answer: "9 * 2 = <<9*2=18>>18\n#### 18" },
      { question: "How many dollars in total?", answer: "#### 1000" },
      { question: "How many bolts?", answer: "2/2=1\n#### 3" },
    ]),
    "gsm8k/train.jsonl": jsonl(Array.from({ length: 7 }, (_, i) => ({ question: `Train question ${i}?`, answer: `Work ${i}.\n#### ${i}` }))),
  });
  const replies: Record<string, string> = {
    "Janet sells eggs. How much?": "9 * 2 = 18 dollars. The answer is 18.\n\nQ: and then",
    "How many dollars in total?": "The answer is $1,000.",
    "How many bolts?": "The answer is 4. Actually 5",
  };
  const respond = (prompt: string) => replies[Object.keys(replies).find((q) => prompt.endsWith(`${q}\nA:`) || prompt.endsWith(`${q}\nAnswer:`))!];

  it("gsm8k_cot: 8 standard exemplars, stop at 'Q:', strict 'The answer is' and flexible last-number match", async () => {
    const m = new ScriptedModel(respond);
    const r = await run("gsm8k_cot", dir, m);
    expect(m.prompts[0].startsWith("Q: There are 15 trees in the grove.")).toBe(true);
    expect(m.prompts[0].split("\n\nQ: ").length).toBe(9);
    expect(m.prompts[0].endsWith("The answer is 8.\n\nQ: Janet sells eggs. How much?\nA:")).toBe(true);
    expect(r.metrics.exact_match_strict.value).toBeCloseTo(1 / 3, 12);
    expect(r.metrics.exact_match_flexible.value).toBeCloseTo(2 / 3, 12);
    const s = r.samples as { output: string; strict: string; flexible: string }[];
    expect(s[0].output).toBe("9 * 2 = 18 dollars. The answer is 18.\n\n");
    // lm-eval's strict pattern ends in an unescaped "." (any character but a newline): "4. Actually" gives "4."
    expect(s.map((x) => x.strict)).toEqual(["18", "[invalid]", "4."]);
    expect(s.map((x) => x.flexible)).toEqual(["18.", "$1,000.", "5"]);
  });

  it("gsm8k: k-shot from train with a seed ('Question:/Answer:' with the full solution)", async () => {
    const m = new ScriptedModel(respond);
    await run("gsm8k", dir, m, { numFewshot: 3, limit: 1 });
    const shots = m.prompts[0].split("\n\n").slice(0, 3);
    for (const s of shots) expect(s).toMatch(/^Question: Train question (\d)\?\nAnswer: Work \1\.\n#### \1$/);
    expect(new Set(shots).size).toBe(3);
    const again = new ScriptedModel(respond);
    await run("gsm8k", dir, again, { numFewshot: 3, limit: 1 });
    expect(again.prompts[0]).toBe(m.prompts[0]);
  });
});

describe("mt_bench", () => {
  const dir = writeDataDir({
    "mt_bench/question.jsonl": jsonl([
      { question_id: 81, category: "writing", turns: ["Write a poem.", "Make it shorter."] },
      { question_id: 111, category: "math", turns: ["What is 2+2?", "And 3+3?"] },
    ]),
    "mt_bench/reference_answer_gpt-4.jsonl": jsonl([{ question_id: 111, choices: [{ index: 0, turns: ["4", "6"] }] }]),
    "mt_bench/judge_prompts.jsonl": jsonl([
      { name: "single-v1", type: "single", system_prompt: "Judge.", prompt_template: "[Question]\n{question}\n[Answer]\n{answer}" },
      { name: "single-math-v1", type: "single", system_prompt: "Judge math.", prompt_template: "[Question]\n{question}\n[Ref]\n{ref_answer_1}\n[Answer]\n{answer}" },
      { name: "single-v1-multi-turn", type: "single", system_prompt: "Judge multi.", prompt_template: "MULTI {question_1} {answer_1} {question_2} {answer_2}" },
      { name: "single-math-v1-multi-turn", type: "single", system_prompt: "Judge math multi.", prompt_template: "MULTI {ref_answer_2} {answer_2}" },
    ]),
  });

  it("two turns through the chat template (turn 2 sees turn 1's answer), answers saved, judged by a model", async () => {
    const m = new ScriptedModel((p) => (p.includes("Make it shorter.") ? "Short." : p.includes("And 3+3?") ? "6" : p.includes("2+2") ? "4" : "Roses are red."), { chat: true });
    const judgePrompts: string[] = [];
    registerModelLoader("test-judge", (s) => s === "test:judge", async () => {
      const j = new ScriptedModel((p) => {
        judgePrompts.push(p);
        return p.includes("MULTI") ? "Fine. [[4]]" : p.includes("[Ref]\n4") ? "Rating: [[9]]" : "Rating: [[7]]";
      }, { chat: true });
      return j;
    });
    const r = await run("mt_bench", dir, m, { judgeModel: "test:judge" });
    expect(m.prompts[0]).toBe("<|user|>\nWrite a poem.\n<|assistant|>\n");
    expect(m.prompts).toContain("<|user|>\nWrite a poem.\n<|assistant|>\nRoses are red.\n<|user|>\nMake it shorter.\n<|assistant|>\n");
    const answers = (r.details as { answers: { question_id: number; choices: { turns: string[] }[] }[] }).answers;
    expect(answers.map((a) => [a.question_id, a.choices[0].turns])).toEqual([[81, ["Roses are red.", "Short."]], [111, ["4", "6"]]]);
    expect(r.metrics.answered.value).toBe(1);
    expect(judgePrompts.some((p) => p.includes("<|system|>\nJudge math.\n") && p.includes("[Ref]\n4\n[Answer]\n4"))).toBe(true);
    expect(judgePrompts.some((p) => p.includes("MULTI Write a poem. Roses are red. Make it shorter. Short."))).toBe(true);
    expect(r.metrics.score_turn1.value).toBe((7 + 9) / 2);
    expect(r.metrics.score_turn2.value).toBe(4);
    expect(r.metrics.score.value).toBe((7 + 9 + 4 + 4) / 4);
  });
});

describe("long context", () => {
  const long = "line a: REGISTER_CONTENT is <1>\n".repeat(200);
  const dir = writeDataDir({
    "longeval/lines/200_lines.jsonl": jsonl([
      { expected_number: 2416, prompt: "record... Tell me what is the <REGISTER_CONTENT> in line torpid-kid?" },
      { expected_number: 123, prompt: "record... Tell me what is the <REGISTER_CONTENT> in line seven?" },
    ]),
    "longeval/lines/300_lines.jsonl": jsonl([{ expected_number: 1, prompt: long }]),
    "longeval/topics/1_topics.jsonl": jsonl([
      { topics: ["The psychology of creativity"], prompt: "conversation one. What is the first topic we discussed?" },
      { topics: ["Air pollution"], prompt: "conversation two. What is the first topic we discussed?" },
    ]),
    "needle_haystack_pg_essays/essays/a.txt": "Startups are hard. Founders work a lot. Investors are picky. ".repeat(40),
    "needle_haystack_pg_essays/essays/b.txt": "Lisp is a language. Hackers like it. Painters paint. ".repeat(40),
  });

  it("longeval_lines: first integer of the answer vs the expected number, per length; long prompts skipped", async () => {
    const m = new ScriptedModel((p) => (p.includes("torpid-kid") ? "The <REGISTER_CONTENT> in line torpid-kid is 2416." : "line 7 has 123"), { maxContext: 2048, chat: true });
    const r = await run("longeval_lines", dir, m);
    expect(m.prompts[0].startsWith("<|user|>\nrecord...")).toBe(true);
    expect(r.n).toBe(2);
    expect(r.metrics.acc.value).toBe(0.5);
    expect(r.groups!["200_lines"].metrics.acc.value).toBe(0.5);
    expect(r.notes).toEqual([expect.stringMatching(/^300_lines: skipped, prompts up to \d+ tokens exceed maxContext 2048$/)]);
  });

  it("longeval_topics: answer contains the first topic (case-insensitive)", async () => {
    const m = new ScriptedModel((p) => (p.includes("conversation one") ? "the PSYCHOLOGY of creativity" : "The impact of social media"));
    const r = await run("longeval_topics", dir, m);
    expect(r.metrics.acc.value).toBe(0.5);
    expect(r.groups!["1_topics"].n).toBe(2);
  });

  it("needle: inserted after a sentence at each depth, prompt within the length, scored by the needle's value", async () => {
    const m = new ScriptedModel((p) => {
      const k = p.indexOf(NEEDLE);
      // answers correctly unless the needle is the last thing of the context (depth 100)
      return k >= 0 && !p.slice(k + NEEDLE.length).startsWith("\n\nWhat is") ? "Eat a sandwich and sit in Dolores Park." : "I don't know.";
    }, { maxContext: 4096, chat: true });
    const r = await run("needle", dir, m, { contextLengths: [800, 1600, 100000], depths: [0, 50, 100] });
    expect(r.notes).toContain("context length 100000 skipped: exceeds maxContext 4096");
    expect(r.n).toBe(6);
    // cells in order L400 d0, d50, d100, L1200 d0, d50, d100: depth 0 right after the prompt head, depth 50 after
    // a sentence's period, depth 100 at the end of the context
    m.prompts.forEach((p, i) => {
      const k = p.indexOf(NEEDLE);
      expect(k).toBeGreaterThan(0);
      if (i % 3 === 0) expect(p.slice(0, k).endsWith("<|user|>\n")).toBe(true);
      if (i % 3 === 1) expect(p[k - 1]).toBe(".");
      if (i % 3 === 2) expect(p.slice(k + NEEDLE.length).startsWith("\n\nWhat is the best thing")).toBe(true);
    });
    // BOS + prompt + the 64-token answer budget fill the context length exactly (byte tokens)
    expect(m.prompts.map((p) => 1 + Buffer.byteLength(p) + 64)).toEqual([800, 800, 800, 1600, 1600, 1600]);
    expect(r.groups!.L800_d0.metrics.acc.value).toBe(1);
    expect(r.groups!.L800_d100.metrics.acc.value).toBe(0);
    expect(r.groups!.L1600.metrics.acc.value).toBeCloseTo(2 / 3, 12);
    expect(r.metrics.acc.value).toBeCloseTo(2 / 3, 12);
  });
});

describe("efficiency", () => {
  it("reports the probe's sizes and timed decode per context length × batch size, skipping lengths over maxContext", async () => {
    const m = new ToyBigramModel(TRAIN, { maxContext: 256 });
    const r = await run("efficiency", writeDataDir({}), m, { contextLengths: [16, 64, 1024], batchSizes: [1, 2], maxGenTokens: 4 });
    expect(r.metrics.weight_mib.value).toBeCloseTo((258 * 258 * 4) / 2 ** 20, 12);
    const d = r.details as { latency: { contextLength: number; batchSize: number; decodeMsP50: number }[]; skipped: string[] };
    expect(d.latency.map((l) => [l.contextLength, l.batchSize])).toEqual([[16, 1], [16, 2], [64, 1], [64, 2]]);
    expect(d.skipped).toEqual(["context 1024 + 4 decode tokens exceeds maxContext 256"]);
    expect(r.metrics.decode_tok_s.value).toBeGreaterThan(0);
    const plain: EvalModel = Object.assign(Object.create(m), { efficiency: undefined });
    const r2 = await run("efficiency", writeDataDir({}), plain);
    expect(r2.notes).toEqual(["model toy offers no efficiency probe"]);
  });
});
