/**
 * Small statistics used by every metric: means with lm-evaluation-harness standard errors (sample standard
 * deviation with n-1, divided by sqrt(n)) and quantiles with linear interpolation (numpy's default).
 */

export interface Metric {
  value: number;
  /** Standard error of `value` (sample std / sqrt(n)), when it has one. */
  stderr?: number;
}

export function mean(xs: ArrayLike<number>): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}

/** Sample standard deviation (ddof = 1), as lm-eval's `sample_stddev`. */
export function sampleStd(xs: ArrayLike<number>): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < n; i++) s += (xs[i] - m) * (xs[i] - m);
  return Math.sqrt(s / (n - 1));
}

/** lm-eval `mean_stderr`: sample std / sqrt(n). */
export function meanStderr(xs: ArrayLike<number>): number {
  return sampleStd(xs) / Math.sqrt(xs.length);
}

/** Mean and its standard error in one Metric. */
export function meanMetric(xs: ArrayLike<number>): Metric {
  return { value: mean(xs), stderr: xs.length > 1 ? meanStderr(xs) : undefined };
}

/** Sorted copy as Float64Array (for repeated quantile queries). */
export function sorted(xs: ArrayLike<number>): Float64Array {
  const a = Float64Array.from(xs as ArrayLike<number>);
  a.sort();
  return a;
}

/** q in [0, 1] of an ascending array, linear interpolation between closest ranks (numpy "linear"). */
export function quantileSorted(a: Float64Array, q: number): number {
  if (a.length === 0) return NaN;
  const pos = q * (a.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, a.length - 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}

/** Index of the largest value; ties go to the first index (numpy argmax). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** A growable Float64 buffer for per-token statistics (KL, Δp) over hundreds of thousands of tokens. */
export class Float64Stack {
  private buf = new Float64Array(1024);
  length = 0;
  push(x: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = x;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}
