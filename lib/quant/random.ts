/**
 * The seeded PRNG of calibration windows and synthetic test data, as a class with the draws those need. The
 * generator itself is the runtime's (`makeRng` in lib/model/sampling.ts, mulberry32): one implementation, so a seed
 * means the same stream everywhere.
 */
import { makeRng } from "../model/sampling.js";

export class Rng {
  private readonly u: () => number;
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new TypeError(`seed: expected an integer, got ${seed}`);
    this.u = makeRng(seed);
  }
  /** Uniform in [0, 2^32): makeRng's draw is u32 / 2^32, so this multiplication is exact. */
  nextU32(): number {
    return this.u() * 4294967296;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u();
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
