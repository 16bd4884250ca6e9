/**
 * The closed-loop load: `concurrency` loops, each issuing one request, awaiting it, recording its
 * latency, and issuing the next. It works against any {@link LoadTarget}, so the bench workers and the
 * etcd comparison (test/bench/kv-vs-etcd.ts) run exactly the same loop against both stores.
 */
import type { Histogram } from 'hdr-histogram-js';
import { newLatencyHistogram, recordMillis } from './histogram.js';
import type { MixName } from './workload.js';
import type { SeededRandom } from '../common/index.js';

/** A store the load can drive: get and put, and for the named mixes a put with a TTL and a two-key transaction. */
export interface LoadTarget {
  /** Reads a key; the result is ignored. */
  get(key: string): Promise<unknown>;
  /** Writes a key; resolves once the store acknowledged it. */
  put(key: string, value: Uint8Array): Promise<unknown>;
  /** `--mix ttl`: writes a key that expires `ttlMs` after the put applies. */
  putExpiring?(key: string, value: Uint8Array, ttlMs: number): Promise<unknown>;
  /**
   * `--mix txn`: one transaction — if `first` exists, put `value` to `first` and `second` (keys of
   * one shard); resolves whether the compare held (and so whether anything was written).
   */
  writePair?(first: string, second: string, value: Uint8Array): Promise<boolean>;
}

/** The error kind counted when a `--mix txn` transaction's compare did not hold (nothing was written). */
export const COMPARE_FAILED = 'COMPARE_FAILED';

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
  /** Percentage of gets; the rest are puts. Unused with `txn`. */
  getPercent: number;
  /**
   * What one operation is (workload.ts): `get-put` (the default) a get or a put by `getPercent`;
   * `ttl` the same, every put through `putExpiring` with `ttlMs`; `txn` one `writePair` on a pair
   * of keys, where `keys` holds the pairs side by side (2n and 2n+1 share a hash tag).
   */
  mixName?: MixName;
  /** With `ttl`: the TTL of every put, ms. */
  ttlMs?: number;
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
  /** Successful transactions (`--mix txn`); absent where a pool only carries gets and puts. */
  txns?: number;
  /** Failed operations, and how many of each kind (error `code`, else its name). */
  errors: number;
  errorsByKind: Record<string, number>;
  /** Wall time from the first issue to the last completion, ms. */
  elapsedMs: number;
  /** Latencies of successful gets and puts (µs). */
  get: Histogram;
  put: Histogram;
  /** Latencies of successful transactions (µs); absent as `txns` is. */
  txn?: Histogram;
}

/** What {@link runClosedLoop} measured: every kind of operation, transactions included. */
export type ClosedLoopResult = LoadResult & Required<Pick<LoadResult, 'txns' | 'txn'>>;

/** One operation chosen by the loop: a get, a put (`ttlMs` 0: none) or a two-key transaction. */
export type LoadOperation =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; ttlMs: number }
  | { kind: 'txn'; first: string; second: string };

/**
 * Picks the next operation from `random`: with `txn` one draw (the pair); otherwise two (the key,
 * then get or put), as the get/put loop always drew, so a seed replays the same keys as before.
 */
export function chooseOperation(plan: Pick<LoadPlan, 'keys' | 'getPercent' | 'mixName' | 'ttlMs' | 'random'>): LoadOperation {
  if (plan.mixName === 'txn') {
    const pair = plan.random.nextInt(Math.floor(plan.keys.length / 2));
    return { kind: 'txn', first: plan.keys[2 * pair] ?? '', second: plan.keys[2 * pair + 1] ?? '' };
  }
  const key = plan.keys[plan.random.nextInt(plan.keys.length)] ?? '';
  if (plan.random.nextInt(100) < plan.getPercent) return { kind: 'get', key };
  return { kind: 'put', key, ttlMs: plan.mixName === 'ttl' ? (plan.ttlMs ?? 0) : 0 };
}

/** Runs the closed loop to completion. Never rejects for a failed operation: failures are counted. */
export async function runClosedLoop(target: LoadTarget, plan: LoadPlan): Promise<ClosedLoopResult> {
  if (plan.ops === undefined && plan.durationMs === undefined) throw new Error('runClosedLoop needs ops or durationMs');
  if (plan.keys.length === 0) throw new Error('runClosedLoop needs at least one key');
  if (plan.mixName === 'txn' && (target.writePair === undefined || plan.keys.length < 2)) throw new Error('--mix txn needs a target with writePair and at least one pair of keys');
  if (plan.mixName === 'ttl' && (target.putExpiring === undefined || (plan.ttlMs ?? 0) <= 0)) throw new Error('--mix ttl needs a target with putExpiring and a TTL');
  const counters = plan.counters ?? new LoadCounters();
  const result: ClosedLoopResult = {
    ops: 0, gets: 0, puts: 0, txns: 0, errors: 0, errorsByKind: {}, elapsedMs: 0,
    get: newLatencyHistogram(), put: newLatencyHistogram(), txn: newLatencyHistogram(),
  };
  const countError = (kind: string): void => {
    result.errorsByKind[kind] = (result.errorsByKind[kind] ?? 0) + 1;
    result.errors += 1;
    counters.errors += 1;
  };
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
      const operation = chooseOperation(plan);
      const t0 = performance.now();
      try {
        if (operation.kind === 'get') {
          await target.get(operation.key);
          recordMillis(result.get, performance.now() - t0);
          result.gets += 1;
        } else if (operation.kind === 'put') {
          if (operation.ttlMs > 0 && target.putExpiring !== undefined) await target.putExpiring(operation.key, plan.value, operation.ttlMs);
          else await target.put(operation.key, plan.value);
          recordMillis(result.put, performance.now() - t0);
          result.puts += 1;
        } else {
          // A compare that did not hold wrote nothing: not the operation this mix measures.
          if (target.writePair === undefined || !(await target.writePair(operation.first, operation.second, plan.value))) {
            countError(COMPARE_FAILED);
            continue;
          }
          recordMillis(result.txn, performance.now() - t0);
          result.txns += 1;
        }
        result.ops += 1;
        counters.ops += 1;
      } catch (error) {
        countError(errorKind(error));
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
