/**
 * Location of the project's shared data (models, datasets, goldens): `QUANTEVAL_SHARED`, else `<repo>/../shared`.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../native.js";

export function sharedDir(): string {
  return path.resolve(process.env.QUANTEVAL_SHARED ?? path.join(packageRoot, "..", "shared"));
}

/** A path inside the shared folder; throws with the fix when it is missing. */
export function sharedPath(...parts: string[]): string {
  const p = path.join(sharedDir(), ...parts);
  if (!existsSync(p))
    throw new Error(`shared data not found: ${p} (set QUANTEVAL_SHARED to the folder holding data/ and golden/)`);
  return p;
}

/**
 * Folder of the datasets: an explicit override (`--data`), else `QUANTEVAL_DATA`, else `<shared>/data/datasets`.
 * The one rule used by evaluation and calibration alike.
 */
export function datasetsRoot(override?: string): string {
  if (override) return path.resolve(override);
  if (process.env.QUANTEVAL_DATA) return path.resolve(process.env.QUANTEVAL_DATA);
  return path.join(sharedDir(), "data", "datasets");
}
