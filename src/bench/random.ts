/**
 * A small seeded PRNG (mulberry32) for the bench and the driver, so a run's choice of keys, operations
 * and cart items is repeatable from `--seed`. Not for anything security-related.
 */

/** A seeded source of uniform integers. */
export interface SeededRandom {
  /** A uniform integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
  /** A uniform float in [0, 1). */
  nextFloat(): number;
}

/** mulberry32: 32 bits of state, good enough spread for picking keys; the same seed gives the same sequence. */
export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const nextFloat = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    nextFloat,
    nextInt: (maxExclusive) => Math.floor(nextFloat() * maxExclusive),
  };
}

/** A seed derived from a base seed and a stream number (worker, shopper), so streams differ but stay repeatable. */
export function deriveSeed(baseSeed: number, stream: number): number {
  return (Math.imul(baseSeed >>> 0, 0x9e3779b1) + Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
}
