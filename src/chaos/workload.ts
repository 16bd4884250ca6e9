/**
 * The chaos workload: C workers, each with its own KVClient (its own session and cached routes),
 * issue random get / put / cas on a small key set so keys are contended, and record each call in the
 * history. Every written value is unique (`c<client>.<seq>`), so a read names the write it saw.
 *
 * A fraction of the calls are transactions (issue 18) on a group of keys under one hash tag: a
 * read of the whole group; a transfer that puts new values to two or three keys if their versions
 * are still the ones the worker last saw; a conditional put guarded by another key's value or
 * absence; and a delete-and-put. Every transaction's failure branch reads the keys it compared, so
 * a failed one names what it found (which keeps the checker's search small: unobserved-writes.ts),
 * and a delete is preceded by a read of its key in the same branch. Single-key operations reach the
 * group keys too, so both kinds interleave on them.
 *
 * A fraction of the puts, single and in transactions, carry a TTL (issue 18), log-uniform from
 * {@link MIN_TTL_MS} to {@link MAX_TTL_MS}: keys are written several times a second, so the short
 * ones often run out before the next write and a read finds the key expired, while the long ones
 * are mostly overwritten first (which clears the TTL). Cas has no TTL. The stale-read probe's
 * writes never have one.
 *
 * Outcomes map to the history as the client contract says (DESIGN.md §6): TIMEOUT or UNAVAILABLE on
 * a write is `unknown`; CONFLICT on a cas is a definite refusal carrying the version found; a read
 * that failed is recorded as `failed` and dropped by the checker.
 */
import { KVClient, KVError } from '../client/index.js';
import type { KVTxnOp } from '../client/index.js';
import type { HistoryRecorder, Operation, TxnCompareRecord, TxnOperation, TxnStep, TxnStepResult } from './history.js';
import { FINAL_READ_CLIENT } from './lost-writes.js';
import type { SeededRandom } from '../common/index.js';
import type { ClientCredentials } from '../cluster/index.js';

/** Workload settings. */
export interface WorkloadOptions {
  managerAddress: string;
  clients: number;
  keys: readonly string[];
  /** Key groups for transactions: the keys of one group share a hash tag, so one shard. Empty: no transactions. */
  groups: readonly (readonly string[])[];
  /** Fraction of each worker's calls that are transactions on one group, 0…1. */
  transactionFraction: number;
  /** Fraction of puts (single, and each put of a transaction) that carry a TTL, 0…1; 0 draws nothing, so the workload is as without TTLs. */
  ttlFraction: number;
  /** Deadline of one call. Short enough that a worker stuck on a dead node moves on within a fault. */
  operationTimeoutMs: number;
  /** Each worker waits up to this long (uniformly) between calls, to keep the CPU load moderate. */
  maxThinkTimeMs: number;
  random: SeededRandom;
  /** What the clients present (TLS, a token); none for a plaintext, open cluster. */
  credentials?: ClientCredentials;
}

/** The shortest TTL the workload gives: well above a call's latency, so the put's own client can read the key back. */
export const MIN_TTL_MS = 200;
/** The longest TTL the workload gives: a few seconds, longer than most keys go without a write. */
export const MAX_TTL_MS = 3000;

/** Client ids of the stale-read probe's reader and writer (workers are 0…C-1). */
const PROBE_READER_CLIENT = 1000;
const PROBE_WRITER_CLIENT = 1001;

/** The workers and the probe clients of one run. */
export class Workload {
  private readonly workers: KVClient[] = [];
  private probeReader: KVClient | undefined;
  private sequence = 0;

  constructor(
    private readonly options: WorkloadOptions,
    private readonly recorder: HistoryRecorder,
  ) {}

  /** Creates and initializes the clients (fetching the map), retrying until `deadlineMs` (performance.now()). */
  async start(deadlineMs: number): Promise<void> {
    for (let i = 0; i < this.options.clients; i++) this.workers.push(this.newClient());
    this.probeReader = this.newClient();
    for (const client of [...this.workers, this.probeReader]) await initWithin(client, deadlineMs);
  }

