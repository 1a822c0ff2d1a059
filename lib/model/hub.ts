/**
 * Model download from the Hugging Face Hub (or any server with the hub's layout) into a local cache, through the
 * official client (@huggingface/hub): the repo's info (`/api/models/<repo>/revision/<rev>`) gives the commit sha
 * and the file list, then each needed file comes from `/<repo>/resolve/<sha>/<file>` and is written atomically
 * (temp file + rename) to `<cache>/models--<owner>--<name>/snapshots/<sha>/`. Files already there with the right
 * size are not downloaded again.
 *
 * Endpoint: `endpoint` option, else `HF_ENDPOINT`, else https://huggingface.co. Cache: `cacheDir` option, else
 * `QUANTEVAL_CACHE`, else ~/.cache/quanteval. Token: `accessToken` option, else `HF_TOKEN`.
 */
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { downloadFile, modelInfo } from "@huggingface/hub";

export interface DownloadOptions {
  revision?: string;
  endpoint?: string;
  cacheDir?: string;
  accessToken?: string;
  /** Called after each file with (file, bytes). */
  onFile?: (file: string, bytes: number) => void;
}

export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

/** Files a model directory needs (weights, config, tokenizer). */
const WANTED = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors\.index\.json|[^/]*\.safetensors)$/;

export function cacheRoot(opts: { cacheDir?: string } = {}): string {
  return opts.cacheDir ?? process.env.QUANTEVAL_CACHE ?? path.join(os.homedir(), ".cache", "quanteval");
}

/** Downloads (or finds in the cache) a model repo; returns the local snapshot directory. */
export async function downloadModel(repo: string, opts: DownloadOptions = {}): Promise<string> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo)) throw new HubError(`repo: expected 'owner/name', got '${repo}'`);
  const hubUrl = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/$/, "");
  const accessToken = opts.accessToken ?? process.env.HF_TOKEN;
  const revision = opts.revision ?? "main";
  let info: { sha?: string; filePaths?: string[] };
  try {
    info = await modelInfo({ name: repo, revision, hubUrl, accessToken, additionalFields: ["sha", "filePaths"] });
  } catch (e) {
    throw new HubError(`${hubUrl}: cannot get info of model '${repo}' at revision '${revision}': ${(e as Error).message}`);
  }
  const sha = info.sha;
  if (!sha || !/^[\w.-]+$/.test(sha)) throw new HubError(`${hubUrl}: model '${repo}': the info has no valid sha`);
  const files = (info.filePaths ?? []).filter((f) => WANTED.test(f));
  if (!files.includes("config.json")) throw new HubError(`${hubUrl}: model '${repo}' has no config.json`);
  if (!files.some((f) => f.endsWith(".safetensors")))
    throw new HubError(`${hubUrl}: model '${repo}' has no .safetensors weights (other formats are not supported)`);
  const base = path.join(cacheRoot(opts), `models--${repo.replace("/", "--")}`);
  const snap = path.join(base, "snapshots", sha);
  mkdirSync(snap, { recursive: true });
  for (const f of files) {
    const dest = path.join(snap, f);
    const blob = await downloadFile({ repo, path: f, revision: sha, hubUrl, accessToken, xet: false });
    if (!blob) throw new HubError(`${hubUrl}: model '${repo}': file '${f}' listed but not found`);
    if (existsSync(dest) && statSync(dest).size === blob.size) continue;
    const tmp = `${dest}.part-${process.pid}`;
    await pipeline(Readable.fromWeb(blob.stream() as import("node:stream/web").ReadableStream), createWriteStream(tmp));
    if (statSync(tmp).size !== blob.size)
      throw new HubError(`${hubUrl}: model '${repo}': file '${f}' arrived with ${statSync(tmp).size} bytes, expected ${blob.size}`);
    renameSync(tmp, dest);
    opts.onFile?.(f, blob.size);
  }
  mkdirSync(path.join(base, "refs"), { recursive: true });
  writeFileSync(path.join(base, "refs", revision.replace(/\//g, "_")), sha);
  return snap;
}
