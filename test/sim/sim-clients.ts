/**
 * Simulated clients: each issues one operation at a time — get, put, delete, cas — on a
 * small keyspace, through the node's real `KvRequestExecutor` (what the gRPC service calls),
 * over a client network with delays. A client follows NOT_LEADER hints, moves to another
 * replica's node when one is silent or unavailable, and retries a write inside its session
 * (same client id and seq), so a write is applied at most once however often it is sent.
 * Every operation is recorded for the linearizability checker: a write the client gave up
 * on is `unknown` (it may still apply, at any time after it was invoked).
 */
import type { Operation, OperationFields } from '../../src/chaos/index.js';
import { ErrorCode, type Error as KvError } from '../../src/gen/kvstore/v1/kvstore.js';
import type { KvRequestExecutor } from '../../src/node/kv-service.js';
import type { SeededRandom } from '../../src/raft/index.js';
import { SimProcess, type SimScheduler } from './sim-scheduler.js';

/** What the clients need from the cluster. */
export interface ClientCluster {
  /** The shard of a key. */
  shardOf(key: string): number;
  /** Nodes that host a replica of the shard, as the manager's map says. */
  nodesOf(shardId: number): string[];
  /** The executor of the node's running process and that process, or undefined when it is down. */
  endpoint(nodeId: string): { executor: KvRequestExecutor; process: SimProcess } | undefined;
  /** One client-network delay (ms). */
  delay(): number;
}

/** Client settings. */
export interface ClientOptions {
  clients: number;
  /** Clients that only read (they keep leases busy, as read-heavy workloads do). */
  readers: number;
  keys: readonly string[];
  /** No answer from a node within this: try another (ms). */
  attemptTimeoutMs: number;
  /** Give up on an operation after this (ms): a write is then `unknown`. */
  giveUpMs: number;
  /** Largest pause between two operations of one client (ms). */
  maxThinkMs: number;
}

/** The id of the final reads in the history (the checker's convention). */
export const FINAL_READ_CLIENT = -1;

type Request =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string; seq: number }
  | { kind: 'delete'; key: string; seq: number }
  | { kind: 'cas'; key: string; expectedVersion: number; value: string; seq: number };

/** The answer of one attempt, reduced to what the client acts on. */
type Answer =
  | { ok: true; fields: OperationFields; version?: number }
  | { ok: false; error: KvError };

interface InFlight {
  id: number;
  client: number;
  request: Request;
  invokedAtMs: number;
  attempt: number;
  nodeIndex: number;
  finished: boolean;
  done: (operation: Operation | undefined) => void;
}

