/**
 * Quantization benchmark (issue #4): time and peak memory to quantize the WHOLE synthetic tinyllama-1.1b with each
 * method, and what each method costs in quality on stories260K, in one table.
 *
 *   npx tsx bench/quantize.ts [--layers 22] [--nsamples 16] [--seqlen 256] [--budget 1200] [--gptq-budget 1200]
 *                             [--windows 767] [--methods RTN,GPTQ,AWQ,SmoothQuant] [--bits 4] [--skip-quality] [--out FILE]
 *
 * Speed part: each spec runs in its own child process (so its peak RSS is its own), on a seeded random
 * tinyllama-1.1b (bf16 dense weights, 22 layers, K up to 5632), quantizing every decoder linear of the first
 * `--layers` layers (22 = the whole model) sequentially (quantize.ts: a layer-wise pass, layers < l already
 * quantized) on nsamples × seqlen tokens of WikiText-2 validation (Llama-2 tokenizer). Reported: wall time of
 * quantizeModel (calibration windows already drawn; their tokenization is reported separately), seconds per layer
 * split into forward / capture / scale search / quantize, peak RSS (getrusage maxRSS and /proc VmHWM), the
 * runtime's own accounting (weights by format after, capture buffers at their peak) and the hidden-state bytes. A
 * child that runs past `--budget` seconds is stopped; its finished layers are reported and the rest extrapolated
 * (labelled). The baseline is RTN of the same format, measured in the same run.
 *
 * Quality part: stories260K quantized with the same specs (calibration WikiText-2 validation 128 × 256, its own
 * tokenizer), perplexity on the first `--windows` non-overlapping 512-token windows of the BOS-prefixed TinyStories
 * subset (767 = all; the golden protocol), and the delta to fp32. stories260K's K (64, 172) is below the 512-row
 * sample, so its default AWQ scores on the Hessian (awqScoring 'auto'); AWQ is also run with the scoring forced to
 * the sample, and forced to the Hessian (the first session's method), for the before/after comparison.
 *
 * JSON goes to bench/results/cpu-quantize-full-<date>.json.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { LlamaModel } from "../lib/model/model.js";
import { Tokenizer } from "../lib/model/tokenizer.js";
import { native } from "../lib/native.js";
import { sampleCalibration } from "../lib/quant/calibration.js";
import { kvTypeFor, quantizeModel, type LayerReport, type QuantizeOptions } from "../lib/quant/quantize.js";
import { parseSpec } from "../lib/quant/spec.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const shared = process.env.QUANTEVAL_SHARED ?? path.join(root, "..", "shared");

interface Method {
  method: string;
  spec: string;
  baseline: string;
  /** Extra quantizeModel options (quality part and speed part). */
  opts?: Partial<QuantizeOptions>;
  /** Quality only (too slow for the speed part; see the report). */
  qualityOnly?: boolean;
}

function methodsFor(bits: number): Method[] {
  const w = `w${bits}g128`;
  return [
    { method: "RTN", spec: w, baseline: w },
    { method: "GPTQ", spec: `${w}+gptq`, baseline: w },
    { method: "AWQ", spec: `${w}+awq`, baseline: w },
    { method: "AWQ (Hessian scoring, before)", spec: `${w}+awq`, baseline: w, opts: { awqScoring: "hessian" }, qualityOnly: true },
    { method: "AWQ (sample scoring forced)", spec: `${w}+awq`, baseline: w, opts: { awqScoring: "samples" }, qualityOnly: true },
    { method: "SmoothQuant", spec: "w8a8+sq0.5", baseline: "w8a8" },
  ];
}

interface SpeedResult {
  spec: string;
  layers: number;
  linears: number;
  tokenizeSeconds: number;
  quantizeSeconds: number;
  perLayer: LayerReport[];
  peakRssMB: number;
  vmHwmMB: number;
  runtimeMemory: Record<string, number>;
  calibrationMemory?: { peakCaptureBytes: number; hiddenBytes: number; sampledRows?: number };
  complete: boolean;
  /** 1/5/15-minute load averages when the child started and finished (runs reused from JSON keep theirs). */
  loadavg?: { start: number[]; end: number[] };
}

function vmHwmMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One spec on synthetic tinyllama-1.1b, in this process (the child side); prints LAYER lines as it goes. */
async function speedOne(spec: string, layers: number, nsamples: number, seqlen: number, extra: Partial<QuantizeOptions>) {
  const load0 = loadavg();
  const m = await LlamaModel.synthetic("tinyllama-1.1b", { seed: 1, denseDtype: "bf16", maxContext: Math.max(seqlen, 64) });
  const tok = Tokenizer.fromDir(path.join(shared, "data/tokenizers/llama2"));
  const t0 = performance.now();
  const cal = sampleCalibration((t) => tok.encode(t, { bos: false }), { nsamples, seqlen, seed: 0 });
  const t1 = performance.now();
  const sel = new RegExp(`^model\\.layers\\.(${Array.from({ length: layers }, (_, i) => i).join("|")})\\.`);
  const rep = await quantizeModel(m, spec, {
    ...extra,
    calibrationSet: cal,
    linears: (n) => sel.test(n),
    onLayer: (r) => {
      console.log("LAYER " + JSON.stringify(r));
      console.error(`    ${spec} layer ${r.layer}: forward ${r.forwardSeconds.toFixed(1)} s, capture ${r.captureSeconds.toFixed(1)} s, scale ${r.scaleSeconds.toFixed(1)} s, quantize ${r.quantizeSeconds.toFixed(1)} s`);
    },
  });
  const res: SpeedResult = {
    spec,
    layers,
    linears: rep.linears.length,
    tokenizeSeconds: (t1 - t0) / 1000,
    quantizeSeconds: rep.seconds,
    perLayer: rep.layers,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    vmHwmMB: vmHwmMB(),
    runtimeMemory: m.native.memory(),
    calibrationMemory: rep.calibrationMemory,
    complete: true,
    loadavg: { start: load0, end: loadavg() },
  };
  console.log("RESULT " + JSON.stringify(res));
}

/** Runs a child for one spec; on timeout, what it printed so far (finished layers) with complete: false. */
function speedChild(spec: string, o: Opts, extra: Partial<QuantizeOptions>): Promise<SpeedResult> {
  const args = ["--import", "tsx", fileURLToPath(import.meta.url), "--one", spec, "--layers", o.layers, "--nsamples", o.nsamples, "--seqlen", o.seqlen];
  if (extra.awqScoring !== undefined) args.push("--awq-scoring", extra.awqScoring);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, args, { cwd: root, encoding: "utf8", maxBuffer: 1 << 26, timeout: Number(o.budget) * 1000, killSignal: "SIGKILL" }, (err, stdout) => {
      const lines = stdout.split("\n");
      const done = lines.find((l) => l.startsWith("RESULT "));
      if (done) return resolve(JSON.parse(done.slice(7)) as SpeedResult);
      const perLayer = lines.filter((l) => l.startsWith("LAYER ")).map((l) => JSON.parse(l.slice(6)) as LayerReport);
      if (!err || !err.killed) return reject(new Error(`bench child for ${spec} printed no result: ${err?.message ?? ""}`));
      // Stopped at the budget (possibly before its first layer finished): report what finished.
      resolve({
        spec, layers: Number(o.layers), linears: perLayer.length * 7, tokenizeSeconds: NaN,
        quantizeSeconds: (performance.now() - started) / 1000, perLayer, peakRssMB: NaN, vmHwmMB: NaN, runtimeMemory: {}, complete: false,
      });
    });
    child.stderr?.pipe(process.stderr);
  });
}

async function perplexity(m: LlamaModel, stream: Int32Array, windows: number): Promise<number> {
  const L = 512;
  const n = Math.min(windows, Math.floor(stream.length / L));
  const scores = await m.scoreWindows(Array.from({ length: n }, (_, i) => stream.subarray(i * L, (i + 1) * L)));
  let nll = 0, count = 0;
  for (const s of scores) for (const lp of s.logprobs) (nll -= lp), count++;
  return Math.exp(nll / count);
}

