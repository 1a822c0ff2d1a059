// Each multiple-choice task's metrics on a handful of hand-made items equal the values computed here by hand from
// the toy bigram model's raw counts (helpers/eval_fixtures.ts), and the prompts are lm-evaluation-harness's.
import { describe, expect, it } from "vitest";
import { ToyBigramModel } from "../lib/eval/toy_model.js";
import { getTask } from "../lib/eval/tasks/registry.js";
import { silentProgress } from "../lib/eval/progress.js";
import type { TaskOptions, TaskResult } from "../lib/eval/tasks/types.js";
import type { EvalModel } from "../lib/eval/model.js";
import { argmax, jsonl, mean, recording, refGreedy, refLl, refLogp, stderr, TRAIN, writeDataDir } from "./helpers/eval_fixtures.js";

const lp = refLogp(TRAIN);
const toy = new ToyBigramModel(TRAIN);

async function run(task: string, dataDir: string, model: EvalModel = toy, options: TaskOptions = {}, batchSize: number | "auto" = "auto"): Promise<TaskResult> {
  const t = getTask(task);
  const p = await t.prepare({ tok: model, dataDir, options });
  return t.evaluate(p, model, { batch: { batchSize }, progress: silentProgress, samples: true, setting: "test" });
}

/** acc / acc_norm by hand for docs given as (context, choices, gold). */
function expectedAcc(docs: { context: string; choices: string[]; gold: number }[]) {
  const acc: number[] = [];
  const accNorm: number[] = [];
  for (const d of docs) {
    const lls = d.choices.map((c) => refLl(lp, d.context, ` ${c}`));
    acc.push(argmax(lls) === d.gold ? 1 : 0);
    accNorm.push(argmax(lls.map((l, i) => l / d.choices[i].length)) === d.gold ? 1 : 0);
  }
  return { acc, accNorm };
}

const ARC = [
  { query: "Question: what color is the sky?", choices: ["blue", "green", "a hot dog"], gold: 0 },
  { query: "Question: where did the cat sit?", choices: ["on the log", "on the mat"], gold: 1 },
  { query: "Question: is the snow hot?", choices: ["Yes", "no, not hot at all"], gold: 1 },
  { query: "Question: what is green?", choices: ["the grass", "the sky"], gold: 0 },
];