/** The clients of one run and the history they record. */
export class SimClients {
  readonly history: Operation[] = [];
  private readonly process = new SimProcess('clients');
  private nextId = 0;
  private running = false;
  private inFlight = 0;
  private readonly leaderGuess = new Map<number, string>();
  /** No client issues a new operation before this (global ms): a lull (`Scenario.lullRate`). */
  private lullUntilMs = 0;

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly random: SeededRandom,
    private readonly cluster: ClientCluster,
    private readonly options: ClientOptions,
  ) {}

  /** Starts every client's loop. */
  start(): void {
    this.running = true;
    for (let client = 0; client < this.options.clients + this.options.readers; client++) {
      const state = { seq: 0, versions: new Map<string, number>() };
      const next = (): void => {
        if (!this.running) return;
        if (this.scheduler.nowMs < this.lullUntilMs) {
          this.scheduler.at(this.lullUntilMs + this.random.nextInt(this.options.maxThinkMs + 1), this.process, next);
          return;
        }
        this.issue(client, this.pickRequest(client, state), (operation) => {
          if (operation !== undefined) {
            const seen = versionSeen(operation);
            if (seen !== undefined) state.versions.set(operation.key, seen);
          }
          this.scheduler.after(this.random.nextInt(this.options.maxThinkMs + 1), this.process, next);
        });
      };
      this.scheduler.after(this.random.nextInt(this.options.maxThinkMs + 1), this.process, next);
    }
  }

  /** No new operations for `durationMs`: those in flight finish, then the groups fall idle. */
  lull(durationMs: number): void {
    this.lullUntilMs = Math.max(this.lullUntilMs, this.scheduler.nowMs + durationMs);
  }

  /** Stops issuing new operations; those in flight finish or give up (see {@link idle}). */
  stop(): void {
    this.running = false;
  }

  /** True when no operation is in flight. */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  /** One read of `key` as client `client` (the final reads); resolves with the recorded operation. */
  read(client: number, key: string): Promise<Operation | undefined> {
    return new Promise((resolve) => this.issue(client, { kind: 'get', key }, resolve));
  }

  /** One put as client `client` (liveness probes); resolves with the recorded operation. */
  write(client: number, key: string, value: string, seq: number): Promise<Operation | undefined> {
    return new Promise((resolve) => this.issue(client, { kind: 'put', key, value, seq }, resolve));
  }

  private pickRequest(client: number, state: { seq: number; versions: Map<string, number> }): Request {
    const keys = this.options.keys;
    const key = keys[this.random.nextInt(keys.length)] as string;
    const roll = client < this.options.clients ? this.random.nextInt(100) : 0;
    if (roll < 40) return { kind: 'get', key };
    state.seq += 1;
    const value = `c${client}.${state.seq}`;
    if (roll < 70) return { kind: 'put', key, value, seq: state.seq };
    if (roll < 80) return { kind: 'delete', key, seq: state.seq };
    return { kind: 'cas', key, expectedVersion: state.versions.get(key) ?? 0, value, seq: state.seq };
  }

  private issue(client: number, request: Request, done: (operation: Operation | undefined) => void): void {
    this.inFlight += 1;
    const call: InFlight = {
      id: this.nextId++, client, request, invokedAtMs: this.scheduler.nowMs, attempt: 0, nodeIndex: this.random.nextInt(8), finished: false,
      done: (operation) => {
        this.inFlight -= 1;
        done(operation);
      },
    };
    this.scheduler.after(this.options.giveUpMs, this.process, () => this.giveUp(call));
    this.attempt(call, this.leaderGuess.get(this.cluster.shardOf(request.key)));
  }

  private attempt(call: InFlight, preferred: string | undefined): void {
    if (call.finished) return;
    const attempt = ++call.attempt;
    const shardId = this.cluster.shardOf(call.request.key);
    const nodes = this.cluster.nodesOf(shardId);
    let nodeId = preferred;
    if (nodeId === undefined || !nodes.includes(nodeId)) nodeId = nodes[call.nodeIndex++ % Math.max(1, nodes.length)];
    if (nodeId === undefined) {
      this.scheduler.after(50, this.process, () => this.attempt(call, undefined));
      return;
    }
    const target = nodeId;
    this.scheduler.after(this.options.attemptTimeoutMs, this.process, () => {
      if (call.attempt === attempt) this.attempt(call, undefined);
    });
    const endpoint = this.cluster.endpoint(target);
    if (endpoint === undefined) return; // connection refused: the attempt times out
    const answer = (result: Answer): void => {
      this.scheduler.after(this.cluster.delay(), this.process, () => {
        if (call.attempt === attempt) this.onAnswer(call, target, shardId, result);
      });
    };
    this.scheduler.after(this.cluster.delay(), endpoint.process, () => send(endpoint.executor, call, answer));
  }

  private onAnswer(call: InFlight, nodeId: string, shardId: number, answer: Answer): void {
    if (call.finished) return;
    if (answer.ok) {
      this.leaderGuess.set(shardId, nodeId);
      this.finish(call, answer.fields);
      return;
    }
    const error = answer.error;
    switch (error.code) {
      case ErrorCode.ERROR_CODE_NOT_LEADER:
        if (error.leaderNodeId !== '') {
          this.leaderGuess.set(shardId, error.leaderNodeId);
          this.attempt(call, error.leaderNodeId);
          return;
        }
        break;
      case ErrorCode.ERROR_CODE_INVALID_ARGUMENT:
        // Including a retry that is another write: these clients resend exactly what they sent.
        throw new Error(`simulated client sent an invalid request: ${error.message}`);
      default:
        break;
    }
    this.leaderGuess.delete(shardId);
    call.attempt += 1; // the pending timeout of this attempt no longer applies
    const retryAttempt = call.attempt;
    this.scheduler.after(10 + this.random.nextInt(40), this.process, () => {
      if (call.attempt === retryAttempt) this.attempt(call, undefined);
    });
  }

  private giveUp(call: InFlight): void {
    if (call.finished) return;
    const request = call.request;
    switch (request.kind) {
      case 'get':
        this.finish(call, { type: 'get', status: 'failed', error: 'TIMEOUT' });
        return;
      case 'put':
        this.finish(call, { type: 'put', value: request.value, status: 'unknown', error: 'TIMEOUT' });
        return;
      case 'delete':
        this.finish(call, { type: 'delete', status: 'unknown', error: 'TIMEOUT' });
        return;
      case 'cas':
        this.finish(call, { type: 'cas', expectedVersion: request.expectedVersion, value: request.value, status: 'unknown', error: 'TIMEOUT' });
        return;
    }
  }

  private finish(call: InFlight, fields: OperationFields): void {
    call.finished = true;
    call.attempt += 1;
    const operation: Operation = {
      ...fields, id: call.id, client: call.client, key: call.request.key, invokedAtMs: call.invokedAtMs, completedAtMs: this.scheduler.nowMs,
    };
    this.history.push(operation);
    call.done(operation);
  }
}

