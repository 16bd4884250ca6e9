/**
 * The chaos workload: C workers, each with its own KVClient (its own session and cached routes),
 * issue random get / put / cas on a small key set so keys are contended, and record each call in the
 * history. Every written value is unique (`c<client>.<seq>`), so a read names the write it saw.
 *
 * Outcomes map to the history as the client contract says (DESIGN.md §6): TIMEOUT or UNAVAILABLE on
 * a write is `unknown`; CONFLICT on a cas is a definite refusal carrying the version found; a read
 * that failed is recorded as `failed` and dropped by the checker.
 */
import { KVClient, KVError } from '../client/index.js';
import type { HistoryRecorder, Operation } from './history.js';
import { FINAL_READ_CLIENT } from './lost-writes.js';
import type { SeededRandom } from '../common/index.js';
import type { ClientCredentials } from '../cluster/index.js';

/** Workload settings. */
export interface WorkloadOptions {
  managerAddress: string;
  clients: number;
  keys: readonly string[];
  /** Deadline of one call. Short enough that a worker stuck on a dead node moves on within a fault. */
  operationTimeoutMs: number;
  /** Each worker waits up to this long (uniformly) between calls, to keep the CPU load moderate. */
  maxThinkTimeMs: number;
  random: SeededRandom;
  /** What the clients present (TLS, a token); none for a plaintext, open cluster. */
  credentials?: ClientCredentials;
}

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
   * Reads every key once more through a fresh client after the cluster healed, retrying failed reads
   * until `deadlineMs`. These reads are in the history as client {@link FINAL_READ_CLIENT}.
   */
  async finalReads(deadlineMs: number): Promise<{ read: number; unread: string[] }> {
    const client = this.newClient();
    const unread: string[] = [];
    try {
      for (const key of this.options.keys) {
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
    return { read: this.options.keys.length - unread.length, unread };
  }

  /** Finalizes every client. */
  async close(): Promise<void> {
    await Promise.all([...this.workers, ...(this.probeReader === undefined ? [] : [this.probeReader])].map((client) => client.finalize()));
  }

  private async runWorker(index: number, client: KVClient, random: SeededRandom, signal: AbortSignal): Promise<void> {
    const knownVersions = new Map<string, number>();
    while (!signal.aborted) {
      const key = random.pick(this.options.keys);
      const roll = random.nextFloat();
      let operation: Operation;
      if (roll < 0.4) operation = await this.get(index, client, key);
      else if (roll < 0.7) operation = await this.put(index, client, key);
      else operation = await this.cas(index, client, key, knownVersions.get(key) ?? 0);
      const seen = versionSeen(operation);
      if (seen !== undefined) knownVersions.set(key, seen);
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

  private async put(clientId: number, client: KVClient, key: string): Promise<Operation> {
    const value = this.nextValue(clientId);
    const call = this.recorder.invoke(clientId, key);
    try {
      await client.put(key, value, { timeoutMs: this.options.operationTimeoutMs });
      return call.complete({ type: 'put', value, status: 'ok' });
    } catch (error) {
      return call.complete({ type: 'put', value, status: 'unknown', error: errorCode(error) });
    }
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

/** The version an operation observed, for the worker's next cas. */
function versionSeen(operation: Operation): number | undefined {
  if (operation.type === 'get' && operation.status === 'ok') return operation.version;
  if (operation.type === 'cas' && operation.status === 'ok') return operation.version;
  if (operation.type === 'cas' && operation.status === 'conflict') return operation.currentVersion;
  return undefined;
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
