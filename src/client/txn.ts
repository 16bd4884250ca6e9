/**
 * Transactions as the client takes them (`KVClient.txn`), in the shape of etcd's: compares,
 * then the operations of the branch their outcome picks. The input is checked here — every
 * key and value, the counts and bytes, one shard (`checkTxn`) — before anything is sent.
 */
import { checkTxn, type TxnKeyUse } from '../common/index.js';
import type { TxnCompare, TxnOp, TxnOpResult, TxnRequest, TxnResponse } from '../gen/kvstore/v1/kvstore.js';
import { KVError } from './errors.js';
import { keyToBytes, ttlOf, valueToBytes } from './input.js';
import type { KVEntry, KVValue } from './kv-client.js';

/**
 * One compare: the key holds exactly `value`; or its version is `version` (0: absent); or it
 * exists (`exists: true`) or is absent (`exists: false`).
 */
export type KVTxnCompare = { key: string; value: KVValue } | { key: string; version: number } | { key: string; exists: boolean };

/** One operation of a branch. */
export type KVTxnOp = { put: { key: string; value: KVValue; ttlMs?: number } } | { delete: { key: string } } | { get: { key: string } };

/**
 * A transaction: if every compare holds, `success` runs, else `failure`; in order, as one Raft
 * entry (atomic, linearizable, exactly once under retries). Every key in one shard: give them one
 * hash tag (`{u42}cart`, `{u42}order`).
 */
export interface KVTxn {
  compare?: readonly KVTxnCompare[];
  success?: readonly KVTxnOp[];
  failure?: readonly KVTxnOp[];
}

/** One operation's result, in the order of the branch that ran. A get sees the puts and deletes before it in the branch. */
export type KVTxnOpResult =
  | { op: 'put'; key: string; version: number }
  | { op: 'delete'; key: string; existed: boolean }
  | { op: 'get'; key: string; entry: KVEntry | null };

/** What a transaction did. */
export interface KVTxnResult {
  /** True when every compare held and `success` ran; false when `failure` ran. */
  succeeded: boolean;
  results: KVTxnOpResult[];
}

/** A checked transaction: the request to send (without epoch) and the key that routes it. */
export interface TxnPlan {
  request: Omit<TxnRequest, 'epoch' | 'session'>;
  key: Uint8Array;
  /** The keys of the branch operations as given, to label the results. */
  successKeys: string[];
  failureKeys: string[];
}

const decoder = new TextDecoder();

/** Checks `txn` for a cluster of `shardCount` shards; throws INVALID_ARGUMENT naming what is wrong. */
export function txnRequestOf(txn: KVTxn, shardCount: number): TxnPlan {
  if (typeof txn !== 'object' || txn === null) throw new KVError('INVALID_ARGUMENT', 'txn takes an object { compare, success, failure }');
  const compareInput = listOf(txn.compare, 'compare');
  const compares: TxnCompare[] = [];
  const compareUses: TxnKeyUse[] = [];
  for (const [i, input] of compareInput.entries()) {
    const where = `compare ${i + 1}`;
    if (typeof input !== 'object' || input === null) throw new KVError('INVALID_ARGUMENT', `${where} is not an object`);
    const compare = input as { key?: unknown; value?: unknown; version?: unknown; exists?: unknown };
    const key = keyAt(compare.key, where);
    const targets = (['value', 'version', 'exists'] as const).filter((name) => name in compare);
    if (targets.length !== 1) {
      throw new KVError('INVALID_ARGUMENT', `${where} needs exactly one of value, version or exists, got ${targets.length === 0 ? 'none' : targets.join(' and ')}`);
    }
    if ('value' in compare) {
      const value = valueAt(compare.value, where);
      compares.push({ key, target: { $case: 'value', value } });
      compareUses.push({ key, value, writes: false });
    } else if ('version' in compare) {
      const version = compare.version;
      if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
        throw new KVError('INVALID_ARGUMENT', `${where}: version must be a non-negative integer, got ${String(version)}`);
      }
      compares.push({ key, target: { $case: 'version', value: version } });
      compareUses.push({ key, writes: false });
    } else {
      if (typeof compare.exists !== 'boolean') throw new KVError('INVALID_ARGUMENT', `${where}: exists must be true or false`);
      compares.push({ key, target: { $case: 'exists', value: compare.exists } });
      compareUses.push({ key, writes: false });
    }
  }
  const success = branchOf(txn.success, 'success');
  const failure = branchOf(txn.failure, 'failure');
  const checked = checkTxn({ compares: compareUses, success: success.uses, failure: failure.uses }, shardCount);
  if (!checked.ok) throw new KVError('INVALID_ARGUMENT', checked.message);
  return { request: { compares, success: success.ops, failure: failure.ops }, key: checked.key, successKeys: success.keys, failureKeys: failure.keys };
}

