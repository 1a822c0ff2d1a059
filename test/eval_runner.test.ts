// The evaluation loop end to end: results written after each (setting, task), resume after an interruption,
// configuration mismatch, and the `quanteval eval` CLI in a child process on the toy model.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { EvalModel } from "../lib/eval/model.js";
import { runEvaluation } from "../lib/eval/runner.js";
import { ToyBigramModel } from "../lib/eval/toy_model.js";
import type { EvalConfig, ResultsFile } from "../lib/report/results.js";
import { jsonl, TRAIN, writeDataDir } from "./helpers/eval_fixtures.js";

const run = promisify(execFile);
const ROOT = join(dirname(new URL(import.meta.url).pathname), "..");

const STORY = "the cat sat on the mat. the dog sat on the log. it was a sunny day in the park. ".repeat(6);
const ARC = [
  { query: "Question: what color is the sky?", choices: ["blue", "green"], gold: 0 },
  { query: "Question: where did the cat sit?", choices: ["on the log", "on the mat"], gold: 1 },
  { query: "Question: is snow hot?", choices: ["yes", "no"], gold: 1 },
];
const dataDir = writeDataDir({
  "tinystories_val_subset/tinystories_val_subset.txt": STORY,
  "multiple_choice/arc_easy.jsonl": jsonl(ARC),
  "multiple_choice/copa.jsonl": jsonl([{ query: "The man turned on the faucet, therefore", choices: ["the toilet filled.", "water flowed from the spout."], gold: 1 }]),
});

const config = (over: Partial<EvalConfig> = {}): EvalConfig => ({
  model: "toy:test",
  settings: [
    { name: "baseline", quant: null },
    { name: "l2", quant: "l2" },
  ],
  tasks: ["tinystories", "arc_easy", "copa"],
  options: { seqLen: 32 },
  dataDir,
  batchSize: "auto",
  samples: false,
  ...over,
});

const env = { cpu: { model: "test", cores: 1 }, memoryBytes: 0, os: "test", gpus: [], node: process.version, quanteval: "0", gitCommit: null, gitDirty: null };

function counting(calls: string[], failOn?: string) {
  return async (s: { name: string; quant: string | null }): Promise<EvalModel> => {
    const m = new ToyBigramModel(TRAIN, { logitBits: s.quant ? 2 : undefined, name: s.name });
    const wrapped: EvalModel = Object.create(m);
    wrapped.loglikelihood = async (r) => {
      if (failOn && r.some((x) => m.decode(x.context).includes(failOn))) throw new Error("simulated crash");
      calls.push(`${s.name}:ll`);
      return m.loglikelihood(r);
    };
    wrapped.scoreWindows = async (w, o) => {
      calls.push(`${s.name}:windows`);
      return m.scoreWindows(w, o);
    };
    return wrapped;
  };
}

describe("results file and resume", () => {
  it("writes after each task, resumes an interrupted run without redoing finished pairs", async () => {
    const out = join(writeDataDir({}), "new", "folder", "r.json"); // created on the way
    // first run dies in copa (after tinystories and arc_easy finished)
    await expect(runEvaluation(config(), counting([], "faucet"), out, { environment: env })).rejects.toThrow(/simulated crash/);
    const partial = JSON.parse(readFileSync(out, "utf8")) as ResultsFile;
    expect(Object.keys(partial.results.baseline).sort()).toEqual(["arc_easy", "tinystories"]);
    expect(Object.keys(partial.results.l2).sort()).toEqual(["arc_easy", "tinystories"]);
    expect(readdirSync(dirname(out)).filter((f) => f.includes(".tmp-"))).toEqual([]);

    const calls: string[] = [];
    const full = await runEvaluation(config(), counting(calls), out, { environment: env });
    // only copa ran: no windows scored, one loglikelihood batch per setting
    expect(calls.filter((c) => c.endsWith("windows"))).toEqual([]);
    expect(calls.sort()).toEqual(["baseline:ll", "l2:ll"]);
    expect(full.results.l2.tinystories).toEqual(partial.results.l2.tinystories);
    expect(Object.keys(full.results.l2).sort()).toEqual(["arc_easy", "copa", "tinystories"]);
    expect(full.results.l2.tinystories.metrics.kl_mean.value).toBeGreaterThan(0);
  });

  it("a perplexity comparison pending for a new setting re-runs the baseline without re-recording it", async () => {
    const out = join(writeDataDir({}), "r.json");
    const cfg = config({ tasks: ["tinystories"] });
    await expect(
      runEvaluation(cfg, async (s) => {
        if (s.quant) throw new Error("quantizer crashed");
        return new ToyBigramModel(TRAIN);
      }, out, { environment: env }),
    ).rejects.toThrow(/quantizer crashed/);
    expect(existsSync(out)).toBe(false); // nothing finished: the joint pass had not ended
    const r = await runEvaluation(cfg, counting([]), out, { environment: env });
    expect(r.results.l2.tinystories.metrics.top1.value).toBeGreaterThan(0.5);
  });

  it("refuses to resume with a different configuration, naming the field", async () => {
    const out = join(writeDataDir({}), "r.json");
    await runEvaluation(config({ tasks: ["arc_easy"] }), counting([]), out, { environment: env });
    await expect(runEvaluation(config({ tasks: ["arc_easy"], options: { seqLen: 64 } }), counting([]), out, { environment: env })).rejects.toThrow(
      /cannot resume.*options\.seqLen is 32 there, 64 now/,
    );
    await expect(runEvaluation(config({ tasks: ["arc_easy", "copa"] }), counting([]), out, { environment: env })).rejects.toThrow(/tasks is \["arc_easy"\] there/);
    // batch size does not change scores: resuming with another one is fine
    await runEvaluation(config({ tasks: ["arc_easy"], batchSize: 1 }), counting([]), out, { environment: env });
  });
});

