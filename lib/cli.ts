#!/usr/bin/env node
import { Command } from "commander";
import { loadNative } from "./native.js";
import { registerEvalCommand } from "./eval/cli_eval.js";

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
    console.log(`cpu       isa=${cpu.isa} threads=${cpu.threads}`);
    const feats = Object.entries(cpu.features).filter(([, v]) => v).map(([k]) => k);
    console.log(`features  ${feats.join(" ")}`);
    console.log(`cuda      ${cuda.compiled ? `${cuda.devices.length} device(s)` : "not compiled in"}`);
    for (const d of cuda.devices) console.log(`          ${d.name} sm_${d.computeCapability.replace(".", "")}`);
  });

registerEvalCommand(program);

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`quanteval: ${e.message}`);
  process.exit(1);
});
