/**
 * Runs simulation seeds in order, in this thread or in a worker (seed-worker.ts), and
 * summarizes them. Each seed is independent, so the suite splits them across cores and
 * still reports exactly what a single thread would: the lowest failing seed.
 */
import { Simulation, randomScenario } from './simulator.js';
import type { Shape } from './scenario.js';

/** The first seed that failed, as plain data (it crosses threads). */
export interface SeedFailure {
  seed: number;
  message: string;
  stack: string;
}

/** What a batch of seeds did. */
export interface SeedSummary {
  /** Seeds run to the end. */
  runs: number;
  shapes: Partial<Record<Shape, number>>;
  /** Ticks each run took, after healing, to commit on every voter. */
  livenessTicks: number[];
  reads: number;
  failure?: SeedFailure;
}

/**
 * Runs `seeds` in order and stops at the first failure. `lowestFailure` tells the lowest
 * seed another thread has seen fail: seeds above it are skipped, since that one is what
 * the suite reports anyway.
 */
export function runSeeds(seeds: readonly number[], lowestFailure: () => number = () => Number.POSITIVE_INFINITY): SeedSummary {
  const summary: SeedSummary = { runs: 0, shapes: {}, livenessTicks: [], reads: 0 };
  for (const seed of seeds) {
    if (seed > lowestFailure()) break;
    const scenario = randomScenario(seed);
    try {
      const result = new Simulation(scenario).run();
      summary.runs++;
      summary.shapes[result.shape] = (summary.shapes[result.shape] ?? 0) + 1;
      summary.livenessTicks.push(result.livenessTicks);
      summary.reads += result.reads;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const stack = error instanceof Error ? (error.stack ?? message) : message;
      summary.failure = { seed, message, stack };
      break;
    }
  }
  return summary;
}

/** Several threads' summaries as one; the failure is the lowest failing seed. */
export function mergeSummaries(summaries: readonly SeedSummary[]): SeedSummary {
  const merged: SeedSummary = { runs: 0, shapes: {}, livenessTicks: [], reads: 0 };
  for (const summary of summaries) {
    merged.runs += summary.runs;
    merged.reads += summary.reads;
    merged.livenessTicks.push(...summary.livenessTicks);
    for (const [shape, count] of Object.entries(summary.shapes) as [Shape, number][]) {
      merged.shapes[shape] = (merged.shapes[shape] ?? 0) + count;
    }
    if (summary.failure !== undefined && (merged.failure === undefined || summary.failure.seed < merged.failure.seed)) {
      merged.failure = summary.failure;
    }
  }
  return merged;
}