  /** Runs every worker until `signal` aborts; the calls in flight then finish (each within its deadline). */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.workers.map((client, index) => this.runWorker(index, client, this.options.random.fork(index), signal)));
  }

  /** The probe's reader reads `key`, warming its route to the shard's current leader. */
  async probeRead(key: string): Promise<Operation> {
    return this.get(PROBE_READER_CLIENT, this.reader(), key);
  }

  /**
   * The probe's writer writes `key` through a fresh client, whose map comes from the manager now (so
   * it reaches a newly elected leader). Resolves to the recorded operation.
   */
  async probeWrite(key: string): Promise<Operation> {
    const client = this.newClient();
    try {
      return await this.put(PROBE_WRITER_CLIENT, client, key);
    } finally {
      await client.finalize();
    }
  }

  /**
   * Reads every key (the groups' too) once more through a fresh client after the cluster healed,
   * retrying failed reads until `deadlineMs`. These reads are in the history as client
   * {@link FINAL_READ_CLIENT}.
   */
  async finalReads(deadlineMs: number): Promise<{ read: number; unread: string[] }> {
    const client = this.newClient();
    const unread: string[] = [];
    const keys = this.allKeys();
    try {
      for (const key of keys) {
        let done = false;
        while (!done && performance.now() < deadlineMs) {
          const operation = await this.get(FINAL_READ_CLIENT, client, key);
          done = operation.status === 'ok';
        }
        if (!done) unread.push(key);
      }
    } finally {
      await client.finalize();
    }
    return { read: keys.length - unread.length, unread };
  }

  /** Finalizes every client. */
  async close(): Promise<void> {
    await Promise.all([...this.workers, ...(this.probeReader === undefined ? [] : [this.probeReader])].map((client) => client.finalize()));
  }

  private async runWorker(index: number, client: KVClient, random: SeededRandom, signal: AbortSignal): Promise<void> {
    const known = new Map<string, Seen>();
    const keys = this.allKeys();
    const { groups, transactionFraction } = this.options;
    while (!signal.aborted) {
      if (groups.length > 0 && random.nextFloat() < transactionFraction) {
        await this.transaction(index, client, random.pick(groups), random, known);
      } else {
        const key = random.pick(keys);
        const roll = random.nextFloat();
        let operation: Operation;
        if (roll < 0.4) operation = await this.get(index, client, key);
        else if (roll < 0.7) operation = await this.put(index, client, key, this.ttl(random));
        else operation = await this.cas(index, client, key, known.get(key)?.version ?? 0);
        learn(known, operation);
      }
      const thinkMs = random.between(0, this.options.maxThinkTimeMs);
      if (thinkMs > 0 && !signal.aborted) await new Promise((resolve) => setTimeout(resolve, thinkMs));
    }
  }

  private async get(clientId: number, client: KVClient, key: string): Promise<Operation> {
    const call = this.recorder.invoke(clientId, key);
    try {
      const entry = await client.getEntry(key, { timeoutMs: this.options.operationTimeoutMs });
      return call.complete({ type: 'get', status: 'ok', value: entry === null ? null : entry.value, version: entry === null ? 0 : entry.version });
    } catch (error) {
      return call.complete({ type: 'get', status: 'failed', error: errorCode(error) });
    }
  }

  /** A put, with a TTL when `ttlMs` is given. */
  private async put(clientId: number, client: KVClient, key: string, ttlMs?: number): Promise<Operation> {
    const value = this.nextValue(clientId);
    const ttl = ttlMs === undefined ? {} : { ttlMs };
    const call = this.recorder.invoke(clientId, key);
    try {
      await client.put(key, value, { timeoutMs: this.options.operationTimeoutMs, ...ttl });
      return call.complete({ type: 'put', value, status: 'ok', ...ttl });
    } catch (error) {
      return call.complete({ type: 'put', value, status: 'unknown', error: errorCode(error), ...ttl });
    }
  }

  /** A TTL for the next put, {@link WorkloadOptions.ttlFraction} of the time; undefined otherwise. */
  private ttl(random: SeededRandom): number | undefined {
    const { ttlFraction } = this.options;
    if (ttlFraction <= 0 || random.nextFloat() >= ttlFraction) return undefined;
    return Math.round(MIN_TTL_MS * (MAX_TTL_MS / MIN_TTL_MS) ** random.nextFloat());
  }

  private async cas(clientId: number, client: KVClient, key: string, expectedVersion: number): Promise<Operation> {
    const value = this.nextValue(clientId);
    const call = this.recorder.invoke(clientId, key);
    try {
      const version = await client.cas(key, expectedVersion, value, { timeoutMs: this.options.operationTimeoutMs });
      return call.complete({ type: 'cas', expectedVersion, value, status: 'ok', version });
    } catch (error) {
      if (error instanceof KVError && error.code === 'CONFLICT') {
        return call.complete({
          type: 'cas',
          expectedVersion,
          value,
          status: 'conflict',
          ...(error.currentVersion === undefined ? {} : { currentVersion: error.currentVersion }),
        });
      }
      return call.complete({ type: 'cas', expectedVersion, value, status: 'unknown', error: errorCode(error) });
    }
  }

  /**
   * One transaction of a random shape on `group` (see the file comment); a transfer sometimes
   * reads the group first, so its versions are fresh, and sometimes goes on what it last saw.
   */
  private async transaction(clientId: number, client: KVClient, group: readonly string[], random: SeededRandom, known: Map<string, Seen>): Promise<void> {
    const roll = random.nextFloat();
    const [x, y, z] = random.shuffle(group);
    if (x === undefined || y === undefined) throw new Error('a transaction group needs at least two keys');
    const readGroup = (): Promise<Operation> => this.txn(clientId, client, [], group.map((key) => ({ op: 'get', key })), []);
    const readBack = (...keys: string[]): TxnStep[] => keys.map((key) => ({ op: 'get', key }));
    const put = (key: string): TxnStep => {
      const ttlMs = this.ttl(random);
      return { op: 'put', key, value: this.nextValue(clientId), ...(ttlMs === undefined ? {} : { ttlMs }) };
    };
    // A version the worker knows without its value (a cas conflict's) may be one no read tied to a
    // value; compares on those keep the checker from leaving out unobserved timed-out writes, so
    // read the group first instead.
    const readIfUnsure = async (keys: readonly string[], chance: number): Promise<void> => {
      if (keys.some((key) => known.get(key)?.value === undefined) || random.nextFloat() < chance) learn(known, await readGroup());
    };
    let operation: Operation;
    if (roll < 0.25) {
      operation = await readGroup();
    } else if (roll < 0.7) {
      const moved = z !== undefined && random.nextFloat() < 1 / 3 ? [x, y, z] : [x, y];
      await readIfUnsure(moved, 0.5);
      const compare = moved.map((key): TxnCompareRecord => ({ key, version: known.get(key)?.version ?? 0 }));
      operation = await this.txn(clientId, client, compare, moved.map(put), readBack(...moved));
    } else if (roll < 0.9) {
      await readIfUnsure([x], 0);
      const seen = known.get(x)?.value;
      const guard: TxnCompareRecord = typeof seen === 'string' ? { key: x, value: seen } : { key: x, exists: false };
      operation = await this.txn(clientId, client, [guard], [put(y), { op: 'get', key: x }], readBack(x, y));
    } else {
      await readIfUnsure([x], 0);
      const compare: TxnCompareRecord[] = [{ key: x, version: known.get(x)?.version ?? 0 }];
      operation = await this.txn(clientId, client, compare, [{ op: 'get', key: y }, { op: 'delete', key: y }, put(x)], readBack(x, y));
    }
    learn(known, operation);
  }

  private async txn(clientId: number, client: KVClient, compare: TxnCompareRecord[], success: TxnStep[], failure: TxnStep[]): Promise<Operation> {
    const firstKey = compare[0]?.key ?? success[0]?.key ?? failure[0]?.key;
    if (firstKey === undefined) throw new Error('a transaction names no key');
    const call = this.recorder.invoke(clientId, firstKey);
    const fields = { type: 'txn' as const, compare, success, failure };
    try {
      const result = await client.txn(
        { compare, success: success.map(clientOp), failure: failure.map(clientOp) },
        { timeoutMs: this.options.operationTimeoutMs },
      );
      const results = result.results.map((step): TxnStepResult => {
        if (step.op !== 'get') return step;
        return { op: 'get', key: step.key, value: step.entry === null ? null : step.entry.value, version: step.entry === null ? 0 : step.entry.version };
      });
      return call.complete({ ...fields, status: 'ok', succeeded: result.succeeded, results });
    } catch (error) {
      return call.complete({ ...fields, status: 'unknown', error: errorCode(error) });
    }
  }

  private allKeys(): string[] {
    return [...this.options.keys, ...this.options.groups.flat()];
  }

  private nextValue(clientId: number): string {
    return `c${clientId}.${this.sequence++}`;
  }

  private reader(): KVClient {
    if (this.probeReader === undefined) throw new Error('workload not started');
    return this.probeReader;
  }

  private newClient(): KVClient {
    return new KVClient({ manager: this.options.managerAddress, timeoutMs: this.options.operationTimeoutMs, ...(this.options.credentials ?? {}) });
  }
}