describe("multiple-choice tasks (hand-computed metrics, lm-eval prompts)", () => {
  const dir = writeDataDir({
    "multiple_choice/arc_easy.jsonl": jsonl(ARC),
    "multiple_choice/piqa.jsonl": jsonl([
      { query: "Question: how to stay cool?\n", choices: ["sit in the park", "drink water from the spout"], gold: 1 },
      { query: "Question: dresser\n", choices: ["the mat", "the log"], gold: 0 },
    ]),
    "multiple_choice/boolq.jsonl": jsonl([
      { query: "Passage: the sky is blue.\nQuestion: is the sky blue?", choices: ["no", "yes"], gold: 1 },
      { query: "Passage: the snow is not hot.\nQuestion: is snow hot?", choices: ["no", "yes"], gold: 0 },
    ]),
    "multiple_choice/copa.jsonl": jsonl([
      { query: "The man turned on the faucet, therefore", choices: ["The toilet filled with water.", "water flowed from the spout."], gold: 1 },
      { query: "The girl found a bug in her cereal, because", choices: ["she poured milk.", "she lost her appetite."], gold: 1 },
    ]),
    "multiple_choice/openbook_qa.jsonl": jsonl([{ query: "The sun is", choices: ["hot", "cold"], gold: 0 }]),
    "multiple_choice/winogrande.jsonl": jsonl([
      { context_options: ["the cat sat on the mat because the cat", "the cat sat on the mat because the mat"], continuation: "was hot.", gold: 0 },
      { context_options: ["the dog and the log: the dog", "the dog and the log: the log"], continuation: "is green.", gold: 1 },
    ]),
    "multiple_choice/lambada_openai.jsonl": jsonl([
      { context: "the cat sat on the", continuation: "mat." },
      { context: "the sky is", continuation: "blue" },
      { context: "she lost her", continuation: "appetite" },
    ]),
    "multiple_choice/hellaswag.jsonl": jsonl([
      { activity_label: "Baking cookies", ctx_a: "A woman [header] shows  pans.", ctx_b: "the PANS", endings: ["are hot.", "sat on the [title] mat."], label: "1" },
    ]),
  });

  it("arc_easy: prompt 'Question: …\\nAnswer:' + ' choice', acc and acc_norm with stderr", async () => {
    const rec = recording(toy);
    const r = await run("arc_easy", dir, rec.model);
    expect(rec.seen).toContainEqual({ context: "Question: what color is the sky?\nAnswer:", continuation: " blue" });
    const { acc, accNorm } = expectedAcc(ARC.map((d) => ({ context: `${d.query}\nAnswer:`, choices: d.choices, gold: d.gold })));
    expect(r.n).toBe(4);
    expect(r.metrics.acc.value).toBeCloseTo(mean(acc), 12);
    expect(r.metrics.acc_norm.value).toBeCloseTo(mean(accNorm), 12);
    if (mean(acc) > 0 && mean(acc) < 1) expect(r.metrics.acc.stderr).toBeCloseTo(stderr(acc), 12);
    // the sample log-likelihoods are the hand-computed ones
    const s0 = (r.samples as { loglikelihoods: number[] }[])[0];
    expect(s0.loglikelihoods[2]).toBeCloseTo(refLl(lp, "Question: what color is the sky?\nAnswer:", " a hot dog"), 5);
  });

  it("arc_easy 2-shot: examples from the same file, never the document itself, '\\n\\n'-joined", async () => {
    const rec = recording(toy);
    await run("arc_easy", dir, rec.model, { numFewshot: 2, limit: 1 });
    const ctx = rec.seen[0].context;
    const parts = ctx.split("\n\n");
    expect(parts).toHaveLength(3);
    expect(parts[2]).toBe("Question: what color is the sky?\nAnswer:");
    for (const shot of parts.slice(0, 2)) {
      const d = ARC.find((x) => shot.startsWith(`${x.query}\nAnswer: `))!;
      expect(d).toBeDefined();
      expect(d).not.toBe(ARC[0]);
      expect(shot).toBe(`${d.query}\nAnswer: ${d.choices[d.gold]}`);
    }
  });

  it("piqa, boolq, openbookqa, copa: lm-eval prompts and hand-computed acc", async () => {
    const cases: [string, { context: string; choices: string[]; gold: number }[], string][] = [
      ["piqa", [
        { context: "Question: how to stay cool?\nAnswer:", choices: ["sit in the park", "drink water from the spout"], gold: 1 },
        { context: "Question: dresser\nAnswer:", choices: ["the mat", "the log"], gold: 0 },
      ], "acc_norm"],
      ["boolq", [
        { context: "the sky is blue.\nQuestion: is the sky blue?\nAnswer:", choices: ["no", "yes"], gold: 1 },
        { context: "the snow is not hot.\nQuestion: is snow hot?\nAnswer:", choices: ["no", "yes"], gold: 0 },
      ], "acc"],
      ["openbookqa", [{ context: "The sun is", choices: ["hot", "cold"], gold: 0 }], "acc_norm"],
      ["copa", [
        { context: "The man turned on the faucet therefore", choices: ["the toilet filled with water.", "water flowed from the spout."], gold: 1 },
        { context: "The girl found a bug in her cereal because", choices: ["she poured milk.", "she lost her appetite."], gold: 1 },
      ], "acc"],
    ];
    for (const [task, docs, second] of cases) {
      const rec = recording(toy);
      const r = await run(task, dir, rec.model);
      // the batcher reorders requests (longest first): compare as sorted lists
      const key = (x: { context: string; continuation: string }) => `${x.context}|${x.continuation}`;
      expect(rec.seen.map(key).sort(), task).toEqual(docs.flatMap((d) => d.choices.map((c) => key({ context: d.context, continuation: ` ${c}` }))).sort());
      const { acc, accNorm } = expectedAcc(docs);
      expect(r.metrics.acc.value, task).toBeCloseTo(mean(acc), 12);
      if (second === "acc_norm") expect(r.metrics.acc_norm.value, task).toBeCloseTo(mean(accNorm), 12);
      else expect(r.metrics.acc_norm, task).toBeUndefined();
    }
  });

  it("winogrande: partial scoring, one context per option and the shared continuation", async () => {
    const rec = recording(toy);
    const r = await run("winogrande", dir, rec.model);
    expect(rec.seen).toContainEqual({ context: "the cat sat on the mat because the cat", continuation: " was hot." });
    expect(rec.seen).toContainEqual({ context: "the cat sat on the mat because the mat", continuation: " was hot." });
    const docs = [
      { opts: ["the cat sat on the mat because the cat", "the cat sat on the mat because the mat"], cont: " was hot.", gold: 0 },
      { opts: ["the dog and the log: the dog", "the dog and the log: the log"], cont: " is green.", gold: 1 },
    ];
    const acc = docs.map((d) => (argmax(d.opts.map((o) => refLl(lp, o, d.cont))) === d.gold ? 1 : 0));
    expect(r.metrics.acc.value).toBeCloseTo(mean(acc), 12);
  });

  it("lambada_openai: acc = greedy last word, perplexity = exp(-mean ll)", async () => {
    const r = await run("lambada", dir);
    const docs = [["the cat sat on the", " mat."], ["the sky is", " blue"], ["she lost her", " appetite"]];
    const lls = docs.map(([c, w]) => refLl(lp, c, w));
    const greedy = docs.map(([c, w]) => (refGreedy(lp, c, w) ? 1 : 0));
    expect(r.metrics.acc.value).toBeCloseTo(mean(greedy), 12);
    expect(r.metrics.perplexity.value).toBeCloseTo(Math.exp(-mean(lls)), 6);
  });

  it("hellaswag: lm-eval preprocessing of the Hugging Face fields", async () => {
    const rec = recording(toy);
    const r = await run("hellaswag", dir, rec.model);
    expect(rec.seen[0].context).toBe("Baking cookies: A woman shows pans. The pans");
    expect(rec.seen.map((s) => s.continuation).sort()).toEqual([" are hot.", " sat on the. mat."]);
    const { acc, accNorm } = expectedAcc([{ context: "Baking cookies: A woman shows pans. The pans", choices: ["are hot.", "sat on the. mat."], gold: 1 }]);
    expect(r.metrics.acc.value).toBe(acc[0]);
    expect(r.metrics.acc_norm.value).toBe(accNorm[0]);
  });

  it("mmlu: per-subject k-shot from dev (first_n), letter choices, micro and macro averages", async () => {
    const header = "question,choice0,choice1,choice2,choice3,answer\n";
    const mdir = writeDataDir({
      "mmlu/test/high_school_sky_test.csv": header + "What color is the sky?,blue,green,red,hot,0\n\"Is the snow, hot?\",yes,no,maybe,blue,1\n",
      "mmlu/dev/high_school_sky_dev.csv": header + " Where did the cat sit? ,on the mat,on the log,in the park,on the sun,0\nWhat is hot?,snow,the sun,water,the log,1\n",
      "mmlu/test/park_test.csv": header + "Where is it sunny?,the park,the log,the mat,the spout,0\n",
      "mmlu/dev/park_dev.csv": header + "Is water hot?,yes,no,blue,green,1\n",
    });
    const rec = recording(toy);
    const r = await run("mmlu", mdir, rec.model, { numFewshot: 1 });
    const ctx0 =
      "The following are multiple choice questions (with answers) about high school sky.\n\n" +
      "Where did the cat sit?\nA. on the mat\nB. on the log\nC. in the park\nD. on the sun\nAnswer: A\n\n" +
      "What color is the sky?\nA. blue\nB. green\nC. red\nD. hot\nAnswer:";
    expect(rec.seen).toContainEqual({ context: ctx0, continuation: " A" });
    const ctx1 = ctx0.replace("What color is the sky?\nA. blue\nB. green\nC. red\nD. hot", "Is the snow, hot?\nA. yes\nB. no\nC. maybe\nD. blue");
    const ctx2 = "The following are multiple choice questions (with answers) about park.\n\nIs water hot?\nA. yes\nB. no\nC. blue\nD. green\nAnswer: B\n\nWhere is it sunny?\nA. the park\nB. the log\nC. the mat\nD. the spout\nAnswer:";
    const a = (ctx: string, gold: number) => (argmax(["A", "B", "C", "D"].map((l) => refLl(lp, ctx, ` ${l}`))) === gold ? 1 : 0);
    const sky = [a(ctx0, 0), a(ctx1, 1)];
    const park = [a(ctx2, 0)];
    expect(r.groups!.high_school_sky.metrics.acc.value).toBeCloseTo(mean(sky), 12);
    expect(r.groups!.park.metrics.acc.value).toBe(park[0]);
    expect(r.metrics.acc.value).toBeCloseTo(mean([...sky, ...park]), 12);
    expect(r.metrics.acc_macro.value).toBeCloseTo((mean(sky) + park[0]) / 2, 12);
  });

  it("truthfulqa mc1 and mc2: QA primer prompt, MC2 = normalized true mass", async () => {
    const q = {
      question: "What color is the sky?",
      mc1_targets: { "The sky is blue.": 1, "The sky is green.": 0, "It is hot.": 0 },
      mc2_targets: { "The sky is blue.": 1, "It is blue.": 1, "The sky is green.": 0 },
    };
    const tdir = writeDataDir({ "truthfulqa/mc_task_v0.json": JSON.stringify([q]) });
    const rec = recording(toy);
    const r1 = await run("truthfulqa_mc1", tdir, rec.model);
    expect(rec.seen[0].context.startsWith("Q: What is human life expectancy in the United States?\nA: Human life expectancy")).toBe(true);
    expect(rec.seen[0].context.endsWith("Barcelona, Spain.\n\nQ: What color is the sky?\nA:")).toBe(true);
    const ctx = rec.seen[0].context;
    const l1 = Object.keys(q.mc1_targets).map((a) => refLl(lp, ctx, ` ${a}`));
    expect(r1.metrics.acc.value).toBe(argmax(l1) === 0 ? 1 : 0);
    const r2 = await run("truthfulqa_mc2", tdir);
    const p = Object.keys(q.mc2_targets).map((a) => Math.exp(refLl(lp, ctx, ` ${a}`)));
    expect(r2.metrics.acc.value).toBeCloseTo((p[0] + p[1]) / (p[0] + p[1] + p[2]), 6);
  });

  it("scores are identical at batch sizes 1, 16 and auto, and duplicate requests are scored once", async () => {
    const m1 = new ToyBigramModel(TRAIN);
    const m16 = new ToyBigramModel(TRAIN);
    const r1 = await run("arc_easy", dir, m1, { numFewshot: 1 }, 1);
    const r16 = await run("arc_easy", dir, m16, { numFewshot: 1 }, 16);
    const ra = await run("arc_easy", dir, new ToyBigramModel(TRAIN), { numFewshot: 1 }, "auto");
    expect(r16.samples).toEqual(r1.samples);
    expect(ra.samples).toEqual(r1.samples);
    expect(Math.max(...m16.calls.batchSizes)).toBeLessThanOrEqual(16);
    expect(m16.calls.loglikelihood).toBeLessThan(m1.calls.loglikelihood);
    // WinoGrande-like duplicates: the same (context, continuation) twice costs one request
    const wdir = writeDataDir({ "multiple_choice/lambada_openai.jsonl": jsonl([{ context: "the sky is", continuation: "blue" }, { context: "the sky is", continuation: "blue" }]) });
    const md = new ToyBigramModel(TRAIN);
    await run("lambada", wdir, md, {}, 1);
    expect(md.calls.batchSizes.reduce((a, b) => a + b, 0)).toBe(1);
  });
});

