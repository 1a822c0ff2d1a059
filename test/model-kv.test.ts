// KV-cache settings (lib/model/kv.ts): parsing the CLI form, canonical names, session options, bytes per token,
// and kvTypeFor(spec) for kv<B> and k<B>v<B'> specs.
import { describe, expect, it } from "vitest";
import { kvBytesPerToken, kvSettingName, normalizeKv, parseKvSetting, sessionKvOptions } from "../lib/model/kv.js";
import { kvTypeFor } from "../lib/quant/quantize.js";
import { parseSpec } from "../lib/quant/spec.js";

describe("KV settings", () => {
  it("parses one type or k:<type>/v:<type>, equal pairs collapse to one type", () => {
    expect(parseKvSetting("int4")).toBe("int4");
    expect(parseKvSetting("k:int8/v:int4")).toEqual({ k: "int8", v: "int4" });
    expect(parseKvSetting("k:f16/v:f16")).toBe("f16");
    expect(parseKvSetting("int3")).toBe("int3");
    expect(parseKvSetting("k:int8/v:int2")).toEqual({ k: "int8", v: "int2" });
    expect(() => parseKvSetting("int5", "--kv")).toThrow(/--kv: expected one of f32, f16, int8, int4, int3, int2 or k:<type>\/v:<type>, got 'int5'/);
    expect(() => parseKvSetting("k:int8/v:i4", "--kv")).toThrow(/got 'k:int8\/v:i4'/);
  });
  it("names, normal form and native session options", () => {
    expect(kvSettingName({ k: "int8", v: "int4" })).toBe("k:int8/v:int4");
    expect(kvSettingName({ k: "int8", v: "int8" })).toBe("int8");
    expect(normalizeKv({ k: "f32", v: "f32" })).toBe("f32");
    expect(sessionKvOptions("int4")).toEqual({ kvType: "int4" });
    expect(sessionKvOptions({ k: "f16", v: "int4" })).toEqual({ kType: "f16", vType: "int4" });
  });
  it("bytes per token: each side's values plus its scale and zero when quantized", () => {
    // 2 layers x 3 kv heads, head_dim 16: K f16 = 32 bytes, V int4 = 8 bytes + 8 of scale/zero.
    expect(kvBytesPerToken(2, 3, 16, { k: "f16", v: "int4" })).toBe(2 * 3 * (32 + 16));
    expect(kvBytesPerToken(2, 3, 16, "int8")).toBe(2 * 3 * 2 * (16 + 8));
    expect(kvBytesPerToken(2, 3, 16, "f32")).toBe(2 * 3 * 2 * 64);
    // int3: 2-bit plane ceil(D/4) + 1-bit plane ceil(D/8) bytes; int2: ceil(D/4) bytes (formats.h).
    expect(kvBytesPerToken(2, 3, 16, "int3")).toBe(2 * 3 * 2 * (4 + 2 + 8));
    expect(kvBytesPerToken(1, 1, 128, { k: "int3", v: "int2" })).toBe(48 + 8 + 32 + 8);
    expect(kvBytesPerToken(1, 1, 7, "int3")).toBe(2 * (2 + 1 + 8));
  });
  it("kvTypeFor: kv<B> → one type, k<B>v<B'> → both", () => {
    expect(kvTypeFor(parseSpec("w4g128"))).toBe("f32");
    expect(kvTypeFor(parseSpec("kv8"))).toBe("int8");
    expect(kvTypeFor(parseSpec("k8v8"))).toBe("int8");
    expect(kvTypeFor(parseSpec("w4g32k8v4"))).toEqual({ k: "int8", v: "int4" });
    expect(kvTypeFor(parseSpec("k16v4"))).toEqual({ k: "f16", v: "int4" });
    expect(kvTypeFor(parseSpec("k4v8"))).toEqual({ k: "int4", v: "int8" });
    expect(kvTypeFor(parseSpec("kv3"))).toBe("int3");
    expect(kvTypeFor(parseSpec("kv2"))).toBe("int2");
    expect(kvTypeFor(parseSpec("k8v2"))).toEqual({ k: "int8", v: "int2" });
    expect(kvTypeFor(parseSpec("w4g32k3v2"))).toEqual({ k: "int3", v: "int2" });
  });
});
