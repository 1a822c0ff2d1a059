/** Where a result came from: CPU, GPU and driver when there is one, Node and quanteval versions, git commit. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../eval/data.js";

export interface Environment {
  cpu: { model: string; cores: number };
  memoryBytes: number;
  os: string;
  gpus: { name: string; driver: string; memoryMiB: number }[];
  node: string;
  quanteval: string;
  gitCommit: string | null;
  gitDirty: boolean | null;
  backend?: string;
}

function tryExec(cmd: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

export function collectEnvironment(): Environment {
  const root = repoRoot();
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  const smi = tryExec("nvidia-smi", ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]);
  const gpus = (smi ?? "")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [name, driver, mem] = l.split(",").map((x) => x.trim());
      return { name, driver, memoryMiB: Number(mem) };
    });
  const commit = tryExec("git", ["rev-parse", "HEAD"], root);
  const status = commit ? tryExec("git", ["status", "--porcelain", "--untracked-files=no"], root) : null;
  const c = cpus();
  return {
    cpu: { model: c[0]?.model ?? "unknown", cores: c.length },
    memoryBytes: totalmem(),
    os: `${platform()} ${release()}`,
    gpus,
    node: process.version,
    quanteval: pkg.version,
    gitCommit: commit,
    gitDirty: status === null ? null : status !== "",
  };
}
