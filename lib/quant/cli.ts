/**
 * CLI commands of the quantization layer:
 *
 *   quanteval spec <spec>                     parse a spec, print its canonical form and structure (or what is wrong)
 *   quanteval quantize <model-dir> --spec <spec> --out <dir> [calibration options]
 *                                             quantize a Hugging Face model folder and save a quantized checkpoint
 */
import type { Command } from "commander";
import { kvSettingName } from "../model/kv.js";
import { LlamaModel } from "../model/model.js";
import { CALIBRATION_DEFAULTS, type CalibrationSource } from "./calibration.js";
import { saveQuantizedModel } from "./checkpoint.js";
import { kvTypeFor, quantizeModel } from "./quantize.js";
import { activationExecution, formatSpec, parseSpec } from "./spec.js";

function source(s: string): CalibrationSource {
  if (s.startsWith("file:")) return { file: s.slice(5) };
  if (s === "wikitext2-valid" || s === "wikitext2-test" || s === "tinystories") return s;
  throw new RangeError(`--calib: expected wikitext2-valid, wikitext2-test, tinystories or file:<path>, got '${s}'`);
}

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new RangeError(`${name}: expected an integer, got '${v}'`);
    return n;
  };
}

export function registerQuantizeCommands(program: Command): void {
  program
    .command("spec")
    .description("check a quantization spec (e.g. w4g128+gptq, w8a8+sq0.85, w4g32a8kv4) and print its canonical form")
    .argument("<spec>")
    .action((s: string) => {
      const spec = parseSpec(s);
      console.log(formatSpec(spec));
      console.log(JSON.stringify({ ...spec, activationExecution: activationExecution(spec) }, null, 1));
    });

  program
    .command("quantize")
    .description("quantize a Hugging Face model folder to a spec and save a quantized checkpoint (packed safetensors)")
    .argument("<model-dir>")
    .requiredOption("--spec <spec>", "quantization spec, e.g. w4g128+gptq")
    .requiredOption("--out <dir>", "output folder")
    .option("--calib <source>", "wikitext2-valid | wikitext2-test | tinystories | file:<path>", CALIBRATION_DEFAULTS.source)
    .option("--nsamples <n>", "calibration windows", int("--nsamples"), CALIBRATION_DEFAULTS.nsamples)
    .option("--seqlen <n>", "tokens per calibration window", int("--seqlen"), CALIBRATION_DEFAULTS.seqlen)
    .option("--seed <n>", "calibration PRNG seed", int("--seed"), CALIBRATION_DEFAULTS.seed)
    .option("--no-sequential", "calibrate every layer in one pass over the unquantized model")
    .option("--linears <regexp>", "which linears to quantize (default: every decoder linear)")
    .option("--scale-dtype <t>", "f32 | f16 | bf16", "f32")
    .action(
      async (
        dir: string,
        o: { spec: string; out: string; calib: string; nsamples: number; seqlen: number; seed: number; sequential: boolean; linears?: string; scaleDtype: string },
      ) => {
        const spec = parseSpec(o.spec);
        if (!["f32", "f16", "bf16"].includes(o.scaleDtype))
          throw new RangeError(`--scale-dtype: expected f32, f16 or bf16, got '${o.scaleDtype}'`);
        const model = await LlamaModel.fromDir(dir, { kvType: kvTypeFor(spec) });
        const rep = await quantizeModel(model, spec, {
          calibration: { source: source(o.calib), nsamples: o.nsamples, seqlen: o.seqlen, seed: o.seed },
          sequential: o.sequential,
          linears: o.linears ? new RegExp(o.linears) : undefined,
          scaleDtype: o.scaleDtype as "f32" | "f16" | "bf16",
          onProgress: (p) => process.stderr.write(`\r\x1b[K${p.message}`),
        });
        process.stderr.write("\n");
        const meta = saveQuantizedModel(o.out, model, rep);
        console.log(
          `${meta.spec}: ${rep.linears.length} linears packed in ${rep.seconds.toFixed(1)} s (${rep.method}); ` +
            `activations ${rep.execution.activations}, KV ${kvSettingName(rep.execution.kv)}` +
            (rep.calibration ? `; calibration ${rep.calibration.source} ${rep.calibration.nsamples}x${rep.calibration.seqlen} sha256 ${rep.calibration.sha256.slice(0, 16)}…` : "") +
            ` → ${o.out}`,
        );
      },
    );
}
