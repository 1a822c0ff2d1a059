/**
 * A Hugging Face checkpoint directory → a native model, tensor by tensor.
 *
 * Finds `model.safetensors` or the shards listed in `model.safetensors.index.json`, validates every file's header
 * (lib/model/safetensors.ts), checks that every tensor the config needs is present with the right shape and a
 * float dtype, and only then streams the tensors to native memory one at a time (read → setTensor → dropped), so
 * the process never holds the model twice.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { expectedTensors, type ModelConfig } from "./config.js";
import type { DenseDType, NativeModel } from "./native-types.js";
import { openSafetensors, SafetensorsError, type SafetensorsFile, type TensorInfo } from "./safetensors.js";

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** The safetensors files of a model directory. */
export function checkpointFiles(dir: string): string[] {
  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  if (existsSync(index)) {
    let j: { weight_map?: Record<string, string> };
    try {
      j = JSON.parse(readFileSync(index, "utf8"));
    } catch (e) {
      throw new CheckpointError(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!j.weight_map || typeof j.weight_map !== "object")
      throw new CheckpointError(`${index}: field 'weight_map': expected an object of tensor → file`);
    const files = [...new Set(Object.values(j.weight_map))].sort();
    for (const f of files)
      if (!existsSync(path.join(dir, f))) throw new CheckpointError(`${index}: shard '${f}' is missing from ${dir}`);
    return files.map((f) => path.join(dir, f));
  }
  if (existsSync(single)) return [single];
  throw new CheckpointError(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

const DTYPES: Record<string, DenseDType> = { F32: "f32", F16: "f16", BF16: "bf16" };

/** Tensor names the runtime does not need and that checkpoints sometimes carry. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

export interface LoadReport {
  files: string[];
  tensors: number;
  bytes: number;
  /** Tensors present in the checkpoint but not used (e.g. lm_head.weight of a tied model). */
  ignored: string[];
}

/**
 * Validates the checkpoint against the config, then streams every tensor into `model`. `keepDtype` false converts
 * fp16/bf16 linears to f32 in native memory.
 */
export function loadCheckpoint(dir: string, cfg: ModelConfig, model: NativeModel, keepDtype = true): LoadReport {
  const files = checkpointFiles(dir);
  const opened: SafetensorsFile[] = [];
  try {
    const where = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();
    for (const f of files) {
      let st: SafetensorsFile;
      try {
        st = openSafetensors(f);
      } catch (e) {
        if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
        throw e;
      }
      opened.push(st);
      for (const [name, info] of st.tensors) {
        const prev = where.get(name);
        if (prev) throw new CheckpointError(`tensor '${name}' appears in both ${prev.file.path} and ${f}`);
        where.set(name, { file: st, info });
      }
    }
    const want = expectedTensors(cfg);
    for (const [name, shape] of want) {
      const w = where.get(name);
      if (!w) throw new CheckpointError(`${dir}: missing tensor '${name}' (expected shape [${shape}])`);
      if (w.info.shape.length !== shape.length || w.info.shape.some((d, i) => d !== shape[i]))
        throw new CheckpointError(
          `${w.file.path}: tensor '${name}': expected shape [${shape}], got [${w.info.shape}]`,
        );
      if (!DTYPES[w.info.dtype])
        throw new CheckpointError(`${w.file.path}: tensor '${name}': expected dtype F32, F16 or BF16, got ${w.info.dtype}`);
    }
    const ignored = [...where.keys()].filter((n) => !want.has(n));
    for (const n of ignored)
      if (!(IGNORED.test(n) || (n === "lm_head.weight" && cfg.tieWordEmbeddings)))
        throw new CheckpointError(`${where.get(n)!.file.path}: unexpected tensor '${n}' for ${cfg.architecture} config`);
    let bytes = 0;
    // File order (by offset) keeps reads sequential.
    for (const st of opened)
      for (const name of st.names()) {
        if (!want.has(name)) continue;
        const info = st.info(name);
        const data = st.readBytes(name);
        model.setTensor(name, DTYPES[info.dtype], info.shape, data, keepDtype);
        bytes += data.byteLength;
      }
    return { files, tensors: want.size, bytes, ignored };
  } finally {
    for (const st of opened) st.close();
  }
}
