#!/usr/bin/env node
import { Command } from "commander";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { runBench } from "./bench/runtime.js";
import { downloadModel } from "./model/hub.js";
import { LlamaModel } from "./model/model.js";
import { parseKvSetting } from "./model/kv.js";
import { loadNative, packageRoot } from "./native.js";
import { registerEvalCommand } from "./eval/cli_eval.js";
import { registerQuantizeCommands } from "./quant/cli.js";

const program = new Command();
program.name("quanteval").description("Quantize LLMs and measure what it costs them, on real low-bit kernels.");

program
  .command("info")
  .description("show the loaded native backend, CPU features and CUDA devices")
  .option("--backend <backend>", "cpu | cuda | auto", undefined)
  .action((opts: { backend?: "cpu" | "cuda" | "auto" }) => {
    const { addon, info } = loadNative(opts.backend);
    const cpu = addon.cpuInfo();
    const cuda = addon.cudaInfo();
    console.log(`backend   ${info.variant} (requested ${info.requested})  ${info.path}`);
    if (info.fallbackReason) console.log(`fallback  ${info.fallbackReason}`);
    console.log(`cpu       isa=${cpu.isa} threads=${cpu.threads} a8-dot=${cpu.a8Dot} avx512-kernels=${cpu.zmm} gemv=${cpu.gemv}`);
    const feats = Object.entries(cpu.features).filter(([, v]) => v).map(([k]) => k);
    console.log(`features  ${feats.join(" ")}`);
    console.log(`cuda      ${cuda.compiled ? `${cuda.devices.length} device(s)` : "not compiled in"}`);
    for (const d of cuda.devices) console.log(`          ${d.name} sm_${d.computeCapability.replace(".", "")}`);
  });

registerEvalCommand(program);
registerQuantizeCommands(program);

program
  .command("download <repo>")
  .description("download a model repo (safetensors, config, tokenizer) into the cache; prints its directory")
  .option("--revision <rev>", "branch, tag or commit", "main")
  .option("--endpoint <url>", "hub endpoint (default HF_ENDPOINT or https://huggingface.co)")
  .option("--cache-dir <dir>", "cache (default QUANTEVAL_CACHE or ~/.cache/quanteval)")
  .action(async (repo: string, o: { revision: string; endpoint?: string; cacheDir?: string }) => {
    const dir = await downloadModel(repo, {
      revision: o.revision, endpoint: o.endpoint, cacheDir: o.cacheDir,
      onFile: (f, b) => console.error(`  ${f} (${(b / 1e6).toFixed(1)} MB)`),
    });
    console.log(dir);
  });

program
  .command("generate <model>")
  .description("generate text from a prompt (model directory or hub repo id)")
  .option("--prompt <text>", "prompt text", "")
  .option("--max-tokens <n>", "tokens to generate", "128")
  .option("--temperature <t>", "0 = greedy", "0")
  .option("--top-k <k>", "top-k sampling", "0")
  .option("--top-p <p>", "nucleus sampling", "1")
  .option("--seed <n>", "sampling seed", "0")
  .option("--kv <type>", "KV cache: f32, f16, int8, int4, int3, int2, or k:<type>/v:<type> (e.g. k:int8/v:int4)", "f32")
  .action(async (source: string, o: { prompt: string; maxTokens: string; temperature: string; topK: string; topP: string;
    seed: string; kv: string }) => {
    const m = await LlamaModel.load(source, { kvType: parseKvSetting(o.kv, "--kv") });
    const prompt = m.encode(o.prompt, { bos: true });
    process.stdout.write(o.prompt);
    const r = await m.generate(prompt, {
      maxTokens: Number(o.maxTokens), temperature: Number(o.temperature), topK: Number(o.topK), topP: Number(o.topP),
      seed: Number(o.seed), onToken: (_id, text) => process.stdout.write(text),
    });
    process.stdout.write(`\n[${r.tokens.length} tokens, ${r.finishReason}]\n`);
  });

const list = (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean);
const ints = (v: string) => list(v).map((x) => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`expected positive integers, got '${x}'`);
  return n;
});

program
  .command("bench")
  .description("runtime speed: prefill, time to first token, decode latency and tokens/s, memory, bandwidth")
  .requiredOption("--model <source>", "model directory or synthetic:<preset> (e.g. synthetic:tinyllama-1.1b)")
  .option("--weights <list>", "weight settings: f32,f16,bf16,w8,w4g128,... (comma-separated; an a8 suffix, e.g. w4g128a8, adds int8 activations)", "bf16,w8,w4g128")
  .option("--kv <list>", "KV-cache types: f32,f16,int8,int4,int3,int2 or k:<type>/v:<type> (comma-separated)", "f32")
  .option("--batch <list>", "decode batch sizes", "1,4,16")
  .option("--context <list>", "context lengths decoded at", "128,512")
  .option("--prefill <n>", "prompt length for prefill / time to first token", "512")
  .option("--steps <n>", "decode steps timed per configuration", "16")
  .option("--prefill-reps <n>", "prefill repetitions (median)", "3")
  .option("--threads <n>", "threads (default: QUANTEVAL_THREADS or all cores)")
  .option("--json <file>", "also write the report as JSON")
  .action(async (o: { model: string; weights: string; kv: string; batch: string; context: string; prefill: string;
    steps: string; prefillReps: string; threads?: string; json?: string }) => {
    const kv = list(o.kv).map((k) => parseKvSetting(k, "--kv"));
    const report = await runBench({
      model: o.model, weights: list(o.weights), kv, batches: ints(o.batch), contexts: ints(o.context),
      prefill: ints(o.prefill)[0], steps: ints(o.steps)[0], prefillReps: ints(o.prefillReps)[0], threads: o.threads ? ints(o.threads)[0] : undefined,
      log: (l) => console.log(l),
    });
    let commit: string | undefined;
    try {
      commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: packageRoot }).toString().trim();
    } catch {
      commit = undefined;
    }
    const full = { ...report, commit };
    if (o.json) {
      mkdirSync(path.dirname(path.resolve(o.json)), { recursive: true });
      writeFileSync(o.json, JSON.stringify(full, null, 2) + "\n");
      console.log(`wrote ${o.json}`);
    }
  });

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`quanteval: ${e.message}`);
  process.exit(1);
});
