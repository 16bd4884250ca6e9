/**
 * The "no acknowledged write lost" check of a chaos run: after the cluster healed, one final read per
 * key shows the surviving value. An acknowledged write is lost when that value was written by an
 * operation that finished before the acknowledged write began (so it must be older), or when the key
 * reads as absent although a write was acknowledged and no delete could explain it. Any lost write is
 * also a linearizability violation; this check names the writes.
 */
import { precedes, writtenValue, type GetOperation, type Operation } from './history.js';

/** The client id of the final reads, so they stand apart from the workers' operations. */
export const FINAL_READ_CLIENT = -1;

/** One acknowledged write missing from the final state. */
export interface LostWrite {
  key: string;
  /** The acknowledged write. */
  operationId: number;
  value: string;
  /** What the final read found instead (null = absent). */
  finalValue: string | null;
}

/** The lost writes, and the keys whose final read is missing (the check could not run for them). */
export function findLostWrites(history: readonly Operation[]): { lost: LostWrite[]; unreadKeys: string[] } {
  const finalReads = new Map<string, GetOperation>();
  const keys = new Set<string>();
  for (const operation of history) {
    keys.add(operation.key);
    if (operation.client === FINAL_READ_CLIENT && operation.type === 'get' && operation.status === 'ok') {
      finalReads.set(operation.key, operation);
    }
  }
  const lost: LostWrite[] = [];
  const unreadKeys: string[] = [];
  for (const key of [...keys].sort()) {
    const finalRead = finalReads.get(key);
    if (finalRead === undefined) {
      unreadKeys.push(key);
      continue;
    }
    const finalValue = finalRead.value ?? null;
    const onKey = history.filter((operation) => operation.key === key);
    const finalWriter = finalValue === null ? undefined : onKey.find((operation) => writtenValue(operation) === finalValue);
    const deleted = onKey.some((operation) => operation.type === 'delete');
    for (const operation of onKey) {
      if ((operation.type !== 'put' && operation.type !== 'cas') || operation.status !== 'ok') continue;
      const isLost = (finalValue === null && !deleted) || (finalWriter !== undefined && finalWriter !== operation && precedes(finalWriter, operation));
      if (isLost) lost.push({ key, operationId: operation.id, value: operation.value, finalValue });
    }
  }
  return { lost, unreadKeys };
}