type Opts = { layers: string; windows: string; nsamples: string; seqlen: string; budget: string; gptqBudget: string; methods: string; bits: string; out?: string; one?: string; awqScoring?: string; skipQuality?: boolean; skipSpeed?: boolean; qualityJson?: string; speedJson?: string };

async function main() {
  const program = new Command()
    .option("--layers <n>", "decoder layers of tinyllama-1.1b to quantize (22 = all)", "22")
    .option("--windows <n>", "stories260K perplexity windows of 512 tokens (767 = all)", "767")
    .option("--nsamples <n>", "calibration windows for tinyllama", "16")
    .option("--seqlen <n>", "calibration window length for tinyllama", "256")
    .option("--budget <s>", "seconds per speed child before it is stopped (finished layers are kept)", "1200")
    .option("--gptq-budget <s>", "the GPTQ child's budget", "1200")
    .option("--methods <list>", "comma-separated method names", "RTN,GPTQ,AWQ,SmoothQuant")
    .option("--bits <b>", "weight bits of the w<b>g128 specs", "4")
    .option("--skip-quality", "no quality part")
    .option("--skip-speed", "no speed part")
    .option("--quality-json <file>", "take the quality part from this earlier run's JSON instead of running it")
    .option("--speed-json <files>", "take the speed part from these earlier runs' JSON (comma-separated) instead of running it")
    .option("--out <file>", "JSON output (default bench/results/cpu-quantize-full-<date>.json)")
    .option("--one <spec>", "(internal) run one speed measurement in this process")
    .option("--awq-scoring <s>", "(internal) awqScoring of the --one run")
    .parse(process.argv);
  const o = program.opts<Opts>();
  const layers = Number(o.layers), windows = Number(o.windows), nsamples = Number(o.nsamples), seqlen = Number(o.seqlen);
  if (o.one) {
    await speedOne(o.one, layers, nsamples, seqlen, o.awqScoring ? { awqScoring: o.awqScoring as QuantizeOptions["awqScoring"] } : {});
    return;
  }
  const wanted = new Set(o.methods.split(",").map((s) => s.trim()));
  const methods = methodsFor(Number(o.bits)).filter((m) => wanted.has(m.method) || (m.qualityOnly && wanted.has("AWQ")));
  const cpu = native().cpuInfo();
  const load0 = loadavg();
  console.error(`quantize bench: isa ${cpu.isa}, ${cpu.threads} threads, load ${load0.map((x) => x.toFixed(2)).join(" ")}; tinyllama-1.1b layers 0..${layers - 1}, calibration ${nsamples} x ${seqlen}`);

  const quality = new Map<string, number>();
  const speed = new Map<string, SpeedResult>();
  const loads: Record<string, number[]> = {};
  /** Builds the rows from what has been measured so far and (re)writes the JSON. */
  const writeResult = () => {
    const rows = methods.map((m) => {
      const s = m.qualityOnly ? undefined : speed.get(m.spec);
      const b = m.qualityOnly ? undefined : speed.get(m.baseline);
      const perLayerSeconds = s ? s.perLayer.map((l) => l.forwardSeconds + l.captureSeconds + l.scaleSeconds + l.quantizeSeconds) : [];
      const mean = (xs: number[]) => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : NaN);
      const ppl = quality.get(m.method + ":" + m.spec), base = quality.get(m.baseline), fp = quality.get("fp32");
      return {
        method: m.method,
        spec: m.spec,
        options: m.opts ?? {},
        speed: s && b && {
          complete: s.complete,
          layersDone: s.perLayer.length,
          quantizeSeconds: s.quantizeSeconds,
          fullModelSeconds: s.complete ? s.quantizeSeconds : mean(perLayerSeconds) * layers,
          fullModelSecondsIsExtrapolated: !s.complete,
          secondsPerLayer: {
            mean: mean(perLayerSeconds),
            forward: mean(s.perLayer.map((l) => l.forwardSeconds)),
            capture: mean(s.perLayer.map((l) => l.captureSeconds)),
            scale: mean(s.perLayer.map((l) => l.scaleSeconds)),
            quantize: mean(s.perLayer.map((l) => l.quantizeSeconds)),
            each: perLayerSeconds,
          },
          baseline: m.baseline,
          baselineSeconds: b.quantizeSeconds,
          // Full model (measured, or extrapolated from the finished layers) over the baseline's full model.
          ratioToBaseline: (s.complete ? s.quantizeSeconds : mean(perLayerSeconds) * layers) / b.quantizeSeconds,
          peakRssMB: s.peakRssMB,
          vmHwmMB: s.vmHwmMB,
          runtimeMemoryAfter: s.runtimeMemory,
          calibrationMemory: s.calibrationMemory,
          tokenizeSeconds: s.tokenizeSeconds,
          loadavgAfter: loads[m.spec],
          loadavgDuringRun: s.loadavg,
        },
        stories260K: ppl === undefined ? undefined : { ppl, baselinePpl: base, fp32Ppl: fp, deltaVsFp32: (ppl - fp!) / fp!, deltaVsBaseline: (ppl - base!) / base! },
      };
    });
    const date = new Date().toISOString().slice(0, 10);
    const result = {
      bench: "quantize-full",
      date: new Date().toISOString(),
      machine: { isa: cpu.isa, threads: cpu.threads, features: cpu.features, loadavgStart: load0, loadavgEnd: loadavg(), note: "2 cores shared with 4 other engineers' builds and tests" },
      tinyllama: {
        layersQuantized: layers, of: 22, denseDtype: "bf16", sequential: "layer-wise",
        calibration: { source: "wikitext2-valid", tokenizer: "llama2", nsamples, seqlen, tokens: nsamples * seqlen, awqSampleRows: 512 },
        budgetSecondsPerMethod: Number(o.budget),
        gptqBudgetSeconds: Number(o.gptqBudget),
      },
      stories260K: o.skipQuality ? undefined : { windows, windowLength: 512, calibration: { source: "wikitext2-valid", nsamples: 128, seqlen: 256 } },
      rows,
      stories260KPpl: Object.fromEntries(quality),
    speedRaw: Object.fromEntries(speed),
    };
    const outFile = o.out ?? path.join(root, "bench", "results", `cpu-quantize-full-${date}.json`);
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify(result, null, 1) + "\n");
    return { rows, outFile };
  };
  // Quality on stories260K.
  if (o.qualityJson) {
    const prev = JSON.parse(readFileSync(o.qualityJson, "utf8")) as { stories260KPpl?: Record<string, number> };
    for (const [k, v] of Object.entries(prev.stories260KPpl ?? {})) quality.set(k, v);
    console.error(`  quality: ${quality.size} perplexities from ${o.qualityJson}`);
  } else if (!o.skipQuality) {
    const dir = path.join(shared, "data/models/stories260K");
    const text = readFileSync(path.join(shared, "data/datasets/tinystories_val_subset/tinystories_val_subset.txt"), "utf8");
    let stream: Int32Array | undefined;
    const qualityRuns: { key: string; spec: string; opts: Partial<QuantizeOptions> }[] = [{ key: "fp32", spec: "fp32", opts: {} }];
    for (const m of methods)
      for (const [key, spec, opts] of [[m.baseline, m.baseline, {}], [m.method + ":" + m.spec, m.spec, m.opts ?? {}]] as const)
        if (!qualityRuns.some((q) => q.key === key)) qualityRuns.push({ key, spec, opts });
    for (const q of qualityRuns) {
      console.error(`  quality ${q.key} ...`);
      const m = await LlamaModel.fromDir(dir, { kvType: kvTypeFor(parseSpec(q.spec)) });
      stream ??= Int32Array.from(m.encode(text, { bos: true }));
      await quantizeModel(m, q.spec, { ...q.opts, calibration: { nsamples: 128, seqlen: 256, seed: 0 } });
      quality.set(q.key, await perplexity(m, stream, windows));
      m.dispose();
    }
    writeResult();
  }

  // Speed: each spec in a child process (baselines included).
  // GPTQ last: it is the slowest, and runs under its own budget.
  const order = methods.filter((x) => !x.qualityOnly).sort((a, b) => Number(a.method === "GPTQ") - Number(b.method === "GPTQ"));
  // Several files: later ones override earlier ones (e.g. a rerun of one method).
  for (const file of o.speedJson ? o.speedJson.split(",") : []) {
    const prev = JSON.parse(readFileSync(file, "utf8")) as { speedRaw?: Record<string, SpeedResult> };
    for (const [k, v] of Object.entries(prev.speedRaw ?? {})) speed.set(k, v);
    console.error(`  speed: runs ${Object.keys(prev.speedRaw ?? {}).join(", ")} from ${file}`);
  }
  for (const m of o.skipSpeed || o.speedJson ? [] : order)
    for (const spec of [m.baseline, m.spec]) {
      if (speed.has(spec)) continue;
      console.error(`  speed ${spec} ...`);
      const budget = m.method === "GPTQ" && spec === m.spec ? o.gptqBudget : o.budget;
      speed.set(spec, await speedChild(spec, { ...o, budget }, m.opts ?? {}));
      loads[spec] = loadavg();
      const r = speed.get(spec)!;
      console.error(`    ${r.complete ? "done" : "STOPPED at budget"}: ${r.perLayer.length} layers, ${r.quantizeSeconds.toFixed(1)} s, peak RSS ${r.peakRssMB.toFixed(0)} MB`);
      writeResult();
    }

  const { rows, outFile } = writeResult();
  const f = (x: number | null | undefined, d = 2) => (x == null || Number.isNaN(x) ? "-" : x.toFixed(d)); // null: NaN through JSON
  const pct = (x: number | undefined) => (x === undefined ? "-" : (x * 100).toFixed(2) + "%");
  console.log(`\nquantize synthetic tinyllama-1.1b (${layers} of 22 layers, calibration ${nsamples} x ${seqlen} tokens) and stories260K perplexity (${windows} windows)`);
  console.log(
    "method                        spec          full-model s  s/layer (fwd/cap/scale/quant)    RTN s   ratio  peak RSS MB  VmHWM MB  capture MB  ppl      Δ vs fp32  Δ vs RTN",
  );
  for (const r of rows) {
    const s = r.speed;
    const split = s ? `${f(s.secondsPerLayer.mean, 1)} (${f(s.secondsPerLayer.forward, 1)}/${f(s.secondsPerLayer.capture, 1)}/${f(s.secondsPerLayer.scale, 1)}/${f(s.secondsPerLayer.quantize, 1)})` : "-";
    console.log(
      `${r.method.padEnd(29)} ${r.spec.padEnd(13)} ${(s ? f(s.fullModelSeconds, 0) + (s.complete ? "" : " (extrap.)") : "-").padStart(12)}  ${split.padEnd(31)} ` +
        `${(s ? f(s.baselineSeconds, 1) : "-").padStart(6)}  ${(s ? f(s.ratioToBaseline, 1) : "-").padStart(5)}  ${(s ? f(s.peakRssMB, 0) : "-").padStart(11)}  ` +
        `${(s ? f(s.vmHwmMB, 0) : "-").padStart(8)}  ${(s?.calibrationMemory ? f(s.calibrationMemory.peakCaptureBytes / 2 ** 20, 1) : "-").padStart(10)}  ` +
        `${f(r.stories260K?.ppl, 4).padStart(7)}  ${pct(r.stories260K?.deltaVsFp32).padStart(9)}  ${pct(r.stories260K?.deltaVsBaseline).padStart(8)}`,
    );
  }
  if (quality.has("fp32")) console.log(`fp32 stories260K ppl ${f(quality.get("fp32"), 4)}`);
  const la = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
  for (const [spec, r] of speed)
    if (r.loadavg) console.log(`load average during the ${spec} run: start ${la(r.loadavg.start)}, end ${la(r.loadavg.end)}`);
  console.log(`load average start ${load0.map((x) => x.toFixed(2)).join(" ")}, end ${loadavg().map((x) => x.toFixed(2)).join(" ")}; JSON: ${path.relative(root, outFile)}`);
}

await main();
