/**
 * safetensors reader and writer.
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section. The JSON maps
 * tensor names to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the data section) plus an
 * optional `__metadata__` object of string → string.
 *
 * {@link openSafetensors} validates the whole header before any tensor byte is read: header length inside the
 * file, valid JSON object, known dtype, shape of non-negative integers, `prod(shape) × dtype size == end - begin`,
 * every range inside the data section, and no two ranges overlapping. A checkpoint that fails is rejected with a
 * {@link SafetensorsError} naming the file, the tensor and what was expected vs found. Tensors are then read one at
 * a time (a positioned read into a fresh buffer), so a loader can hand each one to native memory and drop it: a
 * model is never held twice.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

/** Element types safetensors files may hold. */
export type SafetensorsDType =
  | "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL" | "U16" | "U32" | "U64"
  | "F8_E4M3" | "F8_E5M2";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
  F8_E4M3: 1, F8_E5M2: 1,
};

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte range in the file, [begin, end). */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** An open, validated safetensors file. Close it when done. */
export class SafetensorsFile {
  private fd: number | undefined;
  readonly tensors: ReadonlyMap<string, TensorInfo>;

  constructor(
    readonly path: string,
    fd: number,
    tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    readonly fileSize: number,
  ) {
    this.fd = fd;
    this.tensors = tensors;
  }

