/**
 * Dataset files, read in place from the shared data folder (never copied into the repo).
 *
 * Location, first match wins: an explicit `--data <dir>`, `QUANTEVAL_DATA`, then
 * `$QUANTEVAL_SHARED/data/datasets`, then `<repo>/../shared/data/datasets`. Every parse error names the file and
 * (for line formats) the 1-based line, with what was expected and what was found.
 */
import { datasetsRoot, sharedDir } from "../model/shared.js";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseCsv } from "csv-parse/sync";

export class DatasetError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    message: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${message}`);
    this.name = "DatasetError";
  }
}

/** The repository root: the nearest folder above this module holding package.json (works from lib/ and dist/lib/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`quanteval: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const sharedRoot = sharedDir;

/** Folder holding the datasets (see the module comment for the search order). */
export const dataRoot = datasetsRoot;

/** Path of `rel` under the data root, with a clear error when missing. */
export function dataFile(root: string, rel: string): string {
  const p = join(root, rel);
  if (!existsSync(p)) {
    throw new DatasetError(
      p,
      undefined,
      `missing dataset file (data root ${root}; set --data or QUANTEVAL_DATA to the folder holding the datasets)`,
    );
  }
  return p;
}

export function readText(file: string): string {
  if (!existsSync(file) || !statSync(file).isFile()) throw new DatasetError(file, undefined, "no such file");
  return readFileSync(file, "utf8");
}

/** One JSON object per line; blank lines skipped. Returns [line number, object] pairs. */
export function readJsonl(file: string): { line: number; value: Record<string, unknown> }[] {
  const out: { line: number; value: Record<string, unknown> }[] = [];
  const lines = readText(file).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].trim();
    if (s === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new DatasetError(file, i + 1, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new DatasetError(file, i + 1, `expected a JSON object, got ${Array.isArray(v) ? "array" : typeof v}`);
    }
    out.push({ line: i + 1, value: v as Record<string, unknown> });
  }
  return out;
}

/** CSV with a header row; every row must have exactly the header's columns. Line numbers are 1-based file lines. */
export function readCsv(file: string, expectedHeader?: readonly string[]): { line: number; row: string[] }[] {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parseCsv(readText(file), { info: true, relax_column_count: true }) as unknown as typeof records;
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new DatasetError(file, err.lines, `invalid CSV (${err.message})`);
  }
  if (records.length === 0) throw new DatasetError(file, 1, "empty CSV file, expected a header row");
  const header = records[0].record;
  if (expectedHeader && header.join(",") !== expectedHeader.join(",")) {
    throw new DatasetError(file, 1, `expected header "${expectedHeader.join(",")}", got "${header.join(",")}"`);
  }
  return records.slice(1).map(({ record, info }) => {
    if (record.length !== header.length) {
      throw new DatasetError(file, info.lines, `expected ${header.length} fields, got ${record.length}`);
    }
    return { line: info.lines, row: record };
  });
}

/** Typed field access for JSONL rows, with errors that name file, line and field. */
export class Row {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly value: Record<string, unknown>,
  ) {}

  private fail(name: string, expected: string): never {
    const got = this.value[name];
    const desc = got === undefined ? "missing" : Array.isArray(got) ? "array" : typeof got;
    throw new DatasetError(this.file, this.line, `field "${name}": expected ${expected}, got ${desc}`);
  }
  has(name: string): boolean {
    return this.value[name] !== undefined;
  }
  string(name: string): string {
    const v = this.value[name];
    if (typeof v !== "string") this.fail(name, "a string");
    return v;
  }
  int(name: string, lo = -Infinity, hi = Infinity): number {
    const v = this.value[name];
    if (typeof v !== "number" || !Number.isInteger(v)) this.fail(name, "an integer");
    if (v < lo || v > hi) {
      throw new DatasetError(this.file, this.line, `field "${name}": expected an integer in [${lo}, ${hi}], got ${v}`);
    }
    return v;
  }
  strings(name: string, minLength = 1): string[] {
    const v = this.value[name];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) this.fail(name, "an array of strings");
    if (v.length < minLength) {
      throw new DatasetError(this.file, this.line, `field "${name}": expected at least ${minLength} entries, got ${v.length}`);
    }
    return v as string[];
  }
  raw(name: string): unknown {
    return this.value[name];
  }
}

export function jsonlRows(file: string): Row[] {
  return readJsonl(file).map(({ line, value }) => new Row(file, line, value));
}
