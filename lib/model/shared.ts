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
