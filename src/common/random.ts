/**
 * The one seeded pseudo-random generator of kvstore: the Raft core's election timeouts (injected as
 * a `RandomSource`, STYLE.md §3), the chaos run's faults and operations, and the bench's keys and
 * cart items. Seeded, so a run's choices replay from its seed. Pure: no I/O, no clock, no
 * `Math.random`, which is why src/raft may import this one file from src/common. Not for anything
 * security-related.
 */

/**
 * mulberry32: 32 bits of state, a tiny generator with good enough spread for picking timeouts, keys
 * and faults, fully determined by its seed. The sequence MUST stay exactly as it is: seeded Raft
 * simulations, chaos runs and benches replay from it.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned value; every other method draws from it. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** A uniform integer in `[0, maxExclusive)`; 0 (drawing nothing) unless `maxExclusive` is positive. */
  nextInt(maxExclusive: number): number {
    if (!(maxExclusive > 0)) return 0;
    return Math.floor(this.nextFloat() * maxExclusive);
  }

  /** A uniform integer in [min, max]. */
  integer(min: number, max: number): number {
    return min + Math.floor(this.nextFloat() * (max - min + 1));
  }

  /** A uniform float in [min, max). */
  between(min: number, max: number): number {
    return min + this.nextFloat() * (max - min);
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.nextFloat() * items.length)] as T;
  }

  /** A new array with the items in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const shuffled = [...items];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = this.integer(0, i);
      [shuffled[i], shuffled[j]] = [shuffled[j] as T, shuffled[i] as T];
    }
    return shuffled;
  }

  /** An independent generator for a sub-task (worker i, the nemesis), stable for a given seed and state. */
  fork(salt: number): SeededRandom {
    return new SeededRandom(Math.imul((this.state ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0, 0x85ebca6b) >>> 0);
  }
}

/** A seed derived from a base seed and a stream number (worker, shopper), so streams differ but stay repeatable. */
export function deriveSeed(baseSeed: number, stream: number): number {
  return (Math.imul(baseSeed >>> 0, 0x9e3779b1) + Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
}
