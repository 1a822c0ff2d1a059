/**
 * Agreement of a quantized model with its baseline on the same windows, as llama.cpp's
 * `perplexity --kl-divergence` report: per-token KL(P_base ‖ P_quant) over the full vocabulary, top-1 agreement
 * (same argmax), Δp = p_quant(actual next token) − p_base(actual next token), and ln(PPL_q / PPL_base) as the mean
 * per-token NLL difference. Inputs are log-softmax rows [n, V] (row i predicts token i+1).
 */
import { Float64Stack, argmax, mean, meanStderr, quantileSorted, sorted, type Metric } from "./stats.js";

export interface AgreementStats {
  tokens: number;
  kl: { mean: Metric; median: number; p90: number; p95: number; p99: number; p999: number; min: number; max: number };
  top1: Metric;
  deltaP: { mean: Metric; rms: number; median: number; p1: number; p5: number; p10: number; p90: number; p95: number; p99: number; min: number; max: number };
  lnPplRatio: Metric;
}

export class AgreementAccumulator {
  private kl = new Float64Stack();
  private dp = new Float64Stack();
  private dnll = new Float64Stack();
  private same = new Float64Stack();

  constructor(readonly vocabSize: number) {}

  /**
   * Adds rows [from, to) of one window. `base`, `quant`: [rows, V] log-softmax; `targets[r]` is the token row r
   * predicts.
   */
  add(base: Float32Array, quant: Float32Array, targets: ArrayLike<number>, from: number, to: number): void {
    const V = this.vocabSize;
    if (base.length !== quant.length || base.length % V !== 0) {
      throw new Error(`log-softmax rows: expected equal lengths that are multiples of vocabSize ${V}, got ${base.length} and ${quant.length}`);
    }
    for (let r = from; r < to; r++) {
      const b = base.subarray(r * V, (r + 1) * V);
      const q = quant.subarray(r * V, (r + 1) * V);
      let kl = 0;
      for (let i = 0; i < V; i++) {
        const lb = b[i];
        if (lb > -Infinity) kl += Math.exp(lb) * (lb - q[i]);
      }
      // Rounding of fp32 rows can make a true 0 slightly negative.
      this.kl.push(Math.max(0, kl));
      const t = targets[r];
      this.dp.push(Math.exp(q[t]) - Math.exp(b[t]));
      this.dnll.push(b[t] - q[t]);
      this.same.push(argmax(b) === argmax(q) ? 1 : 0);
    }
  }

  result(): AgreementStats {
    const kl = this.kl.view();
    const dp = this.dp.view();
    const ks = sorted(kl);
    const ds = sorted(dp);
    let sq = 0;
    for (let i = 0; i < dp.length; i++) sq += dp[i] * dp[i];
    const same = this.same.view();
    const dnll = this.dnll.view();
    return {
      tokens: kl.length,
      kl: {
        mean: { value: mean(kl), stderr: meanStderr(kl) },
        median: quantileSorted(ks, 0.5),
        p90: quantileSorted(ks, 0.9),
        p95: quantileSorted(ks, 0.95),
        p99: quantileSorted(ks, 0.99),
        p999: quantileSorted(ks, 0.999),
        min: ks[0],
        max: ks[ks.length - 1],
      },
      top1: { value: mean(same), stderr: meanStderr(same) },
      deltaP: {
        mean: { value: mean(dp), stderr: meanStderr(dp) },
        rms: Math.sqrt(sq / dp.length),
        median: quantileSorted(ds, 0.5),
        p1: quantileSorted(ds, 0.01),
        p5: quantileSorted(ds, 0.05),
        p10: quantileSorted(ds, 0.1),
        p90: quantileSorted(ds, 0.9),
        p95: quantileSorted(ds, 0.95),
        p99: quantileSorted(ds, 0.99),
        min: ds[0],
        max: ds[ds.length - 1],
      },
      lnPplRatio: { value: mean(dnll), stderr: meanStderr(dnll) },
    };
  }
}