/** The result of a transaction from its response (which has no error). */
export function txnResultOf(plan: TxnPlan, response: TxnResponse): KVTxnResult {
  const keys = response.succeeded ? plan.successKeys : plan.failureKeys;
  if (response.results.length !== keys.length) {
    throw new KVError('UNAVAILABLE', `transaction answered ${response.results.length} results for ${keys.length} operations`);
  }
  return { succeeded: response.succeeded, results: response.results.map((result, i) => resultOf(result, keys[i] ?? '')) };
}

function resultOf(wire: TxnOpResult, key: string): KVTxnOpResult {
  const result = wire.result;
  switch (result?.$case) {
    case 'put':
      return { op: 'put', key, version: result.value.version };
    case 'delete':
      return { op: 'delete', key, existed: result.value.existed };
    case 'get': {
      if (!result.value.found) return { op: 'get', key, entry: null };
      const bytes = new Uint8Array(result.value.value);
      return { op: 'get', key, entry: { value: decoder.decode(bytes), bytes, version: result.value.version } };
    }
    case undefined:
      throw new KVError('UNAVAILABLE', 'transaction answered a result without an operation');
  }
}

function branchOf(input: unknown, name: string): { ops: TxnOp[]; uses: TxnKeyUse[]; keys: string[] } {
  const ops: TxnOp[] = [];
  const uses: TxnKeyUse[] = [];
  const keys: string[] = [];
  for (const [i, op] of listOf(input, name).entries()) {
    const where = `${name} operation ${i + 1}`;
    if (typeof op !== 'object' || op === null) throw new KVError('INVALID_ARGUMENT', `${where} is not an object`);
    const kinds = (['put', 'delete', 'get'] as const).filter((kind) => kind in op);
    const kind = kinds[0];
    if (kinds.length !== 1 || kind === undefined) throw new KVError('INVALID_ARGUMENT', `${where} needs exactly one of put, delete or get`);
    const body: unknown = (op as Record<string, unknown>)[kind];
    if (typeof body !== 'object' || body === null) throw new KVError('INVALID_ARGUMENT', `${where}: ${kind} takes an object with a key`);
    const { key: keyInput, value: valueInput, ttlMs: ttlInput } = body as { key?: unknown; value?: unknown; ttlMs?: unknown };
    const key = keyAt(keyInput, where);
    keys.push(keyInput as string);
    if (kind === 'put') {
      const value = valueAt(valueInput, where);
      const ttlMs = withPlace(where, () => ttlOf(ttlInput));
      ops.push({ op: { $case: 'put', value: { key, value, ttlMs } } });
      uses.push({ key, value, writes: true, ttlMs });
    } else if (kind === 'delete') {
      ops.push({ op: { $case: 'delete', value: { key } } });
      uses.push({ key, writes: true });
    } else {
      ops.push({ op: { $case: 'get', value: { key } } });
      uses.push({ key, writes: false });
    }
  }
  return { ops, uses, keys };
}

function listOf(input: unknown, name: string): readonly unknown[] {
  if (input === undefined) return [];
  if (!Array.isArray(input)) throw new KVError('INVALID_ARGUMENT', `txn ${name} must be an array`);
  return input;
}

function keyAt(key: unknown, where: string): Buffer {
  return withPlace(where, () => keyToBytes(key));
}

function valueAt(value: unknown, where: string): Buffer {
  return withPlace(where, () => valueToBytes(value));
}

/** Runs a check, prefixing its INVALID_ARGUMENT message with where in the transaction it failed. */
function withPlace<T>(where: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof KVError) throw new KVError('INVALID_ARGUMENT', `${where}: ${error.message}`);
    throw error;
  }
}
