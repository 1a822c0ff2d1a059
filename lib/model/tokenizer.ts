/**
 * Tokenizer of a Hugging Face model directory: `tokenizer.json` run by @huggingface/tokenizers (a JS port of the
 * Rust `tokenizers` library; the project's goldens in shared/golden/tokenizers.json hold it to the reference ids),
 * special tokens from `tokenizer_config.json` / `generation_config.json` / `config.json`, and the chat template
 * rendered with @huggingface/jinja.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Json;
  } catch (e) {
    throw new TokenizerError(`${file}: ${(e as Error).message}`);
  }
}

function tokenContent(t: unknown): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as Json).content === "string") return (t as Json).content as string;
  return undefined;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export class Tokenizer {
  private readonly tok: HFTokenizer;
  readonly bosId?: number;
  readonly eosIds: number[];
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly chatTemplate?: string;
  private template?: Template;

  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}, extra: { eosIds?: number[]; bosId?: number } = {}) {
    this.tok = new HFTokenizer(tokenizerJson, tokenizerConfig);
    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.eosToken = tokenContent(tokenizerConfig.eos_token);
    const id = (t?: string) => (t === undefined ? undefined : this.tok.token_to_id(t));
    this.bosId = extra.bosId ?? id(this.bosToken);
    const eos = new Set<number>(extra.eosIds ?? []);
    const e = id(this.eosToken);
    if (e !== undefined) eos.add(e);
    this.eosIds = [...eos];
    const ct = tokenizerConfig.chat_template;
    if (typeof ct === "string") this.chatTemplate = ct;
    else if (Array.isArray(ct)) {
      const d = ct.find((x: Json) => x && x.name === "default") as Json | undefined;
      if (d && typeof d.template === "string") this.chatTemplate = d.template;
    }
  }

  /** Reads tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json when present) from dir. */
  static fromDir(dir: string): Tokenizer {
    const tj = path.join(dir, "tokenizer.json");
    if (!existsSync(tj)) throw new TokenizerError(`${dir}: no tokenizer.json`);
    const opt = (f: string) => (existsSync(path.join(dir, f)) ? readJson(path.join(dir, f)) : {});
    const tc = opt("tokenizer_config.json"), gc = opt("generation_config.json"), mc = opt("config.json");
    const eos: number[] = [];
    for (const src of [gc.eos_token_id, mc.eos_token_id])
      for (const v of Array.isArray(src) ? src : src == null ? [] : [src]) if (Number.isInteger(v)) eos.push(v as number);
    const bos = [gc.bos_token_id, mc.bos_token_id].find((v) => Number.isInteger(v)) as number | undefined;
    return new Tokenizer(readJson(tj), tc, { eosIds: eos, bosId: bos });
  }

  /**
   * Token ids of `text`. Default: the tokenizer's own post-processor decides (adds BOS for Llama tokenizers).
   * `bos: false` adds no special tokens; `bos: true` makes sure BOS comes first even where the post-processor adds
   * none.
   */
  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: opts.bos !== false }).ids;
    if (opts.bos === true && this.bosId !== undefined && ids[0] !== this.bosId) ids.unshift(this.bosId);
    return ids;
  }

  /** Text of `ids`, special tokens skipped. */
  decode(ids: readonly number[]): string {
    return this.tok.decode([...ids], { skip_special_tokens: true });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Renders the chat template (add_generation_prompt) and encodes it without adding special tokens again. */
  applyChatTemplate(messages: ChatMessage[]): number[] {
    if (!this.chatTemplate) throw new TokenizerError("this tokenizer has no chat_template");
    this.template ??= new Template(this.chatTemplate);
    const text = this.template.render({
      messages,
      bos_token: this.bosToken ?? "",
      eos_token: this.eosToken ?? "",
      add_generation_prompt: true,
    });
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }
}