describe("quanteval eval (child process)", () => {
  const cli = (args: string[]) =>
    run(process.execPath, ["--import", "tsx", join(ROOT, "lib/cli.ts"), "eval", ...args], { cwd: ROOT, env: { ...process.env, QUANTEVAL_DATA: dataDir } });

  it("prints the table, writes JSON with config, environment, metrics, samples; a rerun resumes", async () => {
    const out = join(writeDataDir({}), "cli.json");
    const args = ["--model", "toy:builtin", "--quant", "l2,l4", "--tasks", "tinystories,arc_easy", "--seq-len", "32", "--samples", "--output", out, "--progress", "lines"];
    const { stdout, stderr } = await cli(args);
    const lines = stdout.split("\n");
    expect(lines[0]).toMatch(/^setting\s+tinystories ppl\s+tinystories kl_mean\s+tinystories top1\s+arc_easy acc/);
    expect(lines.find((l) => l.startsWith("l2 "))).toMatch(/\([+-]/);
    expect(stderr).toMatch(/baseline arc_easy: 6\/6 \(100%\)/);
    const r = JSON.parse(readFileSync(out, "utf8")) as ResultsFile;
    expect(r.config.settings.map((s) => s.name)).toEqual(["baseline", "l2", "l4"]);
    expect(r.config.dataDir).toBe(dataDir);
    expect(r.environment.node).toBe(process.version);
    expect(r.environment.cpu.model.length).toBeGreaterThan(0);
    expect(r.results.l4.tinystories.metrics.kl_mean.value).toBeLessThan(r.results.l2.tinystories.metrics.kl_mean.value);
    expect((r.results.baseline.arc_easy.samples as unknown[]).length).toBe(3);
    const again = await cli(args);
    expect(again.stderr).toMatch(/resuming/);
    expect(again.stderr).toMatch(/tinystories: all settings already done, skipped/);
    expect(again.stdout.split("\n")[2]).toBe(lines[2]);
  });

  it("bad arguments exit 1 with a message naming the option", async () => {
    await expect(cli(["--model", "toy:builtin", "--tasks", "nope"])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/--tasks: unknown task "nope"/) });
    await expect(cli(["--model", "toy:builtin", "--tasks", "copa", "--batch-size", "0"])).rejects.toMatchObject({ stderr: expect.stringMatching(/--batch-size: expected an integer ≥ 1, got "0"/) });
    await expect(cli(["--model", "toy:builtin", "--quant", "w4", "--tasks", "copa"])).rejects.toMatchObject({ stderr: expect.stringMatching(/toy model accepts only "l<bits>"/) });
    // a bad spec is refused before any model is built
    await expect(cli(["--model", "synthetic:tinyllama-1.1b", "--quant", "w4g32,w5", "--tasks", "copa"])).rejects.toMatchObject({ stderr: expect.stringMatching(/--quant: setting "w5": .*weight bits must be 2, 3, 4, 6 or 8/) });
    await expect(cli(["--model", "no/such/model", "--tasks", "copa"])).rejects.toMatchObject({ stderr: expect.stringMatching(/repo: expected 'owner\/name', got 'no\/such\/model'/) });
  });
});

