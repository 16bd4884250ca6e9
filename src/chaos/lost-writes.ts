/**
 * The "no acknowledged write lost" check of a chaos run: after the cluster healed, one final read per
 * key shows the surviving value. An acknowledged write is lost when that value was written by an
 * operation that finished before the acknowledged write began (so it must be older), or when the key
 * reads as absent although a write was acknowledged and no delete could explain it — nor an expiry:
 * a put with a TTL (issue 18) that did not finish before the acknowledged write began, and whose
 * earliest expiry (expiry.ts) came before the final read returned, may have made the key absent.
 * Any lost write is also a linearizability violation; this check names the writes.
 */
import { earliestExpiryMs } from './expiry.js';
import { acknowledgedPuts, keysOf, possibleWrites, precedes, type GetOperation, type Operation } from './history.js';

/** The client id of the final reads, so they stand apart from the workers' operations. */
export const FINAL_READ_CLIENT = -1;

/** One acknowledged write missing from the final state. */
export interface LostWrite {
  key: string;
  /** The acknowledged write (a put, a cas, or a transaction that put the key). */
  operationId: number;
  value: string;
  /** What the final read found instead (null = absent). */
  finalValue: string | null;
}

/**
 * The lost writes, and the keys whose final read is missing (the check could not run for them).
 * A transaction's acknowledged puts count like puts: each key it put must still hold its value or
 * a later one — or be absent, when the put itself or a later one had a TTL that may have run out.
 */
export function findLostWrites(history: readonly Operation[]): { lost: LostWrite[]; unreadKeys: string[] } {
  const finalReads = new Map<string, GetOperation>();
  const onKey = new Map<string, Operation[]>();
  for (const operation of history) {
    for (const key of keysOf(operation)) {
      const list = onKey.get(key);
      if (list === undefined) onKey.set(key, [operation]);
      else list.push(operation);
    }
    if (operation.client === FINAL_READ_CLIENT && operation.type === 'get' && operation.status === 'ok') {
      finalReads.set(operation.key, operation);
    }
  }
  const lost: LostWrite[] = [];
  const unreadKeys: string[] = [];
  for (const key of [...onKey.keys()].sort()) {
    const finalRead = finalReads.get(key);
    if (finalRead === undefined) {
      unreadKeys.push(key);
      continue;
    }
    const finalValue = finalRead.value ?? null;
    const operations = onKey.get(key) ?? [];
    const writesKey = (operation: Operation, value: string | null): boolean =>
      possibleWrites(operation).some((write) => write.key === key && write.value === value);
    const finalWriter = finalValue === null ? undefined : operations.find((operation) => writesKey(operation, finalValue));
    const deleted = operations.some((operation) => writesKey(operation, null));
    // The TTL writes of the key that may have expired before the final read returned.
    const expirable = operations.filter((operation) =>
      possibleWrites(operation).some(
        (write) => write.key === key && write.ttlMs !== undefined && earliestExpiryMs(operation.invokedAtMs, write.ttlMs) <= finalRead.completedAtMs,
      ),
    );
    for (const operation of operations) {
      for (const put of acknowledgedPuts(operation)) {
        if (put.key !== key) continue;
        const expired = expirable.some((expirer) => !precedes(expirer, operation));
        const isLost =
          (finalValue === null && !deleted && !expired) || (finalWriter !== undefined && finalWriter !== operation && precedes(finalWriter, operation));
        if (isLost) lost.push({ key, operationId: operation.id, value: put.value, finalValue });
      }
    }
  }
  return { lost, unreadKeys };
}
