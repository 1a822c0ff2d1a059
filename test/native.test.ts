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
