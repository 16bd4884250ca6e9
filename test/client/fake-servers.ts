/**
 * In-process fakes of the manager and of storage nodes, for unit tests of the client: real gRPC on
 * 127.0.0.1, a shared in-memory store with versions and (clientId, seq) sessions, and a per-node hook
 * that can answer with any error, hang, or break the stream.
 */
import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import {
  ErrorCode,
  KvServiceService,
  type BatchRequest,
  type BatchRequestItem,
  type BatchResponse,
  type BatchResponseItem,
  type Error as NodeError,
  type TxnOpResult,
  type TxnRequest,
  type TxnResponse,
} from '../../src/gen/kvstore/v1/kvstore.js';
import { ManagerServiceService, NodeHealth, type GetClusterMapResponse } from '../../src/gen/kvstore/v1/manager.js';
import { shardForKey } from '../../src/common/hash.js';

export type Op = NonNullable<BatchRequestItem['op']>;
export type Result = NonNullable<BatchResponseItem['result']>;

/** What a hook decides: answer with this, hang forever, break the stream, or apply and then break. */
export type HookDecision = Result | 'hang' | 'break' | 'apply-then-break' | undefined;

/** A replicated store as seen by every fake node: versions from one counter, exactly-once sessions. */
export class FakeStore {
  readonly data = new Map<string, { value: Buffer; version: number }>();
  private readonly sessions = new Map<string, Result>();
  index = 0;
  applied = 0;

  apply(op: Op): Result {
    const key = opKey(op);
    const session = op.$case === 'get' ? undefined : op.value.session;
    const sessionKey = session === undefined ? undefined : `${session.clientId}/${session.seq}`;
    if (sessionKey !== undefined) {
      const earlier = this.sessions.get(sessionKey);
      if (earlier !== undefined) return earlier;
    }
    const result = this.execute(op, key);
    if (sessionKey !== undefined) this.sessions.set(sessionKey, result);
    return result;
  }

  private execute(op: Op, key: string): Result {
    switch (op.$case) {
      case 'get': {
        const entry = this.data.get(key);
        return { $case: 'get', value: { found: entry !== undefined, value: entry?.value ?? Buffer.alloc(0), version: entry?.version ?? 0, expiresAtMs: 0, expiresInMs: 0 } };
      }
      case 'put': {
        this.applied++;
        const version = ++this.index;
        this.data.set(key, { value: Buffer.from(op.value.value), version });
        return { $case: 'put', value: { version } };
      }
      case 'delete': {
        this.applied++;
        const existed = this.data.delete(key);
        ++this.index;
        return { $case: 'delete', value: { existed } };
      }
      case 'cas': {
        const current = this.data.get(key)?.version ?? 0;
        if (current !== op.value.expectedVersion) {
          return { $case: 'cas', value: { error: nodeError(ErrorCode.ERROR_CODE_CONFLICT, 'version mismatch'), version: 0, currentVersion: current } };
        }
        this.applied++;
        const version = ++this.index;
        this.data.set(key, { value: Buffer.from(op.value.value), version });
        return { $case: 'cas', value: { version, currentVersion: 0 } };
      }
      case 'txn':
        return { $case: 'txn', value: this.executeTxn(op.value) };
    }
  }

  private executeTxn(txn: TxnRequest): TxnResponse {
    this.applied++;
    const version = ++this.index;
    const succeeded = txn.compares.every((compare) => {
      const stored = this.data.get(compare.key.toString('utf8'));
      switch (compare.target?.$case) {
        case 'value':
          return stored !== undefined && stored.value.equals(compare.target.value);
        case 'version':
          return (stored?.version ?? 0) === compare.target.value;
        case 'exists':
          return (stored !== undefined) === compare.target.value;
        case undefined:
          return false;
      }
    });
    const results: TxnOpResult[] = [];
    for (const { op } of succeeded ? txn.success : txn.failure) {
      if (op === undefined) continue;
      const key = op.value.key.toString('utf8');
      if (op.$case === 'put') {
        this.data.set(key, { value: Buffer.from(op.value.value), version });
        results.push({ result: { $case: 'put', value: { version } } });
      } else if (op.$case === 'delete') {
        results.push({ result: { $case: 'delete', value: { existed: this.data.delete(key) } } });
      } else {
        const stored = this.data.get(key);
        results.push({ result: { $case: 'get', value: { found: stored !== undefined, value: stored?.value ?? Buffer.alloc(0), version: stored?.version ?? 0 } } });
      }
    }
    return { succeeded, results };
  }
}

/** The key a request routes by: its key, or a transaction's first. */
export function opKey(op: Op): string {
  if (op.$case !== 'txn') return op.value.key.toString('utf8');
  const first = op.value.compares[0]?.key ?? op.value.success[0]?.op?.value.key ?? op.value.failure[0]?.op?.value.key;
  return first?.toString('utf8') ?? '';
}

/** A Node error message. */
export function nodeError(code: ErrorCode, message = '', extra: Partial<NodeError> = {}): NodeError {
  return { code, message, leaderNodeId: '', leaderAddress: '', epoch: 0, ...extra };
}

/** Wraps an error into the response kind of `op`. */
export function errorResult(op: Op, error: NodeError): Result {
  switch (op.$case) {
    case 'get':
      return { $case: 'get', value: { error, found: false, value: Buffer.alloc(0), version: 0, expiresAtMs: 0, expiresInMs: 0 } };
    case 'put':
      return { $case: 'put', value: { error, version: 0 } };
    case 'delete':
      return { $case: 'delete', value: { error, existed: false } };
    case 'cas':
      return { $case: 'cas', value: { error, version: 0, currentVersion: 0 } };
    case 'txn':
      return { $case: 'txn', value: { error, succeeded: false, results: [] } };
  }
}

