/**
 * A seeded pseudo-random source for the core's only randomness: election
 * timeouts. Injected so that a test replays a run from its seed (STYLE.md §3).
 */
import type { RandomSource } from './types.js';

/**
 * Mulberry32: a tiny 32-bit generator with good enough statistics for
 * spreading election timeouts, and fully determined by its seed.
 */
export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned value. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in `[0, maxExclusive)`; `maxExclusive` must be a positive integer. */
  nextInt(maxExclusive: number): number {
    if (!(maxExclusive > 0)) return 0;
    return Math.floor((this.nextUint32() / 0x1_0000_0000) * maxExclusive);
  }
}
