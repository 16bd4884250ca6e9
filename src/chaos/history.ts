/**
 * The history a chaos run records: one entry per client operation with its invocation and completion
 * times on one monotonic clock, its input and its outcome. The checker (checker.ts) reads it; the
 * report writes it as JSON lines (`history.jsonl`), one operation per line.
 *
 * Outcomes follow the client's contract (DESIGN.md §6): a write that failed with TIMEOUT or
 * UNAVAILABLE is `unknown` — it may or may not have taken effect, at any time after its invocation —
 * and a failed read is `failed`: it observed nothing, so the checker drops it.
 *
 * A transaction (issue 18) is one operation on several keys of one shard: its compares, both
 * branches, and for a known outcome which branch ran and every result. Every other operation
 * touches its one `key`; {@link keysOf} gives the keys of any operation.
 *
 * A put, single or in a transaction, may carry `ttlMs` (issue 18): the key then expires that long
 * after the put, in the shard's log time (docs/transactions-and-ttl.md); expiry.ts says what the
 * checker may assume about when.
 */

/** Fields every operation has. */
interface OperationBase {
  /** Unique within the history, in invocation order. */
  id: number;
  /** The client (worker) that issued it: sequential per client. Negative for the final reads. */
  client: number;
  /** The key; for a transaction the first key it names ({@link keysOf} gives them all). */
  key: string;
  /** Monotonic milliseconds since the run started, when the call was made. */
  invokedAtMs: number;
  /**
   * When the call returned (or failed). For an `unknown` outcome this is when the client gave up;
   * the write itself may still take effect later, so the checker ignores it.
   */
  completedAtMs: number;
  /** The client error code for `unknown` and `failed` outcomes. */
  error?: string;
}

/** A read: `value` null when the key was absent (its version is then 0). */
export interface GetOperation extends OperationBase {
  type: 'get';
  status: 'ok' | 'failed';
  /** The value read (status `ok`). */
  value?: string | null;
  /** The version read: the Raft index of the write that produced the value; 0 when absent. */
  version?: number;
}

/** A blind write. Values are unique per history, so a read names the write it saw. */
export interface PutOperation extends OperationBase {
  type: 'put';
  value: string;
  status: 'ok' | 'unknown';
  /** The put's TTL: the key expires this long after the put (log time). Absent: it never expires. */
  ttlMs?: number;
}

/** Compare-and-set: writes `value` only if the key's version is `expectedVersion` (0 = absent). */
export interface CasOperation extends OperationBase {
  type: 'cas';
  expectedVersion: number;
  value: string;
  status: 'ok' | 'conflict' | 'unknown';
  /** The new version (status `ok`). */
  version?: number;
  /** The version the node found instead (status `conflict`), 0 when the key was absent. */
  currentVersion?: number;
}

/** A delete: the key is absent afterwards; `existed` says whether it was present (status `ok`). */
export interface DeleteOperation extends OperationBase {
  type: 'delete';
  status: 'ok' | 'unknown';
  existed?: boolean;
}

/**
 * One compare of a transaction, as the client sent it: the key holds exactly `value`; or its
 * version is `version` (0: absent); or it exists (`exists: true`) or is absent (`exists: false`).
 */
export type TxnCompareRecord = { key: string; value: string } | { key: string; version: number } | { key: string; exists: boolean };

/** One operation of a transaction's branch; a put may carry a TTL, as a single put does. */
export type TxnStep = { op: 'put'; key: string; value: string; ttlMs?: number } | { op: 'delete'; key: string } | { op: 'get'; key: string };

/**
 * The result of one operation of the branch that ran, in branch order. A get sees the puts and
 * deletes before it in the branch; `value` null (version 0) when the key was absent.
 */
export type TxnStepResult =
  | { op: 'put'; key: string; version: number }
  | { op: 'delete'; key: string; existed: boolean }
  | { op: 'get'; key: string; value: string | null; version: number };

/**
 * A transaction: if every compare holds, `success` runs, else `failure`, atomically, as one Raft
 * entry. Status `ok` records which branch ran and its results; `unknown` (TIMEOUT, UNAVAILABLE)
 * means it may have run either branch the state allowed, at any time after its invocation, or not
 * at all.
 */
export interface TxnOperation extends OperationBase {
  type: 'txn';
  compare: TxnCompareRecord[];
  success: TxnStep[];
  failure: TxnStep[];
  status: 'ok' | 'unknown';
  /** Whether the compares held and `success` ran (status `ok`). */
  succeeded?: boolean;
  /** The results of the branch that ran, in its order (status `ok`). */
  results?: TxnStepResult[];
}

/** One recorded operation. */
export type Operation = GetOperation | PutOperation | CasOperation | DeleteOperation | TxnOperation;

/** The value a single-key operation writes (null for a delete), or undefined for a read or a transaction (see {@link possibleWrites}). */
export function writtenValue(operation: Operation): string | null | undefined {
  if (operation.type === 'get' || operation.type === 'txn') return undefined;
  return operation.type === 'delete' ? null : operation.value;
}

