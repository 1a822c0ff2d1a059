// Tokenizers against shared/golden/tokenizers.json (made with the reference tokenizers/sentencepiece): exact ids,
// counts and sha256 over the int64 little-endian ids.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Tokenizer } from "../lib/model/tokenizer.js";
import { sharedPath } from "../lib/model/shared.js";

const golden = JSON.parse(readFileSync(sharedPath("golden", "tokenizers.json"), "utf8"));

function sha256Int64(ids: number[]): string {
  const b = new BigInt64Array(ids.length);
  for (let i = 0; i < ids.length; i++) b[i] = BigInt(ids[i]);
  return createHash("sha256").update(new Uint8Array(b.buffer)).digest("hex");
}

describe("stories260K tokenizer", () => {
  const tok = Tokenizer.fromDir(sharedPath("data", "models", "stories260K"));
  it("encodes 'Once upon a time' with BOS", () => {
    expect(tok.encode("Once upon a time")).toEqual(golden.stories260K["Once upon a time"]);
    expect(tok.encode("Once upon a time", { bos: false })).toEqual(golden.stories260K["Once upon a time"].slice(1));
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toContain(2);
  });
  it("encodes the whole TinyStories subset to the golden ids", () => {
    const g = golden.stories260K.tinystories_val_subset;
    const text = readFileSync(sharedPath("data", "datasets", "tinystories_val_subset", "tinystories_val_subset.txt"), "utf8");
    const ids = tok.encode(text);
    expect(ids.length).toBe(g.count);
    expect(ids.slice(0, 64)).toEqual(g.first64);
    expect(sha256Int64(ids)).toBe(g.sha256_int64);
  });
  it("decodes back to the text", () => {
    expect(tok.decode(tok.encode("Once upon a time, Lily"))).toBe("Once upon a time, Lily");
  });
});

describe("llama2 tokenizer", () => {
  const tok = Tokenizer.fromDir(sharedPath("data", "tokenizers", "llama2"));
  it("encodes the golden samples", () => {
    for (const [text, ids] of Object.entries(golden.llama2.samples)) expect(tok.encode(text)).toEqual(ids);
  });
  it("encodes WikiText-2 test joined the GPTQ way to 341,469 ids with the golden sha256", () => {
    // rows as the HF split has them: a non-empty line keeps its newline, a blank line (' ') is ''.
    const raw = readFileSync(sharedPath("data", "datasets", "wikitext2_raw", "wiki.test.raw"), "utf8");
    const lines = raw.split("\n");
    if (lines.at(-1) === "") lines.pop();
    expect(lines.length).toBe(4358);
    const rows = lines.map((l) => (l.trim() === "" ? "" : l + "\n"));
    const ids = tok.encode(rows.join("\n\n"));
    const g = golden.llama2.wikitext2_test_gptq_join;
    expect(ids.length).toBe(g.count);
    expect(ids.slice(0, 64)).toEqual(g.first64);
    expect(sha256Int64(ids)).toBe(g.sha256_int64);
  });
});

describe("chat template", () => {
  it("renders tokenizer_config's chat_template with @huggingface/jinja and encodes it without extra BOS", () => {
    const dir = sharedPath("data", "models", "stories260K");
    const tj = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
    const tc = {
      ...JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, "utf8")),
      chat_template: "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
    };
    const tok = new Tokenizer(tj, tc);
    const ids = tok.applyChatTemplate([{ role: "user", content: "Once upon a time" }]);
    expect(ids[0]).toBe(1);
    expect(ids.filter((x) => x === 1).length).toBe(1);
    expect(tok.decode(ids)).toBe("user: Once upon a time\nassistant:");
    expect(() => Tokenizer.fromDir(dir).applyChatTemplate([])).toThrow(/no chat_template/);
  });
});
