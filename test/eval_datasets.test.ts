// The staged datasets (../shared/data/datasets, or $QUANTEVAL_DATA) parse completely with every task, and the
// prompts rebuilt from them are lm-eval's. Runs whenever the data is present (it is in CI).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dataRoot } from "../lib/eval/data.js";
import { wikitext2GptqText } from "../lib/eval/perplexity.js";
import { getTask } from "../lib/eval/tasks/registry.js";
import type { PreparedMc } from "../lib/eval/tasks/multiple_choice.js";
import { ToyBigramModel } from "../lib/eval/toy_model.js";

const root = dataRoot();
const present = existsSync(`${root}/multiple_choice/arc_easy.jsonl`);
const tok = new ToyBigramModel("abc", { maxContext: 1 << 20, chat: true });

describe.skipIf(!present)(`staged datasets in ${root}`, () => {
  it("multiple-choice files: official sizes, lm-eval prompts", async () => {
    const sizes: Record<string, number> = { arc_easy: 2376, arc_challenge: 1172, piqa: 1838, winogrande: 1267, boolq: 3270, openbookqa: 500, copa: 100, lambada_openai: 5153, truthfulqa_mc1: 817, truthfulqa_mc2: 817 };
    for (const [name, n] of Object.entries(sizes)) {
      const p = (await getTask(name).prepare({ tok, dataDir: root, options: {} })) as PreparedMc;
      expect(p.docs.length, name).toBe(n);
    }
    const arc = (await getTask("arc_easy").prepare({ tok, dataDir: root, options: { limit: 1 } })) as PreparedMc;
    expect(arc.docs[0].pairs[0]).toEqual({ context: "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:", continuation: " Sunlight is the source of energy for nearly all ecosystems." });
    const copa = (await getTask("copa").prepare({ tok, dataDir: root, options: { limit: 1 } })) as PreparedMc;
    expect(copa.docs[0].pairs[1]).toEqual({ context: "The man turned on the faucet therefore", continuation: " water flowed from the spout." });
  });

  it("mmlu: 57 subjects, 14,042 questions parse; 5-shot prompt from dev", async () => {
    const p = (await getTask("mmlu").prepare({ tok, dataDir: root, options: { limit: 1 } })) as PreparedMc;
    expect(new Set(p.docs.map((d) => d.group)).size).toBe(57);
    const first = p.docs[0].pairs[0].context;
    expect(first.startsWith("The following are multiple choice questions (with answers) about abstract algebra.\n\n")).toBe(true);
    expect(first.split("\nAnswer:").length - 1).toBe(6);
    expect(first.endsWith("Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")).toBe(true);
    expect(p.docs[0].gold).toBe(1);
  });

  it("generation and long-context files parse", async () => {
    for (const [name, n] of [["gsm8k_cot", 1319], ["longeval_lines", 300], ["longeval_topics", 250], ["mt_bench", 80]] as const) {
      const p = (await getTask(name).prepare({ tok, dataDir: root, options: {} })) as { docs?: unknown[]; cases?: unknown[]; questions?: unknown[] };
      expect((p.docs ?? p.cases ?? p.questions)!.length, name).toBe(n);
    }
  });

  it("WikiText-2 joined the GPTQ way has the documented 1,294,336 characters", () => {
    expect(wikitext2GptqText(`${root}/wikitext2_raw/wiki.test.raw`).length).toBe(1294336);
  });
});

describe.skipIf(!present)("continuation split shortcut vs lm-eval's full encoding (real tokenizers)", async () => {
  const { Tokenizer } = await import("../lib/model/tokenizer.js");
  const { encodePair } = await import("../lib/eval/requests.js");
  const shared = join(root, "..", "..");
  const toks = [
    ["llama2", join(shared, "data/tokenizers/llama2")],
    ["stories260K", join(shared, "data/models/stories260K")],
  ].filter(([, d]) => existsSync(join(d, "tokenizer.json")));

  it.each(toks)("%s: verified tail encoding gives the same requests as encoding context + continuation", async (_name, dir) => {
    const hf = Tokenizer.fromDir(dir);
    let chars = 0;
    const tk = { name: "t", vocabSize: 1 << 20, bosId: hf.bosId, eosIds: hf.eosIds, maxContext: 1 << 20, encode: (t: string, o?: { bos?: boolean }) => ((chars += t.length), hf.encode(t, { bos: o?.bos ?? false })), decode: (ids: readonly number[]) => hf.decode(ids) };
    const pairs: { context: string; continuation: string }[] = [];
    for (const [task, n] of [["arc_easy", 40], ["piqa", 20], ["winogrande", 30], ["lambada_openai", 30], ["hellaswag", 4], ["boolq", 5]] as const) {
      const p = (await getTask(task).prepare({ tok, dataDir: root, options: { limit: n, numFewshot: task === "arc_easy" ? 2 : 0 } })) as PreparedMc;
      for (const d of p.docs) pairs.push(...d.pairs);
    }
    const mm = (await getTask("mmlu").prepare({ tok, dataDir: root, options: { limit: 1 } })) as PreparedMc;
    for (const d of mm.docs.slice(0, 3)) pairs.push(...d.pairs);
    // boundary cases: trailing whitespace moves to the continuation, continuations that glue onto the last word
    pairs.push({ context: "The quick brown fox jumps over the lazy dog and then it ran away to the river ", continuation: "bank" });
    pairs.push({ context: "The quick brown fox jumps over the lazy dog and then it ran away to the river", continuation: "side." });
    pairs.push({ context: "The quick brown fox jumps over the lazy dog and then it ran away to the\n\n", continuation: "Answer: B" });
    let fastChars = 0;
    let exactChars = 0;
    for (const p of pairs) {
      chars = 0;
      const a = encodePair(tk, p.context, p.continuation);
      fastChars += chars;
      chars = 0;
      const b = encodePair(tk, p.context, p.continuation, { exact: true });
      exactChars += chars;
      expect(a, JSON.stringify(p).slice(0, 200)).toEqual(b);
    }
    expect(pairs.length).toBeGreaterThan(300);
    // the shortcut is taken: far fewer characters go through the tokenizer
    expect(fastChars).toBeLessThan(0.7 * exactChars);
  });
});
