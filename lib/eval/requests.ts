/**
 * Turning text into log-likelihood requests the way lm-evaluation-harness does, so scores are comparable.
 *
 * `encodePair` is lm-eval's `_encode_pair`: trailing whitespace of the context moves to the continuation, the
 * continuation's tokens are those of encode(context + continuation) past the tokens of encode(context) (so a
 * merge across the boundary is attributed to the continuation as lm-eval does). BOS is put in front of the
 * context when the tokenizer has one (Llama-family convention; `bos: false` turns it off). Requests longer than
 * the model's context keep the continuation and drop the oldest context tokens, as lm-eval's left truncation.
 */
import type { EvalModel, LoglikelihoodRequest } from "./model.js";

/** The part of a model the data preparation needs: tasks are tokenized once and shared by every setting. */
export type Tokenizer = Pick<EvalModel, "name" | "encode" | "decode" | "bosId" | "eosIds" | "maxContext" | "vocabSize" | "applyChatTemplate">;

export interface EncodeOptions {
  /** Prepend the model's BOS to every context (default true when the tokenizer has one). */
  bos?: boolean;
  /** Always encode context + continuation in full (no verified tail shortcut, see continuationIds). */
  exact?: boolean;
}

const startsWith = (a: readonly number[], b: readonly number[]) => b.length <= a.length && b.every((x, i) => a[i] === x);
const endsWith = (a: readonly number[], b: readonly number[]) => b.length <= a.length && b.every((x, i) => a[a.length - b.length + i] === x);

/** Shortest context tail (characters) the shortcut re-encodes. */
const TAIL_CHARS = 48;

/**
 * lm-eval's continuation tokens, encode(context + continuation)[len(encode(context)):], without encoding the whole
 * (long few-shot) context again for every choice: a tail of the context starting at a word (with or without the
 * space before it) is accepted only when its encoding is exactly the end of the context's encoding and the joint
 * encoding of tail + continuation starts with it — i.e. the split is a token boundary both ways. Anything else
 * (a merge across the boundary, a tokenizer without local boundaries) falls back to the full encoding.
 */
export function continuationIds(tok: Tokenizer, context: string, ctxIds: readonly number[], continuation: string, exact = false): number[] {
  const full = () => tok.encode(context + continuation, { bos: false }).slice(ctxIds.length);
  if (exact || context.length < 2 * TAIL_CHARS) return full();
  const space = context.lastIndexOf(" ", context.length - TAIL_CHARS);
  if (space <= 0) return full();
  for (const start of [space + 1, space]) {
    const tail = context.slice(start);
    const tailIds = tok.encode(tail, { bos: false });
    if (tailIds.length === 0 || tailIds.length >= ctxIds.length || !endsWith(ctxIds, tailIds)) continue;
    const joint = tok.encode(tail + continuation, { bos: false });
    if (startsWith(joint, tailIds)) return joint.slice(tailIds.length);
    break; // the continuation merges into the context: lm-eval's split needs the full encoding
  }
  return full();
}

export function encodePair(
  tok: Tokenizer,
  context: string,
  continuation: string,
  opts: EncodeOptions = {},
): LoglikelihoodRequest {
  const trimmed = context.replace(/\s+$/u, "");
  const nSpaces = context.length - trimmed.length;
  if (nSpaces > 0) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  const ctx = context === "" ? [] : tok.encode(context, { bos: false });
  let cont = continuationIds(tok, context, ctx, continuation, opts.exact);
  // A tokenizer whose encoding of the context is not a prefix of the joint encoding (rare merges) would make the
  // split above wrong; lm-eval accepts that, we keep at least one continuation token.
  if (cont.length === 0) cont = tok.encode(continuation, { bos: false });
  const useBos = (opts.bos ?? true) && tok.bosId !== undefined;
  let context_ = useBos ? [tok.bosId as number, ...ctx] : ctx;
  if (context_.length === 0) {
    // lm-eval scores an empty context from the prefix token (BOS, else EOS).
    const prefix = tok.bosId ?? tok.eosIds[0];
    if (prefix === undefined) throw new Error(`model ${tok.name}: empty context and no BOS/EOS token to start from`);
    context_ = [prefix];
  }
  return truncateRequest({ context: context_, continuation: cont }, tok.maxContext);
}

/** Keep the whole continuation and the newest context tokens so that context + continuation ≤ maxContext. */
export function truncateRequest(r: LoglikelihoodRequest, maxContext: number): LoglikelihoodRequest {
  const total = r.context.length + r.continuation.length;
  if (total <= maxContext) return r;
  if (r.continuation.length >= maxContext) {
    throw new Error(`continuation of ${r.continuation.length} tokens does not fit the model context of ${maxContext}`);
  }
  return { context: r.context.slice(total - maxContext), continuation: r.continuation };
}

/** Number of tokens a request runs through the model. */
export function requestLength(r: LoglikelihoodRequest): number {
  return r.context.length + r.continuation.length;
}
