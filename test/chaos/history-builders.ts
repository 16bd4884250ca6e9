/**
 * Terse builders for hand-written histories: `put(client, [start, end], value)` and friends, all on
 * one key unless given, with ids in call order.
 */
import type { CasOperation, DeleteOperation, GetOperation, Operation, PutOperation } from '../../src/chaos/index.js';

let nextId = 0;

/** Resets the id counter so each test's ids start at 0. */
export function resetIds(): void {
  nextId = 0;
}

/** `[invokedAtMs, completedAtMs]`. */
export type Span = [number, number];

/** A successful read of `value` at `version` (null/0 = absent). */
export function get(client: number, [start, end]: Span, value: string | null, version = 0, key = 'k'): GetOperation {
  return { id: nextId++, client, key, type: 'get', status: 'ok', value, version, invokedAtMs: start, completedAtMs: end };
}

/** An acknowledged put. */
export function put(client: number, [start, end]: Span, value: string, key = 'k'): PutOperation {
  return { id: nextId++, client, key, type: 'put', value, status: 'ok', invokedAtMs: start, completedAtMs: end };
}

/** A put that timed out: it may or may not have applied. */
export function putUnknown(client: number, [start, end]: Span, value: string, key = 'k'): PutOperation {
  return { id: nextId++, client, key, type: 'put', value, status: 'unknown', error: 'TIMEOUT', invokedAtMs: start, completedAtMs: end };
}

/** A successful cas from `expectedVersion` to `value` at `version`. */
export function casOk(client: number, [start, end]: Span, expectedVersion: number, value: string, version: number, key = 'k'): CasOperation {
  return { id: nextId++, client, key, type: 'cas', expectedVersion, value, status: 'ok', version, invokedAtMs: start, completedAtMs: end };
}

/** A cas refused because the key was at `currentVersion`. */
export function casConflict(client: number, [start, end]: Span, expectedVersion: number, value: string, currentVersion: number, key = 'k'): CasOperation {
  return { id: nextId++, client, key, type: 'cas', expectedVersion, value, status: 'conflict', currentVersion, invokedAtMs: start, completedAtMs: end };
}

/** A cas that timed out. */
export function casUnknown(client: number, [start, end]: Span, expectedVersion: number, value: string, key = 'k'): CasOperation {
  return { id: nextId++, client, key, type: 'cas', expectedVersion, value, status: 'unknown', error: 'TIMEOUT', invokedAtMs: start, completedAtMs: end };
}

/** An acknowledged delete; `existed` says whether the key was there. */
export function del(client: number, [start, end]: Span, existed: boolean, key = 'k'): DeleteOperation {
  return { id: nextId++, client, key, type: 'delete', status: 'ok', existed, invokedAtMs: start, completedAtMs: end };
}

/** A delete that timed out. */
export function delUnknown(client: number, [start, end]: Span, key = 'k'): DeleteOperation {
  return { id: nextId++, client, key, type: 'delete', status: 'unknown', error: 'TIMEOUT', invokedAtMs: start, completedAtMs: end };
}

/** Ids of operations, for assertions. */
export function ids(operations: readonly Operation[]): number[] {
  return operations.map((operation) => operation.id).sort((a, b) => a - b);
}
