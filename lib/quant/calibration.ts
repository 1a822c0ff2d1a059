/**
 * Calibration data: `nsamples` windows of `seqlen` tokens drawn from a text with a seeded PRNG, the way GPTQ's
 * `get_wikitext2` / `get_c4` draw them (tokenize the whole text once, then for each sample a uniformly random start
 * in [0, tokens - seqlen)), plus the sha256 of the chosen windows so that a run can be reproduced and checked.
 *
 * Sources (read in place from the shared data folder, never copied):
 * - `wikitext2-valid` (the default): WikiText-2 v1 *validation* tokens (`wikitext2_v1_tokens/wiki.valid.tokens`,
 *   words outside the 33k vocabulary appear as `<unk>`). Chosen as the default because it is disjoint from every
 *   text quanteval evaluates perplexity on (the TinyStories subset and the WikiText-2 *test* split), so calibration
 *   never sees the evaluated tokens. The raw train split is not available in the shared data.
 * - `wikitext2-test`: WikiText-2 raw test, joined the GPTQ way (`"\n\n".join(rows)`). This IS an evaluated text; use
 *   it only to reproduce papers that calibrate on it.
 * - `tinystories`: the TinyStories validation subset. In-domain for stories260K but it IS the text the golden
 *   perplexities are measured on (all 767 windows cover it), so calibrating on it overlaps the evaluation.
 * - `{ file }`: any UTF-8 text file.
 *
 * Location of the data: `QUANTEVAL_DATA`, else `$QUANTEVAL_SHARED/data/datasets`, else `<repo>/../shared/data/datasets`.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../native.js";
import { Rng } from "./random.js";

export type CalibrationDataset = "wikitext2-valid" | "wikitext2-test" | "tinystories";
export type CalibrationSource = CalibrationDataset | { file: string };

export interface CalibrationOptions {
  /** Default `wikitext2-valid` (see the module comment). */
  source?: CalibrationSource;
  /** Number of windows; default 128 (GPTQ's default). */
  nsamples?: number;
  /** Tokens per window; default 512 (capped by the caller at the model's context). */
  seqlen?: number;
  /** PRNG seed; default 0. */
  seed?: number;
  /** Override of the datasets folder. */
  dataRoot?: string;
}

export const CALIBRATION_DEFAULTS = { source: "wikitext2-valid", nsamples: 128, seqlen: 512, seed: 0 } as const;

/** What was chosen, enough to reproduce and verify it; stored in results and quantized checkpoints. */
export interface CalibrationRecord {
  source: string;
  /** sha256 of the source text (UTF-8). */
  textSha256: string;
  /** Tokens of the whole source text. */
  totalTokens: number;
  nsamples: number;
  seqlen: number;
  seed: number;
  /** Start offset of each window in the token stream. */
  starts: number[];
  /** sha256 over the windows' token ids, int32 little-endian, in order. */
  sha256: string;
}

export interface CalibrationSet {
  windows: Int32Array[];
  record: CalibrationRecord;
}

export class CalibrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CalibrationError";
  }
}

export { datasetsRoot } from "../model/shared.js";
import { datasetsRoot } from "../model/shared.js";

const DATASET_FILES: Record<CalibrationDataset, string> = {
  "wikitext2-valid": "wikitext2_v1_tokens/wiki.valid.tokens",
  "wikitext2-test": "wikitext2_raw/wiki.test.raw",
  tinystories: "tinystories_val_subset/tinystories_val_subset.txt",
};

/** The text of a calibration source and its display name. */
export function calibrationText(source: CalibrationSource, root?: string): { name: string; text: string } {
  let file: string;
  let name: string;
  if (typeof source === "string") {
    if (!(source in DATASET_FILES))
      throw new CalibrationError(
        `calibration source: expected one of ${Object.keys(DATASET_FILES).join(", ")} or { file }, got '${source}'`,
      );
    file = path.join(datasetsRoot(root), DATASET_FILES[source]);
    name = source;
  } else {
    file = path.resolve(source.file);
    name = `file:${path.basename(file)}`;
  }
  if (!existsSync(file))
    throw new CalibrationError(
      `calibration source ${name}: file not found: ${file} (set QUANTEVAL_DATA or QUANTEVAL_SHARED to the data folder)`,
    );
  let text = readFileSync(file, "utf8");
  if (source === "wikitext2-test") {
    // GPTQ's join of the HF rows: a row is a line with its newline, blank rows are ''.
    const rows = text.split("\n").slice(0, -1).map((l) => (l.trim() === "" ? "" : l + "\n"));
    text = rows.join("\n\n");
  }
  if (text.length === 0) throw new CalibrationError(`calibration source ${name}: ${file} is empty`);
  return { name, text };
}

export function hashWindows(windows: readonly Int32Array[]): string {
  const h = createHash("sha256");
  for (const w of windows) {
    const b = Buffer.alloc(w.length * 4);
    for (let i = 0; i < w.length; i++) b.writeInt32LE(w[i], i * 4);
    h.update(b);
  }
  return h.digest("hex");
}

/**
 * Draws the calibration windows. `encode` is the model's tokenizer (no BOS: the text is one stream and windows are
 * slices of it, as in GPTQ).
 */
export function sampleCalibration(
  encode: (text: string) => readonly number[],
  opts: CalibrationOptions = {},
): CalibrationSet {
  const source = opts.source ?? CALIBRATION_DEFAULTS.source;
  const nsamples = opts.nsamples ?? CALIBRATION_DEFAULTS.nsamples;
  const seqlen = opts.seqlen ?? CALIBRATION_DEFAULTS.seqlen;
  const seed = opts.seed ?? CALIBRATION_DEFAULTS.seed;
  if (!Number.isInteger(nsamples) || nsamples < 1)
    throw new CalibrationError(`nsamples: expected an integer >= 1, got ${nsamples}`);
  if (!Number.isInteger(seqlen) || seqlen < 2) throw new CalibrationError(`seqlen: expected an integer >= 2, got ${seqlen}`);
  if (!Number.isInteger(seed)) throw new CalibrationError(`seed: expected an integer, got ${seed}`);
  const { name, text } = calibrationText(source, opts.dataRoot);
  const tokens = Int32Array.from(encode(text));
  if (tokens.length <= seqlen)
    throw new CalibrationError(
      `calibration source ${name}: ${tokens.length} tokens, need more than seqlen = ${seqlen} to draw windows`,
    );
  const rng = new Rng(seed);
  const starts: number[] = [];
  const windows: Int32Array[] = [];
  for (let i = 0; i < nsamples; i++) {
    const s = rng.int(tokens.length - seqlen);
    starts.push(s);
    windows.push(tokens.slice(s, s + seqlen));
  }
  return {
    windows,
    record: {
      source: name,
      textSha256: createHash("sha256").update(text, "utf8").digest("hex"),
      totalTokens: tokens.length,
      nsamples,
      seqlen,
      seed,
      starts,
      sha256: hashWindows(windows),
    },
  };
}
