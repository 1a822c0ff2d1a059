// The loader: variants, fallback reasons, and the environment override.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadNative, nativeInfo } from "../lib/native.js";

const root = path.resolve(import.meta.dirname, "..");

function loaderInChild(env: Record<string, string>, backend?: string): { info?: unknown; error?: string } {
  const script = `
    import { loadNative } from ${JSON.stringify(path.join(root, "lib", "native.ts"))};
    try { console.log(JSON.stringify({ info: loadNative(${backend ? JSON.stringify(backend) : "undefined"}).info })); }
    catch (e) { console.log(JSON.stringify({ error: e.name + ": " + e.message })); }`;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    env: { ...process.env, ...env },
    cwd: root,
  });
  return JSON.parse(out.toString().trim().split("\n").pop()!);
}

describe("native loader", () => {
  it("loads the CPU addon and reports its features", () => {
    const { addon, info } = loadNative();
    expect(["cpu", "cuda"]).toContain(info.variant);
    expect(addon.napiVersion).toBe(8);
    const cpu = addon.cpuInfo();
    expect(["scalar", "avx2", "avx512"]).toContain(cpu.isa);
    expect(cpu.threads).toBeGreaterThanOrEqual(1);
    if (info.variant === "cpu" && info.requested === "auto") expect(info.fallbackReason).toMatch(/CUDA/);
    expect(nativeInfo()).toBe(info);
  });

  it("QUANTEVAL_VNNI picks gemmW8A8's int8 dot product (cpuInfo().a8Dot)", () => {
    const dotInChild = (env: Record<string, string>) => {
      const script = `
        import { loadNative } from ${JSON.stringify(path.join(root, "lib", "native.ts"))};
        console.log(loadNative().addon.cpuInfo().a8Dot);`;
      return execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        env: { ...process.env, QUANTEVAL_BACKEND: "cpu", ...env },
        cwd: root,
      }).toString().trim().split("\n").pop();
    };
    const { addon } = loadNative();
    const avx2 = addon.cpuInfo().isa !== "scalar";
    expect(dotInChild({ QUANTEVAL_VNNI: "emulate" })).toBe(avx2 ? "vnni-emulated" : "scalar");
    expect(dotInChild({ QUANTEVAL_VNNI: "off" })).toBe(avx2 ? "avx2" : "scalar");
    expect(["avx2", "avx-vnni", "avx512-vnni"]).toContain(dotInChild({ QUANTEVAL_VNNI: "auto" }));
    // Capped at scalar, gemmW8A8 runs its reference whatever the dot mode, and says so.
    expect(dotInChild({ QUANTEVAL_ISA: "scalar", QUANTEVAL_VNNI: "emulate" })).toBe("scalar");
  });

  it("QUANTEVAL_AVX512 runs the AVX-512 kernels emulated; gemmQ gives the same results (cpuInfo().zmm)", () => {
    // In a child: the zmm kernels' name, and a 4-bit g128 GEMV (M = 2) and a dense GEMM (M = 9) run through them.
    const script = `
      import { loadNative } from ${JSON.stringify(path.join(root, "lib", "native.ts"))};
      import { quantizeRtn, gemmQ, gemm } from ${JSON.stringify(path.join(root, "lib", "kernels.ts"))};
      const a = loadNative().addon;
      let s = 7;
      const rnd = (n) => Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
      const N = 40, K = 300;
      const w = rnd(N * K), x2 = rnd(2 * K), x9 = rnd(9 * K);
      const q = await quantizeRtn(w, N, K, { bits: 4, groupSize: 128, symmetric: false, scaleDtype: "f16" });
      const y = await gemmQ(x2, "f32", 2, q);
      const d = await gemm(x9, "f32", 9, { N, K, dtype: "f32", data: w });
      console.log(JSON.stringify({ zmm: a.cpuInfo().zmm, y: Array.from(y), d: Array.from(d) }));`;
    const run = (env: Record<string, string>) =>
      JSON.parse(
        execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
          env: { ...process.env, QUANTEVAL_BACKEND: "cpu", ...env },
          cwd: root,
        })
          .toString()
          .trim()
          .split("\n")
          .pop()!,
      ) as { zmm: string; y: number[]; d: number[] };
    const { addon } = loadNative();
    const avx2 = addon.cpuInfo().isa !== "scalar";
    const emu = run({ QUANTEVAL_AVX512: "emulate" });
    const plain = run({ QUANTEVAL_AVX512: "auto", QUANTEVAL_ISA: "avx2" });
    expect(emu.zmm).toBe(avx2 ? "avx512-emulated" : "none");
    expect(plain.zmm).toBe("none");
    expect(["none", "avx512"]).toContain(addon.cpuInfo().zmm);
    // Different summation orders (16 lanes against 8), the same products: equal to fp32 rounding, and not bit for
    // bit (these fixed inputs differ in some outputs: the emulated kernels did run).
    if (avx2) {
      expect(emu.y).not.toEqual(plain.y);
      expect(emu.d).not.toEqual(plain.d);
    }
    for (const [a, b] of [
      [emu.y, plain.y],
      [emu.d, plain.d],
    ]) {
      expect(a.length).toBe(b.length);
      let num = 0, den = 0;
      for (let i = 0; i < a.length; i++) {
        num += (a[i] - b[i]) ** 2;
        den += b[i] ** 2;
      }
      expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
    }
  });

  it("falls back from auto with the reason when the CUDA addon is missing", () => {
    const r = loaderInChild({ QUANTEVAL_CUDA_ADDON: "/nonexistent/quanteval.node", QUANTEVAL_BACKEND: "auto" });
    expect(r.info).toMatchObject({ variant: "cpu", requested: "auto" });
    expect((r.info as { fallbackReason: string }).fallbackReason).toMatch(/no CUDA build .*nonexistent/);
  });

  it("refuses cuda when asked explicitly and it cannot load, naming why", () => {
    const r = loaderInChild({ QUANTEVAL_CUDA_ADDON: "/nonexistent/quanteval.node" }, "cuda");
    expect(r.error).toMatch(/NativeLoadError: .*backend 'cuda' requested but no CUDA build/);
  });

  it("reports a load failure with the loader's message", () => {
    const bogus = path.join(mkdtempSync(path.join(tmpdir(), "qe-")), "quanteval.node");
    writeFileSync(bogus, "not a shared object");
    const r = loaderInChild({ QUANTEVAL_CUDA_ADDON: bogus, QUANTEVAL_BACKEND: "auto" });
    expect((r.info as { fallbackReason: string }).fallbackReason).toMatch(/failed to load/);
  });

  it("rejects an unknown backend in the environment", () => {
    const r = loaderInChild({ QUANTEVAL_BACKEND: "tpu" });
    expect(r.error).toMatch(/QUANTEVAL_BACKEND: expected 'cpu', 'cuda' or 'auto', got 'tpu'/);
  });

  it("respects QUANTEVAL_BACKEND=cpu", () => {
    const r = loaderInChild({ QUANTEVAL_BACKEND: "cpu" });
    expect(r.info).toMatchObject({ variant: "cpu", requested: "cpu" });
  });
});
