// The spec language (lib/quant/spec.ts): parse → structure, canonical printing, round trips, rejections with the
// exact reason, and the mapping of every golden setting name.
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  activationExecution,
  canonicalSpec,
  formatSpec,
  goldenSettingToSpec,
  isUnsupportedGolden,
  parseSpec,
  SpecError,
} from "../lib/quant/spec.js";

describe("quantization spec", () => {
  it("parses the documented forms into structures", () => {
    expect(parseSpec("w4g128")).toEqual({
      base: "fp32",
      weights: { bits: 4, groupSize: 128, symmetric: false },
      activations: null,
      kv: null,
      smooth: null,
      method: { name: "rtn" },
    });
    expect(parseSpec("w4g128s").weights).toEqual({ bits: 4, groupSize: 128, symmetric: true });
    expect(parseSpec("w8").weights).toEqual({ bits: 8, groupSize: null, symmetric: false });
    expect(parseSpec("fp16")).toMatchObject({ base: "fp16", weights: null });
    expect(parseSpec("w4g32a8kv4")).toMatchObject({
      weights: { bits: 4, groupSize: 32 },
      activations: { bits: 8 },
      kv: { k: 4, v: 4 },
    });
    expect(parseSpec("k8v4").kv).toEqual({ k: 8, v: 4 });
    expect(parseSpec("w8a8+sq0.85")).toMatchObject({ smooth: { alpha: 0.85 }, method: { name: "rtn" } });
    expect(parseSpec("w3g128+gptq").method).toEqual({
      name: "gptq",
      actOrder: false,
      staticGroups: false,
      damp: 0.01,
      blockSize: 128,
    });
    expect(parseSpec("w4g128+gptq-act-static-damp0.1-block64").method).toEqual({
      name: "gptq",
      actOrder: true,
      staticGroups: true,
      damp: 0.1,
      blockSize: 64,
    });
    expect(parseSpec("w4+awq-grid10-noclip").method).toEqual({ name: "awq", grid: 10, clip: false });
  });

  const canon: [string, string][] = [
    ["fp32", "fp32"],
    ["FP16", "fp16"],
    ["bf16", "bf16"],
    ["w8", "w8"],
    ["w4g128", "w4g128"],
    ["w3g128", "w3g128"],
    ["w2g64", "w2g64"],
    ["w4g128s", "w4g128s"],
    ["w8a8", "w8a8"],
    ["w4a8", "w4a8"],
    ["w4a4", "w4a4"],
    ["kv8", "kv8"],
    ["kv4", "kv4"],
    ["k8v4", "k8v4"],
    ["kv3", "kv3"],
    ["kv2", "kv2"],
    ["k3v3", "kv3"],
    ["k8v2", "k8v2"],
    ["k3v2", "k3v2"],
    ["w4g32a8kv3", "w4g32a8kv3"],
    ["k16v3", "k16v3"],
    ["k8v8", "kv8"],
    ["w4g128kv8", "w4g128kv8"],
    ["w4g32a8kv4", "w4g32a8kv4"],
    ["w4g128+gptq", "w4g128+gptq"],
    ["w4g128+rtn", "w4g128"],
    ["w4+gptq-damp0.01-block128", "w4+gptq"],
    ["w4g128+awq", "w4g128+awq"],
    ["w8a8+sq0.85", "w8a8+sq0.85"],
    ["w8a8+sq", "w8a8+sq0.5"],
    ["w8a8+sq0.50", "w8a8+sq0.5"],
    ["w8a8+gptq+sq0.8", "w8a8+sq0.8+gptq"],
    ["fp16kv8", "fp16kv8"],
    [" w4g128 ", "w4g128"],
    ["W6", "w6"],
    ["w6g128", "w6g128"],
    ["w6g64sa8", "w6g64sa8"],
  ];
  it.each(canon)("prints %s canonically as %s, and the canonical form round-trips", (input, want) => {
    const parsed = parseSpec(input);
    expect(formatSpec(parsed)).toBe(want);
    expect(parseSpec(formatSpec(parsed))).toEqual(parsed);
    expect(canonicalSpec(want)).toBe(want);
  });

  const bad: [string, RegExp][] = [
    ["w5g128", /w5g128: weight bits must be 2, 3, 4, 6 or 8/],
    ["w7", /weight bits must be 2, 3, 4, 6 or 8 \(got 7\)/],
    ["w4g0", /w4g0: group size must be an integer in \[1, \d+\] \(got g0\)/],
    ["g0", /unexpected 'g0' at position 0/],
    ["w4g", /'w4g': group size after 'g' needs a number/],
    ["w", /'w': weight bits needs a number/],
    ["w4+sq0.5", /\+sq without a8/],
    ["w8a8+sq1.5", /SmoothQuant α must be in \[0, 1\] \(got 1.5\)/],
    ["w8a8+sqx", /SmoothQuant α must be a number/],
    ["w8a6", /activation bits must be 8 or 4 \(got 6\)/],
    ["a8", /a8 without weight quantization/],
    ["kv5", /KV cache bits must be 16, 8, 4, 3 or 2 \(got 5\)/],
    ["k8v1", /KV cache bits must be 16, 8, 4, 3 or 2 \(got 1\)/],
    ["k6v4", /KV cache bits must be 16, 8, 4, 3 or 2 \(got 6\)/],
    ["fp16w4", /'fp16' and 'w4' both set the weight precision/],
    ["kv8w4", /unexpected 'w4' at position 3/],
    ["w4+foo", /unknown method '\+foo'/],
    ["w4+gptq+awq", /two weight methods '\+gptq' and '\+awq'/],
    ["w4+gptq-fast", /unknown GPTQ option '-fast'/],
    ["w4g128+gptq-act", /\+gptq-act with groups needs -static/],
    ["fp32+gptq", /\+gptq needs weight quantization/],
    ["w8a8+sq0.5+awq", /\+sq and \+awq both rescale/],
    ["w4+", /empty method after '\+'/],
    ["", /empty spec/],
  ];
  it.each(bad)("rejects %s saying what is wrong", (input, msg) => {
    let err: unknown;
    try {
      parseSpec(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message).toContain(`'${input}'`);
  });

  it("says where activations run on real kernels and where they are simulated", () => {
    expect(activationExecution(parseSpec("w8a8"))).toBe("kernel");
    expect(activationExecution(parseSpec("w4a8"))).toBe("kernel");
    expect(activationExecution(parseSpec("w4a4"))).toBe("simulated");
    for (const grouped of ["w4g32a8", "w4g128a8", "w3g128a8", "w2g64a8", "w8g64a8", "w4g128sa8"])
      expect(activationExecution(parseSpec(grouped))).toBe("kernel");
    expect(activationExecution(parseSpec("w8a4"))).toBe("simulated");
    expect(activationExecution(parseSpec("w4"))).toBe("none");
  });

  it("maps every golden setting name to a spec or to a stated reason", () => {
    const file = path.join(process.env.QUANTEVAL_SHARED ?? path.resolve(import.meta.dirname, "../../shared"), "golden/stories260K.ppl.json");
    const names = existsSync(file)
      ? Object.keys(JSON.parse(readFileSync(file, "utf8")).results as object)
      : ["fp32", "w4_g32", "w4_sym", "w8a8", "kv4", "w4_g32_kv4", "w6", "kv3"];
    const want: Record<string, string> = {
      fp32: "fp32", w8: "w8", w4: "w4", w4_sym: "w4s", w3: "w3", w2: "w2", w4_g32: "w4g32", w3_g32: "w3g32",
      w2_g16: "w2g16", w8a8: "w8a8", w4a8: "w4a8", w4a4: "w4a4", w8a4: "w8a4", kv8: "kv8", kv4: "kv4",
      w4_g32_kv4: "w4g32kv4", w6: "w6", kv3: "kv3", kv2: "kv2",
    };
    for (const n of names) {
      const r = goldenSettingToSpec(n);
      if (isUnsupportedGolden(r)) {
        throw new Error(`golden setting ${n} reported unsupported: ${r.reason}`);
      } else expect(formatSpec(r)).toBe(want[n]);
    }
    expect(() => goldenSettingToSpec("w4_x9")).toThrow(/unknown part 'x9'/);
    const w5 = goldenSettingToSpec("w5_g32");
    expect(isUnsupportedGolden(w5) && w5.reason).toMatch(/5-bit weights have no packed format/);
    const kv1 = goldenSettingToSpec("kv1");
    expect(isUnsupportedGolden(kv1) && kv1.reason).toMatch(/1-bit KV cache has no format/);
  });
});