/** Every key an operation touches, each once, in the order the operation names them. */
export function keysOf(operation: Operation): string[] {
  if (operation.type !== 'txn') return [operation.key];
  const keys = new Set<string>();
  for (const compare of operation.compare) keys.add(compare.key);
  for (const step of [...operation.success, ...operation.failure]) keys.add(step.key);
  return [...keys];
}

/** The branch a transaction ran, when its outcome is known. */
export function branchRan(operation: TxnOperation): TxnStep[] | undefined {
  if (operation.status !== 'ok' || operation.succeeded === undefined) return undefined;
  return operation.succeeded ? operation.success : operation.failure;
}

/** A write an operation may have made: `value` null for a delete; `ttlMs` for a put with a TTL. */
export interface PossibleWrite {
  key: string;
  value: string | null;
  ttlMs?: number;
}

/**
 * The writes an operation may have made. A transaction's come from the branch that ran, or from
 * both branches when its outcome is unknown; a refused cas wrote nothing. A cas never has a TTL
 * (it clears one, as a put without a TTL does).
 */
export function possibleWrites(operation: Operation): PossibleWrite[] {
  switch (operation.type) {
    case 'get':
      return [];
    case 'put':
      return [{ key: operation.key, value: operation.value, ...ttlOf(operation) }];
    case 'cas':
      return operation.status === 'conflict' ? [] : [{ key: operation.key, value: operation.value }];
    case 'delete':
      return [{ key: operation.key, value: null }];
    case 'txn': {
      const steps = branchRan(operation) ?? [...operation.success, ...operation.failure];
      return steps.flatMap((step): PossibleWrite[] => {
        if (step.op === 'get') return [];
        return [step.op === 'put' ? { key: step.key, value: step.value, ...ttlOf(step) } : { key: step.key, value: null }];
      });
    }
  }
}

/**
 * The writes an operation was acknowledged for: an `ok` put or cas, or the puts of an `ok`
 * transaction's branch that ran; each with its TTL, if it had one.
 */
export function acknowledgedPuts(operation: Operation): { key: string; value: string; ttlMs?: number }[] {
  if (operation.type === 'put' && operation.status === 'ok') return [{ key: operation.key, value: operation.value, ...ttlOf(operation) }];
  if (operation.type === 'cas' && operation.status === 'ok') return [{ key: operation.key, value: operation.value }];
  if (operation.type !== 'txn') return [];
  return (branchRan(operation) ?? []).flatMap((step) => (step.op === 'put' ? [{ key: step.key, value: step.value, ...ttlOf(step) }] : []));
}

/** `{ ttlMs }` for a put with a TTL, else `{}`: spread into a write so an absent TTL stays absent. */
function ttlOf(put: { ttlMs?: number }): { ttlMs?: number } {
  return put.ttlMs === undefined ? {} : { ttlMs: put.ttlMs };
}

/** True for an operation whose outcome is not known: it may or may not have taken effect. */
export function isIndeterminate(operation: Operation): boolean {
  return operation.status === 'unknown';
}

/** True for an operation the checker uses: everything but failed reads. */
export function isCheckable(operation: Operation): boolean {
  return !(operation.type === 'get' && operation.status === 'failed');
}

/** True when `first` returned before `second` was invoked: the real-time order linearizability keeps. */
export function precedes(first: Operation, second: Operation): boolean {
  return !isIndeterminate(first) && first.completedAtMs < second.invokedAtMs;
}

/**
 * Collects operations from concurrent workers. `invoke` stamps the start on the monotonic clock;
 * the returned function stamps the end and appends the finished operation.
 */
export class HistoryRecorder {
  private readonly operations: Operation[] = [];
  private nextId = 0;
  private readonly startedAtMs: number;

  /** `nowMs` is the monotonic clock; `performance.now()` unless a test injects one. */
  constructor(private readonly nowMs: () => number = () => performance.now()) {
    this.startedAtMs = nowMs();
  }

  /** Milliseconds since the recorder was created, on the same clock as the operations. */
  elapsedMs(): number {
    return this.nowMs() - this.startedAtMs;
  }

  /**
   * Starts an operation. Call the returned function with the rest of the fields once it completes;
   * it returns the recorded operation.
   */
  invoke(client: number, key: string): { id: number; complete: <T extends OperationFields>(fields: T) => Operation } {
    const id = this.nextId++;
    const invokedAtMs = this.elapsedMs();
    return {
      id,
      complete: (fields) => {
        const operation: Operation = { ...fields, id, client, key, invokedAtMs, completedAtMs: this.elapsedMs() };
        this.operations.push(operation);
        return operation;
      },
    };
  }

  /** The operations recorded so far, in invocation order. */
  history(): Operation[] {
    return [...this.operations].sort((a, b) => a.id - b.id);
  }
}

/** What a worker supplies when an operation completes: everything but the fields the recorder stamps. */
export type OperationFields =
  | Omit<GetOperation, keyof OperationBase | 'error'> & { error?: string }
  | Omit<PutOperation, keyof OperationBase | 'error'> & { error?: string }
  | Omit<CasOperation, keyof OperationBase | 'error'> & { error?: string }
  | Omit<DeleteOperation, keyof OperationBase | 'error'> & { error?: string }
  | Omit<TxnOperation, keyof OperationBase | 'error'> & { error?: string };

