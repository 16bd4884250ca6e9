/**
 * Keys that expire (issue 18), as the checker sees them. A put with a TTL — single or in a
 * transaction — makes its key disappear at some point of the shard's log, as if an invisible
 * delete of exactly that write's value ran there; every replica agrees, and once a read found the
 * key gone it stays gone until written again (docs/transactions-and-ttl.md, "Keys that expire").
 *
 * So the model gives each such write an *expiry*: a step that may turn the key absent while that
 * write's value is still current, at any point at or after its earliest expiry time, or never.
 * The only timing the checker may rely on is a lower bound: log time runs at most 1% faster than
 * real time, and the put applied after it was invoked, so the key is never removed before
 * `invokedAtMs + 0.99 × ttlMs` (minus {@link EXPIRY_CLOCK_SLACK_MS} for the clocks). There is no
 * upper bound: after a failover the new leader's log clock may lag by seconds, and a shard with
 * nothing to do may expire late. A later put or cas without a TTL clears the expiry (the value it
 * writes has none), a put with a TTL sets its own, a delete removes the key.
 *
 * Also here: the one violation worth its own words, a value that "came back" — read as absent
 * after its write certainly happened, then read again with no write of it in between.
 */
import { branchRan, possibleWrites, type Operation } from './history.js';

/**
 * Real time over log time, at worst: the leaders' log clock is pulled toward the wall clock by at
 * most 1%, so `ttlMs` of log time last at least `ttlMs / 1.01 > 0.99 × ttlMs` of real time.
 */
export const EXPIRY_RATE_BOUND = 0.99;

/**
 * Milliseconds the earliest expiry is moved earlier for the clocks: the history's and the node's
 * monotonic clocks, and the drift the log clock's slew does not cover. Generous on one machine.
 */
export const EXPIRY_CLOCK_SLACK_MS = 50;

/** The earliest history time at which a put invoked at `invokedAtMs` with `ttlMs` may have expired. */
export function earliestExpiryMs(invokedAtMs: number, ttlMs: number): number {
  return invokedAtMs + EXPIRY_RATE_BOUND * ttlMs - EXPIRY_CLOCK_SLACK_MS;
}

/**
 * Per key, per value written with a TTL: its earliest expiry time. Values are unique per history,
 * so a value names its write; a value written twice (hand-made histories) keeps the earlier time,
 * which only makes the model more permissive.
 */
export function earliestExpiries(operations: readonly Operation[]): Map<string, Map<string, number>> {
  const byKey = new Map<string, Map<string, number>>();
  for (const operation of operations) {
    for (const write of possibleWrites(operation)) {
      if (write.value === null || write.ttlMs === undefined) continue;
      let values = byKey.get(write.key);
      if (values === undefined) byKey.set(write.key, (values = new Map<string, number>()));
      const atMs = earliestExpiryMs(operation.invokedAtMs, write.ttlMs);
      values.set(write.value, Math.min(atMs, values.get(write.value) ?? Infinity));
    }
  }
  return byKey;
}

/** True for an operation that may make a key absent: a delete, or a put with a TTL (it may expire). */
export function mayRemove(write: { value: string | null; ttlMs?: number }): boolean {
  return write.value === null || write.ttlMs !== undefined;
}

/** What a read observed of one key: its value, null when absent. */
export interface ReadObservation {
  key: string;
  value: string | null;
}

/**
 * The keys an operation read and what it found: a successful get, and a completed transaction's
 * gets of keys its branch had not written before them (a get after the branch's own put or delete
 * shows that write, not the state before it).
 */
export function readsOf(operation: Operation): ReadObservation[] {
  if (operation.type === 'get') return operation.status === 'ok' ? [{ key: operation.key, value: operation.value ?? null }] : [];
  if (operation.type !== 'txn') return [];
  const branch = branchRan(operation);
  if (branch === undefined) return [];
  const written = new Set<string>();
  const reads: ReadObservation[] = [];
  (operation.results ?? []).forEach((result, i) => {
    const step = branch[i];
    if (step === undefined) return;
    if (step.op !== 'get') written.add(step.key);
    else if (result.op === 'get' && !written.has(step.key)) reads.push({ key: step.key, value: result.value });
  });
  return reads;
}

/** A value read as absent after it was certainly written, then read again: the operations involved. */
export interface CameBack {
  key: string;
  value: string;
  /** The operation that wrote it. */
  writerId: number;
  /** The operation after which the write had certainly happened: the writer, or a read of the value. */
  surelyWrittenById: number;
  /** The read that found the key absent. */
  absentReadId: number;
  /** The later read that found the value again. */
  againReadId: number;
}

/**
 * The first value that came back: its only write certainly happened (the writer, or a read of the
 * value, returned) before a read of the key that found it absent was invoked, and that read
 * returned before another read of the value was invoked. No order can explain it: the write
 * cannot apply twice, so once the key was absent after it, the value is gone for good. (The
 * search would reject such a history as well; this names the reason.)
 */
export function findCameBack(operations: readonly Operation[]): CameBack | undefined {
  const writers = new Map<string, Operation[]>();
  for (const operation of operations) {
    for (const write of possibleWrites(operation)) {
      if (write.value === null) continue;
      append(writers, `${write.key}\u0000${write.value}`, operation);
    }
  }
  /** Per key: the absent reads; per key and value: the reads of it. */
  const absentReads = new Map<string, Operation[]>();
  const valueReads = new Map<string, Operation[]>();
  for (const operation of operations) {
    for (const read of readsOf(operation)) {
      if (read.value === null) append(absentReads, read.key, operation);
      else append(valueReads, `${read.key}\u0000${read.value}`, operation);
    }
  }
  for (const [id, reads] of valueReads) {
    const [key = '', value = ''] = id.split('\u0000');
    const absent = absentReads.get(key);
    const writer = writers.get(id);
    if (absent === undefined || writer?.length !== 1) continue;
    const write = writer[0] as Operation;
    // When the write had certainly happened: the writer's return (if its outcome is known), or the first return of a read of the value.
    const surely = [...(write.status === 'unknown' ? [] : [write]), ...reads].reduce<Operation | undefined>(
      (best, operation) => (best === undefined || operation.completedAtMs < best.completedAtMs ? operation : best),
      undefined,
    );
    if (surely === undefined) continue;
    const again = reads.reduce((latest, operation) => (operation.invokedAtMs > latest.invokedAtMs ? operation : latest));
    const gone = absent.find((read) => surely.completedAtMs < read.invokedAtMs && read.completedAtMs < again.invokedAtMs);
    if (gone !== undefined) {
      return { key, value, writerId: write.id, surelyWrittenById: surely.id, absentReadId: gone.id, againReadId: again.id };
    }
  }
  return undefined;
}

function append<T>(map: Map<string, T[]>, id: string, item: T): void {
  const list = map.get(id);
  if (list === undefined) map.set(id, [item]);
  else list.push(item);
}