/** One fake storage node. */
export class FakeNode {
  readonly server = new Server();
  address = '';
  /** Every op received, in order. */
  readonly received: Op[] = [];
  /** Item count of every BatchRequest received. */
  readonly batchSizes: number[] = [];
  streamsOpened = 0;
  /** Decides each answer; undefined → apply to the store. */
  hook: (op: Op, node: FakeNode) => HookDecision = () => undefined;
  private readonly streams = new Set<ServerDuplexStream<BatchRequest, BatchResponse>>();

  constructor(readonly id: string, readonly store: FakeStore) {
    const unary = (kind: Op['$case']) => (call: { request: Op['value'] }, callback: (error: ServiceError | null, response?: Result['value']) => void) => {
      const op = { $case: kind, value: call.request } as Op;
      const decision = this.decide(op);
      if (decision === 'hang') return;
      if (decision === 'break' || decision === 'apply-then-break') {
        callback({ code: GrpcStatus.UNAVAILABLE, details: 'broken', message: 'broken', name: 'Error', metadata: undefined as never });
        return;
      }
      callback(null, decision.value);
    };
    this.server.addService(KvServiceService, {
      get: unary('get'),
      put: unary('put'),
      delete: unary('delete'),
      cas: unary('cas'),
      batch: (call: ServerDuplexStream<BatchRequest, BatchResponse>) => {
        this.streamsOpened++;
        this.streams.add(call);
        call.on('data', (request: BatchRequest) => {
          this.batchSizes.push(request.items.length);
          for (const item of request.items) {
            if (item.op === undefined) continue;
            const decision = this.decide(item.op);
            if (decision === 'hang') continue;
            if (decision === 'break' || decision === 'apply-then-break') {
              this.streams.delete(call);
              call.emit('error', { code: GrpcStatus.UNAVAILABLE, details: 'broken by test' });
              return;
            }
            call.write({ items: [{ requestId: item.requestId, result: decision }] });
          }
        });
        call.on('end', () => call.end());
        call.on('error', () => this.streams.delete(call));
        call.on('close', () => this.streams.delete(call));
      },
    });
  }

  async start(port = 0): Promise<void> {
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error, actual) => (error === null ? resolve(actual) : reject(error))),
    );
    this.address = `127.0.0.1:${bound}`;
  }

  async stop(): Promise<void> {
    for (const stream of this.streams) stream.destroy();
    this.streams.clear();
    this.server.forceShutdown();
    await Promise.resolve();
  }

  private decide(op: Op): Exclude<HookDecision, undefined | 'apply-then-break'> | 'apply-then-break' {
    this.received.push(op);
    const decision = this.hook(op, this);
    if (decision === 'apply-then-break') {
      this.store.apply(op);
      return 'apply-then-break';
    }
    return decision ?? this.store.apply(op);
  }
}

/** A fake manager serving a settable cluster map. */
export class FakeManager {
  readonly server = new Server();
  address = '';
  mapCalls = 0;
  map: GetClusterMapResponse = { shardCount: 0, replicationFactor: 0, nodes: [], shards: [] };

  constructor() {
    this.server.addService(ManagerServiceService, {
      register: (_call: unknown, callback: (error: ServiceError | null) => void) => callback({ code: GrpcStatus.UNIMPLEMENTED } as ServiceError),
      heartbeat: (_call: unknown, callback: (error: ServiceError | null) => void) => callback({ code: GrpcStatus.UNIMPLEMENTED } as ServiceError),
      getClusterMap: (_call: unknown, callback: (error: ServiceError | null, response?: GetClusterMapResponse) => void) => {
        this.mapCalls++;
        callback(null, this.map);
      },
    });
  }

  async start(): Promise<void> {
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, actual) => (error === null ? resolve(actual) : reject(error))),
    );
    this.address = `127.0.0.1:${bound}`;
  }

  /**
   * Sets a map of `shardCount` shards whose replicas are `nodes` (id → address); `leaderOf(shard)`
   * names each shard's leader id ('' for none).
   */
  setMap(shardCount: number, nodes: { id: string; address: string }[], leaderOf: (shard: number) => string, epoch = 1): void {
    this.map = {
      shardCount,
      replicationFactor: nodes.length,
      nodes: nodes.map((node) => ({
        nodeId: node.id,
        address: node.address,
        health: NodeHealth.NODE_HEALTH_UP,
        replicaCount: shardCount,
        leaderCount: 0,
        keyCount: 0,
        opsPerSecond: 0,
        p99LatencyMs: 0,
        metricsPort: 0,
        peersUnreachable: [], draining: false,
      })),
      shards: Array.from({ length: shardCount }, (_unused, shardId) => ({
        shardId,
        epoch,
        replicas: nodes.map((node, index) => ({ replicaId: shardId * 10 + index + 1, nodeId: node.id, learner: false })),
        leaderNodeId: leaderOf(shardId),
        term: 1,
        commitIndex: 0,
      })),
    };
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/** The shard of a string key (the hasher must be loaded). */
export function shardOf(key: string, shardCount: number): number {
  return shardForKey(new TextEncoder().encode(key), shardCount);
}
