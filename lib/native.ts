/**
 * The native loader: picks the CPU or CUDA addon and says why.
 *
 * - `cpu`: the addon built by `npm install` (node-gyp) or shipped as a prebuild (prebuildify); node-gyp-build
 *   prefers a prebuild in `prebuilds/` and falls back to `build/Release`.
 * - `cuda`: the addon built by `npm run build:cuda` (cmake-js) into `build-cuda/Release`. Asking for it where it
 *   cannot be used throws {@link NativeLoadError} with the reason.
 * - `auto` (default): CUDA when that addon exists, loads and sees a device; otherwise CPU, with the reason kept in
 *   {@link NativeInfo.fallbackReason}.
 *
 * The choice comes from the `backend` argument, else the `QUANTEVAL_BACKEND` environment variable, else `auto`.
 * `QUANTEVAL_CUDA_ADDON` overrides the CUDA addon's path.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

export type Backend = "cpu" | "cuda" | "auto";

/** The raw addon: functions registered by native/napi. Typed loosely here; wrapped by the public modules. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Addon = Record<string, any> & {
  variant: "cpu" | "cuda";
  napiVersion: number;
  /** a8Dot: the int8 dot product of gemmW8A8's kernels ("avx2", "avx-vnni", "avx512-vnni", "vnni-emulated",
   *  or "scalar" when the ISA is capped at scalar and the reference runs).
   *  zmm: the AVX-512 kernels of the fp32 GEMM tiles and the 4-/8-bit GEMV: "avx512" (the avx512 level), "none",
   *  or "avx512-emulated" (QUANTEVAL_AVX512=emulate: the same kernels with their zmm primitives emulated, for tests).
   *  gemv: the exact 4-/2-bit GEMV at M = 1 on the AVX2 level: "int" (codes times X held as per-group integers,
   *  vpmaddwd) or "fp32" (codes converted for FMAs; QUANTEVAL_GEMV=fp32). */
  cpuInfo(): { isa: string; threads: number; features: Record<string, boolean>; a8Dot: string; zmm: string; gemv: string };
  cudaInfo(): {
    compiled: boolean;
    devices: { name: string; computeCapability: string; memoryBytes: number; multiprocessors: number }[];
    driverVersion?: number;
    runtimeVersion?: number;
    error?: string;
  };
  setNumThreads(n: number): number;
  setIsa(isa: "scalar" | "avx2" | "avx512" | "auto"): string;
  /** VNNI for gemmW8A8 where the CPU has it ("auto"), never ("off"), or emulated in AVX2 ("emulate", for tests). */
  setA8Dot(mode: "auto" | "off" | "emulate"): string;
  /** The exact 4-/2-bit GEMV's kernel at M = 1: "int" (the default; "auto" is the same) or "fp32". Returns the one in use. */
  setGemv(kernel: "int" | "fp32" | "auto"): string;
};

export interface NativeInfo {
  /** What was asked for. */
  requested: Backend;
  /** What is loaded. */
  variant: "cpu" | "cuda";
  /** Path of the loaded addon file (or the package root for node-gyp-build). */
  path: string;
  /** Why `auto` (or the environment) did not give CUDA; undefined when nothing fell back. */
  fallbackReason?: string;
}

/** Thrown when the requested addon cannot be loaded; `reason` is the loader's own message. */
export class NativeLoadError extends Error {
  constructor(message: string, readonly reason: string) {
    super(message);
    this.name = "NativeLoadError";
  }
}

/** The package root (where binding.gyp is), from dist/lib or lib. */
export const packageRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(path.join(dir, "binding.gyp"))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error("quanteval: cannot find the package root (binding.gyp) above " + fileURLToPath(import.meta.url));
})();

export function cudaAddonPath(): string {
  return process.env.QUANTEVAL_CUDA_ADDON ?? path.join(packageRoot, "build-cuda", "Release", "quanteval.node");
}

function loadCpu(): { addon: Addon; path: string } {
  try {
    const nodeGypBuild = require("node-gyp-build") as { (dir: string): Addon; resolve(dir: string): string };
    const file = nodeGypBuild.resolve(packageRoot);
    return { addon: require(file) as Addon, path: file };
  } catch (e) {
    throw new NativeLoadError(
      "quanteval: the CPU addon is not built or failed to load. Run `npm install` (builds it with node-gyp; needs " +
        "python3, make and a C++17 compiler) or `npm run build:native`. Loader said: " + (e as Error).message,
      (e as Error).message,
    );
  }
}

function tryCuda(): { addon?: Addon; path: string; reason?: string } {
  const file = cudaAddonPath();
  if (!existsSync(file)) return { path: file, reason: `no CUDA build (${file} not found; run \`npm run build:cuda\`)` };
  let addon: Addon;
  try {
    addon = require(file) as Addon;
  } catch (e) {
    return { path: file, reason: `the CUDA addon failed to load: ${(e as Error).message}` };
  }
  const info = addon.cudaInfo();
  if (!info.devices.length)
    return { path: file, reason: `no usable CUDA device${info.error ? ` (${info.error})` : ""}` };
  return { addon, path: file };
}

let loaded: { addon: Addon; info: NativeInfo } | undefined;

function parseBackend(v: string, where: string): Backend {
  if (v === "cpu" || v === "cuda" || v === "auto") return v;
  throw new RangeError(`${where}: expected 'cpu', 'cuda' or 'auto', got '${v}'`);
}

/**
 * Loads the addon once per process. A later call asking for a different backend than the one loaded throws: both
 * addons in one process would hold two copies of the kernels and thread pool.
 */
export function loadNative(backend?: Backend): { addon: Addon; info: NativeInfo } {
  const requested: Backend =
    backend !== undefined
      ? parseBackend(backend, "backend")
      : process.env.QUANTEVAL_BACKEND
        ? parseBackend(process.env.QUANTEVAL_BACKEND, "QUANTEVAL_BACKEND")
        : "auto";
  if (loaded) {
    if (requested !== "auto" && requested !== loaded.info.variant)
      throw new NativeLoadError(
        `quanteval: the ${loaded.info.variant} addon is already loaded in this process; cannot switch to ${requested}`,
        "already loaded",
      );
    return loaded;
  }
  if (requested === "cuda") {
    const c = tryCuda();
    if (!c.addon) throw new NativeLoadError(`quanteval: backend 'cuda' requested but ${c.reason}`, c.reason!);
    loaded = { addon: c.addon, info: { requested, variant: "cuda", path: c.path } };
  } else if (requested === "auto") {
    const c = tryCuda();
    if (c.addon) loaded = { addon: c.addon, info: { requested, variant: "cuda", path: c.path } };
    else {
      const cpu = loadCpu();
      loaded = { addon: cpu.addon, info: { requested, variant: "cpu", path: cpu.path, fallbackReason: c.reason } };
    }
  } else {
    const cpu = loadCpu();
    loaded = { addon: cpu.addon, info: { requested, variant: "cpu", path: cpu.path } };
  }
  return loaded;
}

/** The loaded addon (loading it with the default choice if needed). */
export function native(): Addon {
  return loadNative().addon;
}

/** Which variant is loaded and why. */
export function nativeInfo(): NativeInfo {
  return loadNative().info;
}
