/**
 * A small seeded PRNG (mulberry32, a 32-bit state generator by Tommy Ettinger) so that calibration windows and
 * synthetic test data are reproducible from a seed on every platform.
 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new TypeError(`seed: expected an integer, got ${seed}`);
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 2^32). */
  nextU32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
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
