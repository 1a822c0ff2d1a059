// stories260K perplexity on the TinyStories subset through `quanteval eval` in a child process equals
// golden/stories260K.ppl.json (float64 reference; `semantics` defines the protocol) within 0.5%, for fp32 and the
// packed w4 group-32 setting; the window count and predicted-token count must match exactly.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { sharedRoot } from "../lib/eval/data.js";
import type { ResultsFile } from "../lib/report/results.js";
import { writeDataDir } from "./helpers/eval_fixtures.js";

const ROOT = join(dirname(new URL(import.meta.url).pathname), "..");
const shared = sharedRoot();
const modelDir = join(shared, "data/models/stories260K");
const goldenFile = join(shared, "golden/stories260K.ppl.json");
const present = existsSync(join(modelDir, "model.safetensors")) && existsSync(goldenFile);

describe.skipIf(!present)("stories260K perplexity through the CLI vs golden", () => {
  it("fp32 and w4g32 (golden w4_g32) on tinystories, L = 512, within 0.5%", async () => {
    const golden = JSON.parse(readFileSync(goldenFile, "utf8")).results;
    const out = join(writeDataDir({}), "golden.json");
    await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", join(ROOT, "lib/cli.ts"), "eval", "--model", modelDir, "--quant", "w4g32", "--tasks", "tinystories", "--seq-len", "512", "--no-kl", "--output", out, "--progress", "silent"],
      { cwd: ROOT, maxBuffer: 1 << 24 },
    );
    const r = JSON.parse(readFileSync(out, "utf8")) as ResultsFile;
    for (const [setting, g] of [["baseline", golden.fp32.tinystories_L512], ["w4g32", golden.w4_g32.tinystories_L512]] as const) {
      const t = r.results[setting].tinystories;
      const d = t.details as { windows: number; predictedTokens: number; streamTokens: number };
      expect(d.streamTokens).toBe(393019);
      expect(d.windows, setting).toBe(g.windows);
      expect(d.predictedTokens, setting).toBe(g.predicted_tokens);
      expect(Math.abs(t.metrics.ppl.value / g.ppl - 1), `${setting}: ppl ${t.metrics.ppl.value} vs golden ${g.ppl}`).toBeLessThan(0.005);
    }
  });
});