/** What a worker last saw of a key, for its next cas or compare: the version, and the value when it knows it. */
interface Seen {
  version: number;
  value?: string | null;
}

/** Records what `operation` observed in `known`. */
function learn(known: Map<string, Seen>, operation: Operation): void {
  if (operation.type === 'get' && operation.status === 'ok' && operation.version !== undefined) {
    known.set(operation.key, { version: operation.version, value: operation.value ?? null });
  } else if (operation.type === 'cas' && operation.status === 'ok' && operation.version !== undefined) {
    known.set(operation.key, { version: operation.version, value: operation.value });
  } else if (operation.type === 'cas' && operation.status === 'conflict' && operation.currentVersion !== undefined) {
    known.set(operation.key, { version: operation.currentVersion });
  } else if (operation.type === 'txn') {
    learnFromTxn(known, operation);
  }
}

function learnFromTxn(known: Map<string, Seen>, operation: TxnOperation): void {
  const branch = operation.succeeded === true ? operation.success : operation.failure;
  (operation.results ?? []).forEach((result, i) => {
    const step = branch[i];
    if (result.op === 'get') known.set(result.key, { version: result.version, value: result.value });
    else if (result.op === 'put' && step?.op === 'put') known.set(result.key, { version: result.version, value: step.value });
    else if (result.op === 'delete') known.set(result.key, { version: 0, value: null });
  });
}

/** A recorded branch step as the client takes it. */
function clientOp(step: TxnStep): KVTxnOp {
  switch (step.op) {
    case 'put':
      return { put: { key: step.key, value: step.value, ...(step.ttlMs === undefined ? {} : { ttlMs: step.ttlMs }) } };
    case 'delete':
      return { delete: { key: step.key } };
    case 'get':
      return { get: { key: step.key } };
  }
}

/**
 * The error's code for the history. INVALID_ARGUMENT means the workload itself is wrong: that is a
 * bug, not an outcome, so it propagates.
 */
function errorCode(error: unknown): string {
  if (error instanceof KVError) {
    if (error.code === 'INVALID_ARGUMENT') throw error;
    return error.code;
  }
  throw error;
}

async function initWithin(client: KVClient, deadlineMs: number): Promise<void> {
  for (;;) {
    try {
      await client.init({ timeoutMs: 2000 });
      return;
    } catch (error) {
      if (!(error instanceof KVError) || performance.now() >= deadlineMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