  /** Tensor names in file order (by offset). */
  names(): string[] {
    return [...this.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => t.name);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor '${name}'`);
    return t;
  }

  /** The raw bytes of one tensor (a fresh, 8-byte aligned buffer). */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === undefined) throw new SafetensorsError(`${this.path}: file is closed`);
    const n = t.end - t.begin;
    // An ArrayBuffer of our own keeps the typed views below aligned.
    const out = new Uint8Array(new ArrayBuffer(n));
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, out, done, Math.min(n - done, 1 << 30), t.begin + done);
      if (r <= 0) throw new SafetensorsError(`${this.path}: tensor '${name}': unexpected end of file`);
      done += r;
    }
    return out;
  }

  /**
   * One tensor as a typed array of its own element type: F32 → Float32Array, F16/BF16 → Uint16Array (raw bits),
   * F64 → Float64Array, I32 → Int32Array, I64 → BigInt64Array, I8 → Int8Array, U8/BOOL → Uint8Array, ...
   */
  read(name: string): TypedTensor {
    const t = this.info(name);
    return { dtype: t.dtype, shape: t.shape, data: viewAs(t.dtype, this.readBytes(name)) };
  }

  /** A tensor converted to fp32 (F32, F16, BF16, F64 and integer types). */
  readFloat32(name: string): Float32Array {
    const t = this.read(name);
    return toFloat32(t.dtype, t.data);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export type TensorData =
  | Float32Array | Float64Array | Uint16Array | Int16Array | Int32Array | Uint32Array | Int8Array | Uint8Array
  | BigInt64Array | BigUint64Array;

export interface TypedTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: TensorData;
}

function viewAs(dtype: SafetensorsDType, b: Uint8Array): TensorData {
  const buf = b.buffer as ArrayBuffer, off = b.byteOffset, n = b.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case "F32": return new Float32Array(buf, off, n);
    case "F64": return new Float64Array(buf, off, n);
    case "F16": case "BF16": case "U16": return new Uint16Array(buf, off, n);
    case "I16": return new Int16Array(buf, off, n);
    case "I32": return new Int32Array(buf, off, n);
    case "U32": return new Uint32Array(buf, off, n);
    case "I64": return new BigInt64Array(buf, off, n);
    case "U64": return new BigUint64Array(buf, off, n);
    case "I8": return new Int8Array(buf, off, n);
    default: return b;
  }
}

const f32scratch = new Float32Array(1);
const u32scratch = new Uint32Array(f32scratch.buffer);

/** IEEE half bits → number. */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits → number. */
export function bf16ToNumber(h: number): number {
  u32scratch[0] = h << 16;
  return f32scratch[0];
}

/** A tensor's data as fp32. */
export function toFloat32(dtype: SafetensorsDType, data: TensorData): Float32Array {
  if (dtype === "F32") return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === "F16") {
    const d = data as Uint16Array;
    for (let i = 0; i < d.length; i++) out[i] = f16ToNumber(d[i]);
  } else if (dtype === "BF16") {
    const d = data as Uint16Array;
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < d.length; i++) u[i] = d[i] << 16;
  } else if (dtype === "I64" || dtype === "U64") {
    const d = data as BigInt64Array;
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  } else if (dtype === "F8_E4M3" || dtype === "F8_E5M2") {
    throw new SafetensorsError(`toFloat32: dtype ${dtype} is not supported`);
  } else {
    const d = data as Exclude<TensorData, BigInt64Array | BigUint64Array>;
    for (let i = 0; i < d.length; i++) out[i] = d[i];
  }
  return out;
}

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** Opens and validates a safetensors file (see the module comment for the checks). */
export function openSafetensors(path: string): SafetensorsFile {
  const fd = openSync(path, "r");
  try {
    const fileSize = fstatSync(fd).size;
    const fail = (msg: string): never => {
      throw new SafetensorsError(`${path}: ${msg}`);
    };
    if (fileSize < 8) fail(`file is ${fileSize} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen64 = lenBuf.readBigUInt64LE(0);
    if (headerLen64 > BigInt(fileSize - 8))
      fail(`header length ${headerLen64} exceeds the ${fileSize - 8} bytes after the length field (truncated file?)`);
    const headerLen = Number(headerLen64);
    if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
    if (headerLen < 2) fail(`header length ${headerLen} is too small for a JSON object`);
    const hb = Buffer.alloc(headerLen);
    readSync(fd, hb, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(hb.toString("utf8"));
    } catch (e) {
      return fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header))
      fail(`header must be a JSON object, got ${Array.isArray(header) ? "an array" : typeof header}`);
    const dataStart = 8 + headerLen;
    const dataSize = fileSize - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (typeof raw !== "object" || raw === null || Array.isArray(raw))
          fail(`__metadata__ must be an object of strings`);
        for (const [k, v] of Object.entries(raw as Record<string, unknown>))
          if (typeof v !== "string") fail(`__metadata__.${k} must be a string, got ${typeof v}`);
        metadata = raw as Record<string, string>;
        continue;
      }
      const where = `tensor '${name}'`;
      if (typeof raw !== "object" || raw === null) fail(`${where}: entry must be an object`);
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!isDType(e.dtype))
        fail(`${where}: unknown dtype ${JSON.stringify(e.dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(", ")})`);
      const dtype = e.dtype as SafetensorsDType;
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
        fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
      const shape = e.shape as number[];
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0))
        fail(`${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
      const [b, en] = offs as number[];
      if (en < b) fail(`${where}: data_offsets [${b}, ${en}] has end before begin`);
      const want = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
      if (en - b !== want)
        fail(`${where}: shape [${shape}] of ${dtype} needs ${want} bytes but data_offsets [${b}, ${en}] span ${en - b}`);
      if (en > dataSize)
        fail(`${where}: data_offsets [${b}, ${en}] extend past the data section of ${dataSize} bytes (truncated file?)`);
      tensors.set(name, { name, dtype, shape, begin: dataStart + b, end: dataStart + en });
    }
    // Overlap check: sort by begin; each must start at or after the previous end.
    const sorted = [...tensors.values()].sort((a, c) => a.begin - c.begin || a.end - c.end);
    for (let i = 1; i < sorted.length; i++) {
      const p = sorted[i - 1], c = sorted[i];
      if (c.begin < p.end && c.end > c.begin && p.end > p.begin)
        fail(
          `tensors '${p.name}' [${p.begin - dataStart}, ${p.end - dataStart}) and '${c.name}' ` +
            `[${c.begin - dataStart}, ${c.end - dataStart}) overlap`,
        );
    }
    return new SafetensorsFile(path, fd, tensors, metadata, fileSize);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** A tensor to write: raw data of the given dtype (its byte length must match the shape). */
export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file: tensors in the given order, each 8-byte aligned relative to the data section (as
 * the reference writer pads its header to 8 bytes). Validates that each data length equals prod(shape) × size.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of entries) {
    if (!isDType(t.dtype)) throw new SafetensorsError(`writeSafetensors: tensor '${name}': unknown dtype ${t.dtype}`);
    const want = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== want)
      throw new SafetensorsError(
        `writeSafetensors: tensor '${name}': shape [${t.shape}] of ${t.dtype} needs ${want} bytes, got ${t.data.byteLength}`,
      );
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + want] };
    off += want;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, "w");
  try {
    writeSync(fd, len);
    writeSync(fd, Buffer.from(json, "utf8"));
    for (const [, t] of entries) {
      const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    }
  } finally {
    closeSync(fd);
  }
}
