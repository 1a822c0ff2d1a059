/**
 * Quantization benchmark: time and peak memory (RSS) to quantize synthetic tinyllama-1.1b with each method, and
 * what each method costs in quality (perplexity on stories260K), in one table.
 *
 *   npx tsx bench/quantize.ts [--layers N] [--windows W] [--nsamples S] [--seqlen T] [--out FILE]
 *
 * Speed part: each method runs in its own child process (so peak RSS is that method's), on a seeded random
 * tinyllama-1.1b (bf16 dense weights, 22 layers, K up to 5632), quantizing the linears of the first N decoder
 * layers (default 2; 22 = the whole model) after one calibration pass (sequential: false) over S windows of T
 * tokens of WikiText-2 validation, tokenized with the Llama-2 tokenizer. The full-model time is extrapolated
 * linearly from the measured layers and labelled as such. The baseline is RTN of the same layers, measured in the
 * same run; the ratio is method time / RTN time.
 *
 * Quality part: stories260K quantized with the same specs, perplexity on the first W windows (default 767 = the
 * whole TinyStories subset) of 512 tokens, and the delta to fp32. Calibration: WikiText-2 validation, 128 × 256.
 *
 * The final run's JSON goes to bench/results/cpu-quantize-<date>.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { LlamaModel } from "../lib/model/model.js";
import { Tokenizer } from "../lib/model/tokenizer.js";
import { native } from "../lib/native.js";
import { sampleCalibration } from "../lib/quant/calibration.js";
import { kvTypeFor, quantizeModel } from "../lib/quant/quantize.js";
import { parseSpec } from "../lib/quant/spec.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const shared = process.env.QUANTEVAL_SHARED ?? path.join(root, "..", "shared");

const METHODS: { method: string; spec: string; baseline: string }[] = [
  { method: "RTN", spec: "w4g128", baseline: "w4g128" },
  { method: "GPTQ", spec: "w4g128+gptq", baseline: "w4g128" },
  { method: "AWQ", spec: "w4g128+awq", baseline: "w4g128" },
  { method: "SmoothQuant", spec: "w8a8+sq0.5", baseline: "w8a8" },
];

interface SpeedResult {
  spec: string;
  layers: number;
  linears: number;
  calibrateSeconds: number;
  quantizeSeconds: number;
  peakRssMB: number;
}

/** One method on synthetic tinyllama-1.1b, in this process (the child side). */
async function speedOne(spec: string, layers: number, nsamples: number, seqlen: number): Promise<SpeedResult> {
  const m = await LlamaModel.synthetic("tinyllama-1.1b", { seed: 1, denseDtype: "bf16", maxContext: Math.max(seqlen, 64) });
  const tok = Tokenizer.fromDir(path.join(shared, "data/tokenizers/llama2"));
  const t0 = performance.now();
  const cal = sampleCalibration((t) => tok.encode(t, { bos: false }), { nsamples, seqlen, seed: 0 });
  const t1 = performance.now();
  const sel = new RegExp(`^model\\.layers\\.(${Array.from({ length: layers }, (_, i) => i).join("|")})\\.`);
  const rep = await quantizeModel(m, spec, { calibrationSet: cal, sequential: false, linears: (n) => sel.test(n) });
  return {
    spec,
    layers,
    linears: rep.linears.length,
    calibrateSeconds: (t1 - t0) / 1000,
    quantizeSeconds: rep.seconds,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

async function perplexity(m: LlamaModel, stream: Int32Array, windows: number): Promise<number> {
  const L = 512;
  const n = Math.min(windows, Math.floor(stream.length / L));
  const scores = await m.scoreWindows(Array.from({ length: n }, (_, i) => stream.subarray(i * L, (i + 1) * L)));
  let nll = 0, count = 0;
  for (const s of scores) for (const lp of s.logprobs) (nll -= lp), count++;
  return Math.exp(nll / count);
}

async function main() {
  const program = new Command()
    .option("--layers <n>", "decoder layers of tinyllama-1.1b to quantize (22 = all)", "2")
    .option("--windows <n>", "stories260K perplexity windows of 512 tokens", "767")
    .option("--nsamples <n>", "calibration windows for tinyllama", "4")
    .option("--seqlen <n>", "calibration window length for tinyllama", "256")
    .option("--out <file>", "JSON output (default bench/results/cpu-quantize-<date>.json)")
    .option("--one <spec>", "(internal) run one speed measurement in this process and print JSON")
    .parse(process.argv);
  const o = program.opts<{ layers: string; windows: string; nsamples: string; seqlen: string; out?: string; one?: string }>();
  const layers = Number(o.layers), windows = Number(o.windows), nsamples = Number(o.nsamples), seqlen = Number(o.seqlen);
  if (o.one) {
    console.log("RESULT " + JSON.stringify(await speedOne(o.one, layers, nsamples, seqlen)));
    return;
  }
  const cpu = native().cpuInfo();
  console.error(`quantize bench: isa ${cpu.isa}, ${cpu.threads} threads; tinyllama-1.1b layers 0..${layers - 1}`);

  // Speed: each spec in a child process.
  const speed = new Map<string, SpeedResult>();
  for (const spec of [...new Set(METHODS.flatMap((m) => [m.spec, m.baseline]))]) {
    console.error(`  speed ${spec} ...`);
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", fileURLToPath(import.meta.url), "--one", spec, "--layers", o.layers, "--nsamples", o.nsamples, "--seqlen", o.seqlen],
      { cwd: root, encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = out.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`bench child for ${spec} printed no result`);
    speed.set(spec, JSON.parse(line.slice(7)) as SpeedResult);
  }

  // Quality on stories260K.
  const dir = path.join(shared, "data/models/stories260K");
  const text = readFileSync(path.join(shared, "data/datasets/tinystories_val_subset/tinystories_val_subset.txt"), "utf8");
  const quality = new Map<string, number>();
  let stream: Int32Array | undefined;
  for (const spec of ["fp32", ...new Set(METHODS.flatMap((m) => [m.spec, m.baseline]))]) {
    console.error(`  quality ${spec} ...`);
    const m = await LlamaModel.fromDir(dir, { kvType: kvTypeFor(parseSpec(spec)) });
    stream ??= Int32Array.from(m.encode(text, { bos: true }));
    await quantizeModel(m, spec, { calibration: { nsamples: 128, seqlen: 256, seed: 0 } });
    quality.set(spec, await perplexity(m, stream, windows));
  }

  const rows = METHODS.map(({ method, spec, baseline }) => {
    const s = speed.get(spec)!, b = speed.get(baseline)!;
    const perLayer = s.quantizeSeconds / s.layers;
    return {
      method,
      spec,
      quantizeSeconds: s.quantizeSeconds,
      calibrateSeconds: s.calibrateSeconds,
      secondsPerLayer: perLayer,
      extrapolatedFullModelSeconds: perLayer * 22,
      baseline,
      baselineSeconds: b.quantizeSeconds,
      ratioToBaseline: s.quantizeSeconds / b.quantizeSeconds,
      peakRssMB: s.peakRssMB,
      stories260K: { ppl: quality.get(spec)!, baselinePpl: quality.get(baseline)!, fp32Ppl: quality.get("fp32")! },
    };
  });
  const date = new Date().toISOString().slice(0, 10);
  const result = {
    bench: "quantize",
    date: new Date().toISOString(),
    machine: { isa: cpu.isa, threads: cpu.threads, features: cpu.features },
    tinyllama: { layersQuantized: layers, of: 22, calibration: { source: "wikitext2-valid", nsamples, seqlen, sequential: false }, denseDtype: "bf16" },
    stories260K: { windows, calibration: { source: "wikitext2-valid", nsamples: 128, seqlen: 256 } },
    rows,
  };
  const outFile = o.out ?? path.join(root, "bench", "results", `cpu-quantize-${date}.json`);
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(result, null, 1) + "\n");

  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(`\nquantize tinyllama-1.1b (layers 0..${layers - 1} of 22, measured; full model extrapolated) and stories260K perplexity (${windows} windows)`);
  console.log(
    "method        spec          time s  baseline s  ratio  s/layer  full-model s (extrap.)  peak RSS MB  ppl      baseline ppl  Δ vs baseline  Δ vs fp32",
  );
  for (const r of rows)
    console.log(
      `${r.method.padEnd(13)} ${r.spec.padEnd(13)} ${f(r.quantizeSeconds).padStart(6)}  ${f(r.baselineSeconds).padStart(10)}  ${f(r.ratioToBaseline).padStart(5)}  ` +
        `${f(r.secondsPerLayer).padStart(7)}  ${f(r.extrapolatedFullModelSeconds, 0).padStart(22)}  ${f(r.peakRssMB, 0).padStart(11)}  ` +
        `${f(r.stories260K.ppl, 4).padStart(7)}  ${f(r.stories260K.baselinePpl, 4).padStart(12)}  ` +
        `${(((r.stories260K.ppl - r.stories260K.baselinePpl) / r.stories260K.baselinePpl) * 100).toFixed(2).padStart(12)}%  ` +
        `${(((r.stories260K.ppl - r.stories260K.fp32Ppl) / r.stories260K.fp32Ppl) * 100).toFixed(2).padStart(8)}%`,
    );
  console.log(`fp32 stories260K ppl ${f(quality.get("fp32")!, 4)}; JSON: ${path.relative(root, outFile)}`);
}

await main();
