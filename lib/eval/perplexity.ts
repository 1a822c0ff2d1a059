/**
 * Perplexity protocols over one token stream.
 *
 * - Non-overlapping windows (GPTQ/AWQ convention, the definition in golden/stories260K.ppl.json `semantics`): the
 *   whole file is encoded once with one BOS first, cut into windows of L tokens (the remainder is dropped), each
 *   window evaluated independently from position 0, ppl = exp(Σ NLL of tokens 1..L-1 of every window / count).
 * - Strided sliding windows (transformers "perplexity of fixed-length models"): windows of at most `maxLength`
 *   tokens starting every `stride` tokens; in each window only the tokens not scored by an earlier window count
 *   (position 0 of a window is never scored: nothing predicts it).
 */
import { readText } from "./data.js";

export interface PplWindow {
  /** Offset of the window's first token in the stream. */
  start: number;
  tokens: Int32Array;
  /** First scored position inside the window (≥ 1); positions scoreFrom..L-1 count. */
  scoreFrom: number;
}

export function nonOverlappingWindows(stream: Int32Array, L: number): PplWindow[] {
  if (!Number.isInteger(L) || L < 2) throw new RangeError(`seqLen: expected an integer ≥ 2, got ${L}`);
  const out: PplWindow[] = [];
  for (let s = 0; s + L <= stream.length; s += L) out.push({ start: s, tokens: stream.subarray(s, s + L), scoreFrom: 1 });
  return out;
}

export function slidingWindows(stream: Int32Array, maxLength: number, stride: number): PplWindow[] {
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`seqLen: expected an integer ≥ 2, got ${maxLength}`);
  if (!Number.isInteger(stride) || stride < 1 || stride > maxLength) {
    throw new RangeError(`stride: expected an integer in [1, ${maxLength}], got ${stride}`);
  }
  const out: PplWindow[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < stream.length; begin += stride) {
    const end = Math.min(begin + maxLength, stream.length);
    const trgLen = end - prevEnd;
    const len = end - begin;
    if (len >= 2) out.push({ start: begin, tokens: stream.subarray(begin, end), scoreFrom: Math.max(1, len - trgLen) });
    prevEnd = end;
    if (end === stream.length) break;
  }
  return out;
}

/** Σ NLL and count over the scored positions of windows, given each window's logprobs [L-1]. */
export function accumulateNll(windows: readonly PplWindow[], logprobs: readonly Float32Array[]): { nll: number; count: number } {
  let nll = 0;
  let count = 0;
  windows.forEach((w, i) => {
    const lp = logprobs[i];
    if (lp.length !== w.tokens.length - 1) {
      throw new Error(`scoreWindows returned ${lp.length} logprobs for a window of ${w.tokens.length} tokens (expected ${w.tokens.length - 1})`);
    }
    for (let p = w.scoreFrom; p < w.tokens.length; p++) {
      nll -= lp[p - 1];
      count++;
    }
  });
  return { nll, count };
}

/** WikiText-2 raw test joined the GPTQ way: "\n\n".join(rows), rows = line + "\n" (non-empty) or "" (blank). */
export function wikitext2GptqText(file: string): string {
  const lines = readText(file).split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.trim() === "" ? "" : `${l}\n`)).join("\n\n");
}