describe("malformed datasets name the file and line", () => {
  it("invalid JSON line", async () => {
    const dir = writeDataDir({ "multiple_choice/arc_easy.jsonl": `${JSON.stringify(ARC[0])}\n${JSON.stringify(ARC[1])}\n{"query": "Question: x", "choices": [\n` });
    await expect(run("arc_easy", dir)).rejects.toThrow(/arc_easy\.jsonl:3: invalid JSON/);
  });
  it("missing or out-of-range fields", async () => {
    const dir = writeDataDir({ "multiple_choice/arc_easy.jsonl": jsonl([ARC[0], { query: "Question: x", choices: ["a", "b"] }]) });
    await expect(run("arc_easy", dir)).rejects.toThrow(/arc_easy\.jsonl:2: field "gold": expected an integer, got missing/);
    const dir2 = writeDataDir({ "multiple_choice/boolq.jsonl": jsonl([{ query: "Passage: p\nQuestion: q?", choices: ["no", "yes"], gold: 2 }]) });
    await expect(run("boolq", dir2)).rejects.toThrow(/boolq\.jsonl:1: field "gold": expected an integer in \[0, 1\], got 2/);
    const dir3 = writeDataDir({ "multiple_choice/copa.jsonl": jsonl([{ query: "The man left.", choices: ["a", "b"], gold: 0 }]) });
    await expect(run("copa", dir3)).rejects.toThrow(/copa\.jsonl:1: field "query": expected "<premise>, because\|therefore"/);
  });
  it("CSV rows with the wrong number of fields, bad answers, missing files", async () => {
    const header = "question,choice0,choice1,choice2,choice3,answer\n";
    const dir = writeDataDir({ "mmlu/test/a_test.csv": header + "q,a,b,c,d,0\nq2,a,b,c,1\n", "mmlu/dev/a_dev.csv": header });
    await expect(run("mmlu", dir)).rejects.toThrow(/a_test\.csv:3: expected 6 fields, got 5/);
    const dir2 = writeDataDir({ "mmlu/test/a_test.csv": header + "q,a,b,c,d,E\n", "mmlu/dev/a_dev.csv": header });
    await expect(run("mmlu", dir2)).rejects.toThrow(/a_test\.csv:2: field "answer": expected 0\.\.3, got "E"/);
    const empty = writeDataDir({});
    await expect(run("piqa", empty)).rejects.toThrow(/piqa\.jsonl: missing dataset file/);
  });
});