/** Runs one attempt of `call` on a node's executor. */
function send(executor: KvRequestExecutor, call: InFlight, answer: (answer: Answer) => void): void {
  const request = call.request;
  const key = Buffer.from(request.key, 'utf8');
  const session = request.kind === 'get' ? undefined : { clientId: `client-${call.client}`, seq: request.seq };
  switch (request.kind) {
    case 'get':
      executor.get({ key, epoch: 0 }, (response) => {
        if (response.error !== undefined) answer({ ok: false, error: response.error });
        else answer({ ok: true, fields: { type: 'get', status: 'ok', value: response.found ? Buffer.from(response.value).toString('utf8') : null, version: response.found ? response.version : 0 } });
      });
      return;
    case 'put':
      executor.put({ key, value: Buffer.from(request.value, 'utf8'), session, epoch: 0, ttlMs: 0 }, (response) => {
        if (response.error !== undefined) answer({ ok: false, error: response.error });
        else answer({ ok: true, fields: { type: 'put', value: request.value, status: 'ok' } });
      });
      return;
    case 'delete':
      executor.delete({ key, session, epoch: 0 }, (response) => {
        if (response.error !== undefined) answer({ ok: false, error: response.error });
        else answer({ ok: true, fields: { type: 'delete', status: 'ok', existed: response.existed } });
      });
      return;
    case 'cas':
      executor.cas({ key, expectedVersion: request.expectedVersion, value: Buffer.from(request.value, 'utf8'), session, epoch: 0 }, (response) => {
        const error = response.error;
        if (error !== undefined && error.code === ErrorCode.ERROR_CODE_CONFLICT) {
          answer({ ok: true, fields: { type: 'cas', expectedVersion: request.expectedVersion, value: request.value, status: 'conflict', currentVersion: response.currentVersion } });
        } else if (error !== undefined) {
          answer({ ok: false, error });
        } else {
          answer({ ok: true, fields: { type: 'cas', expectedVersion: request.expectedVersion, value: request.value, status: 'ok', version: response.version } });
        }
      });
      return;
  }
}

/** The version an operation observed for its key, if any. */
function versionSeen(operation: Operation): number | undefined {
  if (operation.type === 'get' && operation.status === 'ok') return operation.version;
  if (operation.type === 'cas' && operation.status === 'ok') return operation.version;
  if (operation.type === 'cas' && operation.status === 'conflict') return operation.currentVersion;
  return undefined;
}
