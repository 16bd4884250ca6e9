/**
 * The closed-loop load: `concurrency` loops, each issuing one request, awaiting it, recording its
 * latency, and issuing the next. It works against any {@link LoadTarget}, so the bench workers and the
 * etcd comparison (test/bench/kv-vs-etcd.ts) run exactly the same loop against both stores.
 */
import type { Histogram } from 'hdr-histogram-js';
import { newLatencyHistogram, recordMillis } from './histogram.js';
import type { SeededRandom } from '../common/index.js';

/** A store the load can drive: only get and put. */
export interface LoadTarget {
  /** Reads a key; the result is ignored. */
  get(key: string): Promise<unknown>;
  /** Writes a key; resolves once the store acknowledged it. */
  put(key: string, value: Uint8Array): Promise<unknown>;
}

/** Live counts a caller may read while the load runs (for progress display). */
export class LoadCounters {
  /** Operations completed successfully. */
  ops = 0;
  /** Operations that failed. */
  errors = 0;
}

/** What to run. Give `ops` or `durationMs` (ops wins when both are given). */
export interface LoadPlan {
  /** The keyspace; each operation picks one uniformly. */
  keys: readonly string[];
  /** Requests in flight at once. */
  concurrency: number;
  /** Percentage of gets; the rest are puts. */
  getPercent: number;
  /** The value every put writes. */
  value: Uint8Array;
  /** Stop after this many operations (successful or failed). */
  ops?: number;
  /** Stop issuing after this long. */
  durationMs?: number;
  /** Picks keys and operations; seeded so a run is repeatable. */
  random: SeededRandom;
  /** Updated as operations complete. */
  counters?: LoadCounters;
  /** Aborting stops issuing new operations; those in flight finish. */
  signal?: AbortSignal;
}

/** What a load run measured. Latencies of failed operations are not recorded. */
export interface LoadResult {
  /** Successful operations. */
  ops: number;
  /** Successful gets and puts. */
  gets: number;
  puts: number;
  /** Failed operations, and how many of each kind (error `code`, else its name). */
  errors: number;
  errorsByKind: Record<string, number>;
  /** Wall time from the first issue to the last completion, ms. */
  elapsedMs: number;
  /** Latencies of successful gets and puts (µs). */
  get: Histogram;
  put: Histogram;
}

/** Runs the closed loop to completion. Never rejects for a failed operation: failures are counted. */
export async function runClosedLoop(target: LoadTarget, plan: LoadPlan): Promise<LoadResult> {
  if (plan.ops === undefined && plan.durationMs === undefined) throw new Error('runClosedLoop needs ops or durationMs');
  if (plan.keys.length === 0) throw new Error('runClosedLoop needs at least one key');
  const counters = plan.counters ?? new LoadCounters();
  const result: LoadResult = { ops: 0, gets: 0, puts: 0, errors: 0, errorsByKind: {}, elapsedMs: 0, get: newLatencyHistogram(), put: newLatencyHistogram() };
  const started = performance.now();
  const deadline = plan.durationMs === undefined ? Infinity : started + plan.durationMs;
  let issued = 0;
  const mayIssue = (): boolean => {
    if (plan.signal?.aborted === true) return false;
    if (plan.ops !== undefined) return issued < plan.ops;
    return performance.now() < deadline;
  };

  const loop = async (): Promise<void> => {
    while (mayIssue()) {
      issued += 1;
      const key = plan.keys[plan.random.nextInt(plan.keys.length)] ?? '';
      const isGet = plan.random.nextInt(100) < plan.getPercent;
      const t0 = performance.now();
      try {
        if (isGet) await target.get(key);
        else await target.put(key, plan.value);
        recordMillis(isGet ? result.get : result.put, performance.now() - t0);
        if (isGet) result.gets += 1;
        else result.puts += 1;
        result.ops += 1;
        counters.ops += 1;
      } catch (error) {
        const kind = errorKind(error);
        result.errorsByKind[kind] = (result.errorsByKind[kind] ?? 0) + 1;
        result.errors += 1;
        counters.errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, plan.concurrency) }, loop));
  result.elapsedMs = performance.now() - started;
  return result;
}

/**
 * Writes `value` to every key, `concurrency` at a time, retrying a failed put up to `attempts` times
 * (so gets in the measured phase find values). Resolves to the number of keys that could not be written.
 * Stops early, leaving the rest unwritten, once `signal` aborts.
 */
export async function preloadKeys(target: LoadTarget, keys: readonly string[], value: Uint8Array, concurrency: number, attempts = 3, signal?: AbortSignal): Promise<number> {
  let next = 0;
  let failed = 0;
  const stopped = (): boolean => signal?.aborted === true;
  const loop = async (): Promise<void> => {
    while (next < keys.length && !stopped()) {
      const key = keys[next++] ?? '';
      for (let attempt = 1; ; attempt++) {
        try {
          await target.put(key, value);
          break;
        } catch {
          if (attempt >= attempts || stopped()) {
            failed += 1;
            break;
          }
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, loop));
  return failed;
}

/** A short label for an error: a KVError's `code`, else the error's name. */
export function errorKind(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    if ('code' in error && typeof error.code === 'string') return error.code;
    if (error instanceof Error) return error.name;
  }
  return 'unknown';
}
