// Calibration windows: seeded and reproducible (same seed → same windows and sha256), slices of the token stream,
// default source disjoint from the evaluated texts, clear errors for bad options and missing files.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { calibrationText, CalibrationError, hashWindows, sampleCalibration } from "../lib/quant/calibration.js";

// A byte-level stand-in tokenizer (the model tokenizers are tested with the runtime).
const bytes = (t: string) => Array.from(Buffer.from(t, "utf8"));

describe("calibration data", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "qe-calib-"));
  const file = path.join(dir, "text.txt");
  writeFileSync(file, Array.from({ length: 400 }, (_, i) => `line ${i} of some calibration text.`).join("\n"));

  it("draws the same windows and hash for the same seed, different ones for another seed", () => {
    const a = sampleCalibration(bytes, { source: { file }, nsamples: 16, seqlen: 64, seed: 3 });
    const b = sampleCalibration(bytes, { source: { file }, nsamples: 16, seqlen: 64, seed: 3 });
    const c = sampleCalibration(bytes, { source: { file }, nsamples: 16, seqlen: 64, seed: 4 });
    expect(a.record.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.record).toEqual(a.record);
    expect(b.windows).toEqual(a.windows);
    expect(c.record.sha256).not.toBe(a.record.sha256);
    expect(c.record.starts).not.toEqual(a.record.starts);
    const stream = Int32Array.from(bytes(calibrationText({ file }).text));
    a.windows.forEach((w, i) => {
      expect(w.length).toBe(64);
      expect(Array.from(w)).toEqual(Array.from(stream.subarray(a.record.starts[i], a.record.starts[i] + 64)));
      expect(a.record.starts[i]).toBeLessThan(stream.length - 64);
    });
    expect(hashWindows(a.windows)).toBe(a.record.sha256);
    const tampered = a.windows.map((w) => w.slice());
    tampered[5][10] ^= 1;
    expect(hashWindows(tampered)).not.toBe(a.record.sha256);
  });

  it("defaults to WikiText-2 validation, which is not an evaluated text", () => {
    const s = sampleCalibration(bytes, { nsamples: 4, seqlen: 128 });
    expect(s.record.source).toBe("wikitext2-valid");
    expect(s.record.seed).toBe(0);
    const evalTexts = [calibrationText("tinystories").text, calibrationText("wikitext2-test").text];
    for (const w of s.windows) {
      const t = Buffer.from(Uint8Array.from(w)).toString("latin1");
      for (const e of evalTexts) expect(Buffer.from(e, "utf8").toString("latin1").includes(t)).toBe(false);
    }
  });

  it("joins WikiText-2 test the GPTQ way", () => {
    const t = calibrationText("wikitext2-test").text;
    expect(t.length).toBe(1294336); // PROVENANCE.txt: '\n\n'.join(rows) is 1,294,336 characters
  });

  it("rejects bad options and missing files clearly", () => {
    expect(() => sampleCalibration(bytes, { source: { file }, nsamples: 0 })).toThrow(/nsamples: expected an integer >= 1, got 0/);
    expect(() => sampleCalibration(bytes, { source: { file }, seqlen: 1 })).toThrow(/seqlen: expected an integer >= 2/);
    expect(() => sampleCalibration(bytes, { source: { file: path.join(dir, "nope.txt") } })).toThrow(CalibrationError);
    expect(() => sampleCalibration(bytes, { source: { file: path.join(dir, "nope.txt") } })).toThrow(/file not found: .*nope.txt/);
    expect(() => sampleCalibration(bytes, { source: "c4" as never })).toThrow(/expected one of wikitext2-valid, wikitext2-test, tinystories/);
    expect(() => sampleCalibration(bytes, { source: { file }, seqlen: 100000 })).toThrow(/need more than seqlen = 100000/);
  });
});