/** One JSON line per operation, in invocation order. */
export function historyToJsonLines(operations: readonly Operation[]): string {
  return operations.map((operation) => JSON.stringify(operation)).join('\n') + (operations.length > 0 ? '\n' : '');
}

/** Parses `history.jsonl` back; throws on a line that is not an operation (a corrupt or foreign file). */
export function historyFromJsonLines(text: string): Operation[] {
  const operations: Operation[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const parsed: unknown = JSON.parse(line);
    if (!isOperation(parsed)) throw new Error(`history line ${index + 1} is not an operation`);
    operations.push(parsed);
  }
  return operations;
}

function isOperation(value: unknown): value is Operation {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record['id'] === 'number' &&
    typeof record['client'] === 'number' &&
    typeof record['key'] === 'string' &&
    typeof record['invokedAtMs'] === 'number' &&
    typeof record['completedAtMs'] === 'number' &&
    (record['type'] === 'get' || record['type'] === 'put' || record['type'] === 'cas' || record['type'] === 'delete' ||
      (record['type'] === 'txn' && Array.isArray(record['compare']) && Array.isArray(record['success']) && Array.isArray(record['failure']))) &&
    typeof record['status'] === 'string'
  );
}

/**
 * Groups operations by their `key` field (a transaction goes under its first key). The checker
 * groups by object instead (`partitionByObject` in checker.ts): keys a transaction ties together
 * are checked as one.
 */
export function partitionByKey(operations: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const operation of operations) {
    let list = byKey.get(operation.key);
    if (list === undefined) {
      list = [];
      byKey.set(operation.key, list);
    }
    list.push(operation);
  }
  return byKey;
}

/** One line describing an operation, for reports: `c2 cas(v41→"c2.17") ok v57`. */
export function describeOperation(operation: Operation): string {
  const who = operation.client < 0 ? 'final' : `c${operation.client}`;
  switch (operation.type) {
    case 'get':
      return operation.status === 'ok'
        ? `${who} get → ${operation.value === null || operation.value === undefined ? 'absent' : `"${operation.value}" v${operation.version ?? '?'}`}`
        : `${who} get failed (${operation.error ?? 'error'})`;
    case 'put':
      return `${who} put "${operation.value}"${ttlText(operation)} ${operation.status === 'ok' ? 'ok' : `unknown (${operation.error ?? 'error'})`}`;
    case 'delete':
      return `${who} delete ${operation.status === 'ok' ? `ok (${operation.existed === true ? 'existed' : 'absent'})` : `unknown (${operation.error ?? 'error'})`}`;
    case 'cas': {
      const call = `${who} cas(v${operation.expectedVersion} → "${operation.value}")`;
      if (operation.status === 'ok') return `${call} ok v${operation.version ?? '?'}`;
      if (operation.status === 'conflict') return `${call} conflict, found v${operation.currentVersion ?? '?'}`;
      return `${call} unknown (${operation.error ?? 'error'})`;
    }
    case 'txn':
      return `${who} ${describeTxn(operation)}`;
  }
}

/**
 * `txn(a@v4, b exists) ? put a="c1.7", put b="c1.8" : get a, get b → succeeded: put v9, put v9`;
 * `→ failed: get "c0.3" v4, get absent`; `→ unknown (TIMEOUT)`.
 */
function describeTxn(operation: TxnOperation): string {
  const compares = operation.compare.map((compare) => {
    if ('value' in compare) return `${compare.key}="${compare.value}"`;
    if ('version' in compare) return `${compare.key}@v${compare.version}`;
    return `${compare.key} ${compare.exists ? 'exists' : 'absent'}`;
  });
  const steps = (branch: readonly TxnStep[]): string =>
    branch.length === 0 ? 'nothing' : branch.map((step) => (step.op === 'put' ? `put ${step.key}="${step.value}"${ttlText(step)}` : `${step.op} ${step.key}`)).join(', ');
  const call = `txn(${compares.join(', ')}) ? ${steps(operation.success)} : ${steps(operation.failure)}`;
  if (operation.status !== 'ok' || operation.succeeded === undefined) return `${call} → unknown (${operation.error ?? 'error'})`;
  const results = (operation.results ?? []).map((result) => {
    if (result.op === 'put') return `put v${result.version}`;
    if (result.op === 'delete') return `delete ${result.existed ? 'existed' : 'absent'}`;
    return result.value === null ? 'get absent' : `get "${result.value}" v${result.version}`;
  });
  return `${call} → ${operation.succeeded ? 'succeeded' : 'failed'}${results.length === 0 ? '' : `: ${results.join(', ')}`}`;
}

/** ` ttl 800ms` for a put with a TTL, else nothing. */
function ttlText(put: { ttlMs?: number }): string {
  return put.ttlMs === undefined ? '' : ` ttl ${put.ttlMs}ms`;
}
