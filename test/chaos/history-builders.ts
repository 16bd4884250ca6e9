/**
 * Terse builders for hand-written histories: `put(client, [start, end], value)` and friends, all on
 * one key unless given, with ids in call order.
 */
import type {
  CasOperation,
  DeleteOperation,
  GetOperation,
  Operation,
  PutOperation,
  TxnCompareRecord,
  TxnOperation,
  TxnStep,
  TxnStepResult,
} from '../../src/chaos/index.js';

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

/** An acknowledged put with a TTL: the key expires `ttlMs` after it (issue 18). */
export function putTtl(client: number, [start, end]: Span, value: string, ttlMs: number, key = 'k'): PutOperation {
  return { ...put(client, [start, end], value, key), ttlMs };
}

/** A put with a TTL that timed out. */
export function putTtlUnknown(client: number, [start, end]: Span, value: string, ttlMs: number, key = 'k'): PutOperation {
  return { ...putUnknown(client, [start, end], value, key), ttlMs };
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

/** What a transaction asks: compares, then the branch they pick. */
export interface TxnSpec {
  compare?: TxnCompareRecord[];
  success?: TxnStep[];
  failure?: TxnStep[];
}

/** A transaction that completed: which branch ran and its results, in branch order. */
export function txn(client: number, [start, end]: Span, spec: TxnSpec, succeeded: boolean, results: TxnStepResult[]): TxnOperation {
  return { ...txnBase(spec), id: nextId++, client, status: 'ok', succeeded, results, invokedAtMs: start, completedAtMs: end };
}

/** A transaction that timed out: it may have run the branch its compares picked, or not at all. */
export function txnUnknown(client: number, [start, end]: Span, spec: TxnSpec): TxnOperation {
  return { ...txnBase(spec), id: nextId++, client, status: 'unknown', error: 'TIMEOUT', invokedAtMs: start, completedAtMs: end };
}

function txnBase(spec: TxnSpec): Pick<TxnOperation, 'type' | 'key' | 'compare' | 'success' | 'failure'> {
  const compare = spec.compare ?? [];
  const success = spec.success ?? [];
  const failure = spec.failure ?? [];
  const key = compare[0]?.key ?? success[0]?.key ?? failure[0]?.key ?? 'k';
  return { type: 'txn', key, compare, success, failure };
}

/** Branch steps and results, tersely: `step.put('a', 'x')`, `result.get('a', 'x', 4)`. */
export const step = {
  put: (key: string, value: string, ttlMs?: number): TxnStep => ({ op: 'put', key, value, ...(ttlMs === undefined ? {} : { ttlMs }) }),
  delete: (key: string): TxnStep => ({ op: 'delete', key }),
  get: (key: string): TxnStep => ({ op: 'get', key }),
};

export const result = {
  put: (key: string, version: number): TxnStepResult => ({ op: 'put', key, version }),
  delete: (key: string, existed: boolean): TxnStepResult => ({ op: 'delete', key, existed }),
  get: (key: string, value: string | null, version = 0): TxnStepResult => ({ op: 'get', key, value, version }),
};

/** Ids of operations, for assertions. */
export function ids(operations: readonly Operation[]): number[] {
  return operations.map((operation) => operation.id).sort((a, b) => a - b);
}
