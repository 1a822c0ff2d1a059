/**
 * GSM8K by generation, as lm-evaluation-harness:
 * - `gsm8k_cot` (default 8-shot): the 8 standard chain-of-thought exemplars (Wei et al.), "Q: {question}\nA:"
 *   prompts joined by "\n\n", greedy until "Q:", "</s>", "<|im_end|>"; strict-match = the number after
 *   "The answer is", flexible-extract = the last number in the output.
 * - `gsm8k` (default 5-shot): exemplars drawn from train.jsonl with a seed, "Question: {question}\nAnswer:" and
 *   the full reference solution as target, until "Question:", "</s>", "<|im_end|>"; strict-match = "#### N",
 *   flexible-extract = the last number.
 * Both score exact_match (case-insensitive, ignoring ",", "$", everything up to "#### " and a final ".").
 */
import { generateBatched } from "../batching.js";
import { dataFile, jsonlRows } from "../data.js";
import type { EvalModel } from "../model.js";
import { meanMetric } from "../stats.js";
import { mulberry32 } from "../toy_model.js";
import { exactMatch, maxGen, regexFilter } from "./generation.js";
import type { EvalTask, PrepareEnv, RunEnv, TaskResult } from "./types.js";

export const COT_EXEMPLARS: { question: string; target: string }[] = [
  {
    question: "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
    target: "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.",
  },
  {
    question: "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
    target: "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
  },
  {
    question: "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
    target: "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.",
  },
  {
    question: "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
    target: "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.",
  },
  {
    question: "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
    target: "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.",
  },
  {
    question: "There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
    target: "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.",
  },
  {
    question: "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
    target: "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
  },
  {
    question: "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
    target: "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.",
  },
];

const IGNORE = [/,/, /\$/, /[\s\S]*#### /, /\.$/];
const FLEXIBLE = /(-?[$0-9.,]{2,})|(-?[0-9]+)/;

interface Gsm8kDoc {
  id: string;
  prompt: string;
  ids: number[];
  reference: string;
}

interface PreparedGsm8k {
  docs: Gsm8kDoc[];
  stops: string[];
  strict: RegExp;
  maxTokens: number;
}

function gsm8kTask(name: "gsm8k" | "gsm8k_cot"): EvalTask<PreparedGsm8k> {
  const cot = name === "gsm8k_cot";
  return {
    name,
    kind: "generation",
    display: [
      { metric: "exact_match_strict", higherIsBetter: true },
      { metric: "exact_match_flexible", higherIsBetter: true },
    ],
    prepare(env: PrepareEnv): PreparedGsm8k {
      const rel = "gsm8k/test.jsonl";
      const rows = jsonlRows(dataFile(env.dataDir, rel));
      const test = rows.map((r) => ({ line: r.line, question: r.string("question"), answer: r.string("answer") }));
      const k = env.options.numFewshot ?? (cot ? 8 : 5);
      let shots: { text: string; target: string }[];
      if (cot) {
        if (k > COT_EXEMPLARS.length) throw new RangeError(`numFewshot: gsm8k_cot has ${COT_EXEMPLARS.length} exemplars, asked for ${k}`);
        shots = COT_EXEMPLARS.slice(0, k).map((e) => ({ text: `Q: ${e.question}\nA:`, target: e.target }));
      } else {
        const train = jsonlRows(dataFile(env.dataDir, "gsm8k/train.jsonl"));
        const rnd = mulberry32(env.options.seed ?? 1234);
        const picked = new Set<number>();
        while (picked.size < Math.min(k, train.length)) picked.add(Math.floor(rnd() * train.length));
        shots = [...picked].map((i) => ({ text: `Question: ${train[i].string("question")}\nAnswer:`, target: train[i].string("answer") }));
      }
      const prefix = shots.map((s) => `${s.text} ${s.target}\n\n`).join("");
      const docs = test.slice(0, env.options.limit ?? test.length).map((d) => {
        const prompt = `${prefix}${cot ? `Q: ${d.question}\nA:` : `Question: ${d.question}\nAnswer:`}`;
        return { id: `${rel}:${d.line}`, prompt, ids: env.tok.encode(prompt, { bos: env.options.bos ?? true }), reference: d.answer.split("####").pop()!.trim() };
      });
      return {
        docs,
        stops: cot ? ["Q:", "</s>", "<|im_end|>"] : ["Question:", "</s>", "<|im_end|>"],
        // lm-eval's pattern verbatim, including its unescaped final "." (any character)
        strict: cot ? /The answer is (-?[0-9.,]+)./ : /#### (-?[0-9.,]+)/,
        maxTokens: env.options.maxGenTokens ?? 256,
      };
    },
    async evaluate(p: PreparedGsm8k, model: EvalModel, env: RunEnv): Promise<TaskResult> {
      const notes: string[] = [];
      const progress = env.progress(`${env.setting} ${name}`, p.docs.length);
      const longest = Math.max(...p.docs.map((d) => d.ids.length));
      if (longest >= model.maxContext) notes.push(`prompts up to ${longest} tokens exceed maxContext ${model.maxContext}: left-truncated`);
      const prompts = p.docs.map((d) => (d.ids.length >= model.maxContext ? d.ids.slice(d.ids.length - model.maxContext + 1) : d.ids));
      const outs = await generateBatched(model, prompts, (i) => ({ maxTokens: maxGen(model, prompts[i].length, p.maxTokens), stop: p.stops, temperature: 0 }), env.batch, progress);
      progress.done();
      const strict: number[] = [];
      const flexible: number[] = [];
      const samples: unknown[] = [];
      p.docs.forEach((d, i) => {
        const text = outs[i].text;
        const s = regexFilter(text, p.strict, 0);
        const f = regexFilter(text, FLEXIBLE, -1);
        strict.push(exactMatch(s, d.reference, IGNORE) ? 1 : 0);
        flexible.push(exactMatch(f, d.reference, IGNORE) ? 1 : 0);
        if (env.samples) samples.push({ id: d.id, output: text, finishReason: outs[i].finishReason, strict: s, flexible: f, reference: d.reference });
      });
      return {
        n: p.docs.length,
        metrics: { exact_match_strict: meanMetric(strict), exact_match_flexible: meanMetric(flexible) },
        notes: notes.length ? notes : undefined,
        samples: env.samples ? samples : undefined,
      };
    },
  };
}

export const gsm8k = gsm8kTask("gsm8k");
export const gsm8kCot = gsm8kTask("gsm8k_cot");
