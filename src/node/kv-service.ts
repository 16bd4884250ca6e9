/**
 * The client-facing KvService's requests: every request is validated here, whoever sent it,
 * then handed to the local leader replica of its shard; errors say how to recover (NOT_LEADER
 * with the leader's id and address, WRONG_SHARD with the epoch, INVALID_ARGUMENT with the limit,
 * RESOURCE_EXHAUSTED with the bound that refused it). The gRPC handlers over it — unary calls
 * and the Batch stream, with their admission control — are `kv-grpc-service.ts`.
 */
import { checkKeyBytes, checkTtl, checkValueBytes, shardForKey } from '../common/index.js';
import {
  type BatchRequestItem,
  type BatchResponseItem,
  type CasRequest,
  type CasResponse,
  type DeleteRequest,
  type DeleteResponse,
  type Error as KvError,
  ErrorCode,
  type GetRequest,
  type GetResponse,
  type PutRequest,
  type PutResponse,
  type Session,
  type TxnOpResult as WireTxnOpResult,
  type TxnRequest,
  type TxnResponse,
} from '../gen/kvstore/v1/kvstore.js';
import { CommandOp, MAX_CLIENT_ID_BYTES, type WriteRequest } from './kv-command.js';
import { type AppliedResult, keyString, type SessionRefusal, type TxnOpResult, type WriteResult } from './kv-state-machine.js';
import { Role } from '../raft/index.js';
import type { RefusalReason } from './admission.js';
import type { PeerDirectory } from './peer-directory.js';
import type { RaftHost } from './raft-host.js';
import type { Replica } from './replica.js';
import { MAX_REPLICA_WAITING_BYTES, MAX_REPLICA_WAITING_REQUESTS } from './replica-admission.js';
import type { FailureReason } from './replica-requests.js';
import type { RequestMetrics } from './request-metrics.js';
import { checkTxnRequest } from './txn-request.js';
import { type NodeRuntime, systemRuntime } from './runtime.js';

/** What the service needs from the node. */
export interface KvServiceContext {
  host: RaftHost;
  peers: PeerDirectory;
  metrics: Pick<RequestMetrics, 'record'>;
  /** Clock for request latencies. Default: this process's. */
  runtime?: NodeRuntime;
  /** The cluster's shard count; 0 until known (then every request is UNAVAILABLE). */
  shardCount(): number;
  /** This node's own address, for NOT_LEADER hints that point at itself. */
  address: string;
  /** True once the node is stopping. */
  closing(): boolean;
  /** Counts a request a replica refused at its bound (metrics); default: not counted. */
  refused?(reason: RefusalReason, count?: number): void;
}

const EMPTY = Buffer.alloc(0);
/** A shard's state at a backup's cut (`KvRequestExecutor.readShard`). */
export interface ShardExport {
  appliedIndex: number;
  term: number;
  entries: { key: string; value: Buffer; version: number; expiresInMs: number }[];
}

/** The key a backup's read is confirmed for: any key would do (its value is not used); this one is never a client's (keys are UTF-8). */
const CUT_KEY = '\u00ff\u00fe';

/** Expire entries one read may wait for before it fails retryable (each applies; a key rewritten due again is rare). */
const MAX_EXPIRE_ROUNDS = 3;
const NOT_FOUND: GetResponse = { found: false, value: EMPTY, version: 0, expiresAtMs: 0, expiresInMs: 0 };

function getFailure(error: KvError): GetResponse {
  return { error, found: false, value: EMPTY, version: 0, expiresAtMs: 0, expiresInMs: 0 };
}

/** Where a request goes: the local leader, an error answer, or the leader wait at this follower (answered later). */
type Located = { kind: 'leader'; replica: Replica } | { kind: 'error'; error: KvError } | { kind: 'follower'; replica: Replica };

type Done<T> = (response: T) => void;

/** Runs one request of any kind; shared by the unary handlers and the Batch stream. */
export class KvRequestExecutor {
  private readonly runtime: NodeRuntime;

  constructor(private readonly context: KvServiceContext) {
    this.runtime = context.runtime ?? systemRuntime;
  }

  /** Answers a linearizable read. */
  get(request: GetRequest, done: Done<GetResponse>): void {
    this.runGet(request, done, this.runtime.monotonicMs(), false);
  }

  private runGet(request: GetRequest, done: Done<GetResponse>, startMs: number, waited: boolean, expireRounds = 0): void {
    const answer = (response: GetResponse): void => {
      this.context.metrics.record('get', this.runtime.monotonicMs() - startMs, response.error?.code);
      done(response);
    };
    const located = this.locate(request.key, waited);
    if (located.kind === 'follower') {
      // Held until the shard's leader is known (built only here: no closure per request).
      this.context.host.leaderWait.park(located.replica.shardId, () => this.runGet(request, done, startMs, true));
      return;
    }
    if (located.kind === 'error') {
      answer(getFailure(located.error));
      return;
    }
    const replica = located.replica;
    const answered = replica.read(keyString(request.key), (outcome) => {
      if (!outcome.ok) {
        answer(getFailure(this.failure(replica, outcome.reason, false)));
        return;
      }
      const stored = outcome.value;
      if (stored === undefined) {
        answer(NOT_FOUND);
        return;
      }
      if (stored.expiresAtMs === 0) {
        answer({ found: true, value: stored.value, version: stored.version, expiresAtMs: 0, expiresInMs: 0 });
        return;
      }
      if (replica.role !== Role.Leader) {
        // Lost leadership since the read was confirmed: no log clock to judge the expiry by.
        answer(getFailure(this.notLeader(replica)));
        return;
      }
      const logNowMs = replica.logTimeNowMs();
      if (stored.expiresAtMs > logNowMs) {
        answer({ found: true, value: stored.value, version: stored.version, expiresAtMs: stored.expiresAtMs, expiresInMs: stored.expiresAtMs - logNowMs });
        return;
      }
      if (expireRounds >= MAX_EXPIRE_ROUNDS) {
        answer(getFailure(kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, `shard ${replica.shardId} could not commit the expiry of this key yet; retry`)));
        return;
      }
      // Rule: a key is never read past its expiry, and "not found" for an expired key comes only
      // from the state machine, never from a clock: the leader's log clock says the key is due, so
      // an expire entry (stamped at least that late, in this term) goes through the log first,
      // and the read runs again, from the start, once it applied — the state machine no longer
      // holds the key then, on any replica, so no leader can read it again. If the entry did not
      // apply (refused during a leadership transfer, dropped, timed out), the read fails
      // retryable instead: answering "not found" without it in the log would let a later leader,
      // whose log clock starts lower, read the key again.
      replica.proposeExpire((applied) => {
        if (applied) this.runGet(request, done, startMs, true, expireRounds + 1);
        else answer(getFailure(kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, `shard ${replica.shardId} could not commit the expiry of this key; retry`)));
      });
      this.context.host.mark(replica);
    });
    if (!answered) this.context.host.mark(replica);
  }

  /**
   * A shard's whole state at one linearizable point, from its leader (a backup's cut): a read
   * confirmed like any other (lease or ReadIndex, applied through the read index), and in its
   * callback — the state machine at exactly that point, nothing applied in between — one
   * synchronous copy of every key. Refused like a read elsewhere: WRONG_SHARD, NOT_LEADER.
   */
  readShard(shardId: number, done: (result: ShardExport | { error: KvError }) => void): void {
    if (this.context.closing()) {
      done({ error: kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'node is shutting down') });
      return;
    }
    const replica = this.context.host.replica(shardId);
    if (replica === undefined || replica.removed) {
      done({ error: kvError(ErrorCode.ERROR_CODE_WRONG_SHARD, `this node holds no replica of shard ${shardId}`) });
      return;
    }
    if (replica.role !== Role.Leader) {
      done({ error: this.notLeader(replica) });
      return;
    }
    const answered = replica.read(CUT_KEY, (outcome) => {
      if (!outcome.ok) {
        done({ error: this.failure(replica, outcome.reason, false) });
        return;
      }
      if (replica.role !== Role.Leader) {
        done({ error: this.notLeader(replica) });
        return;
      }
      const machine = replica.machine;
      done({ appliedIndex: machine.appliedIndex, term: replica.rawNode.term(), entries: machine.exportEntries(replica.logTimeNowMs()) });
    });
    if (!answered) this.context.host.mark(replica);
  }

  /** Answers a put once it applied. */
  put(request: PutRequest, done: Done<PutResponse>): void {
    const value = checkValueBytes(request.value);
    const ttl = checkTtl(request.ttlMs);
    const invalid = !value.ok ? value.message : !ttl.ok ? ttl.message : undefined;
    const write: WriteRequest = {
      op: CommandOp.Put, key: request.key, value: request.value, ...sessionOf(request.session), ...(request.ttlMs > 0 ? { ttlMs: request.ttlMs } : {}),
    };
    this.write(write, request.session, invalid, done, (outcome) =>
      outcome.kind === 'put' ? { version: outcome.version } : { version: 0 },
      (error) => ({ error, version: 0 }));
  }

  /** Answers a delete once it applied. */
  delete(request: DeleteRequest, done: Done<DeleteResponse>): void {
    const write: WriteRequest = { op: CommandOp.Delete, key: request.key, ...sessionOf(request.session) };
    this.write(write, request.session, undefined, done, (outcome) =>
      ({ existed: outcome.kind === 'delete' && outcome.existed }),
      (error) => ({ error, existed: false }));
  }

  /** Answers a compare-and-set once it applied: CONFLICT carries the current version. */
  cas(request: CasRequest, done: Done<CasResponse>): void {
    const invalid = checkValueBytes(request.value);
    const write: WriteRequest = {
      op: CommandOp.Cas, key: request.key, value: request.value, expectedVersion: request.expectedVersion, ...sessionOf(request.session),
    };
    this.write(write, request.session, invalid.ok ? undefined : invalid.message, done, (outcome) => {
      if (outcome.kind !== 'cas') return { version: 0, currentVersion: 0 };
      if (outcome.ok) return { version: outcome.version, currentVersion: outcome.version };
      return {
        error: kvError(ErrorCode.ERROR_CODE_CONFLICT, `version is ${outcome.currentVersion}, expected ${request.expectedVersion}`),
        version: 0,
        currentVersion: outcome.currentVersion,
      };
    }, (failure) => ({ error: failure, version: 0, currentVersion: 0 }));
  }

  /**
   * Answers a transaction once it applied: whether its compares held, and one result per
   * operation of the branch that ran. Refused whole (INVALID_ARGUMENT) when it breaks a limit
   * or names keys of two shards.
   */
  txn(request: TxnRequest, done: Done<TxnResponse>): void {
    const shardCount = this.context.shardCount();
    const failure = (error: KvError): TxnResponse => ({ error, succeeded: false, results: [] });
    if (shardCount === 0) {
      done(failure(kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'node does not know the shard count yet')));
      return;
    }
    const checked = checkTxnRequest(request, shardCount);
    if (!checked.ok) {
      this.context.metrics.record(CommandOp.Txn, 0, ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      done(failure(kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, checked.message)));
      return;
    }
    const write: WriteRequest = { op: CommandOp.Txn, key: checked.key, txn: checked.spec, ...sessionOf(request.session) };
    this.write(write, request.session, undefined, done, (outcome) => {
      if (outcome.kind !== 'txn') return { succeeded: false, results: [] };
      return { succeeded: outcome.succeeded, results: outcome.results.map(wireTxnResult) };
    }, failure);
  }

  private write<T extends { error?: KvError | undefined }>(
    request: WriteRequest,
    session: Session | undefined,
    invalidValue: string | undefined,
    done: Done<T>,
    success: (result: AppliedResult) => T,
    failure: (error: KvError) => T,
  ): void {
    const invalid = invalidValue ?? (session !== undefined && Buffer.byteLength(session.clientId, 'utf8') > MAX_CLIENT_ID_BYTES
      ? `client id is longer than ${MAX_CLIENT_ID_BYTES} bytes` : undefined);
    if (invalid !== undefined) {
      this.context.metrics.record(request.op, 0, ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      done(failure(kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, invalid)));
      return;
    }
    this.runWrite(request, done, success, failure, this.runtime.monotonicMs(), false);
  }

  private runWrite<T extends { error?: KvError | undefined }>(
    request: WriteRequest,
    done: Done<T>,
    success: (result: AppliedResult) => T,
    failure: (error: KvError) => T,
    startMs: number,
    waited: boolean,
  ): void {
    const answer = (response: T): void => {
      this.context.metrics.record(request.op, this.runtime.monotonicMs() - startMs, response.error?.code);
      done(response);
    };
    const located = this.locate(request.key, waited);
    if (located.kind === 'follower') {
      this.context.host.leaderWait.park(located.replica.shardId, () => this.runWrite(request, done, success, failure, startMs, true));
      return;
    }
    if (located.kind === 'error') {
      answer(failure(located.error));
      return;
    }
    const replica = located.replica;
    replica.write(request, (outcome) => {
      if (!outcome.ok) answer(failure(this.failure(replica, outcome.reason, true)));
      else if (isRefusal(outcome.result)) answer(failure(refusalError(replica.shardId, outcome.result)));
      else answer(success(outcome.result));
    });
    this.context.host.mark(replica);
  }

  /**
   * Validates the key and finds the local leader replica of its shard. A follower whose shard has
   * no usable leader is answered `follower` (unless the request `waited` already or the wait is
   * full): the caller parks the request in the host's leader wait (`leader-wait.ts`).
   */
  private locate(key: Uint8Array, waited: boolean): Located {
    const keyCheck = checkKeyBytes(key);
    if (!keyCheck.ok) return { kind: 'error', error: kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, keyCheck.message) };
    if (this.context.closing()) return { kind: 'error', error: kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'node is shutting down') };
    const shardCount = this.context.shardCount();
    if (shardCount === 0) return { kind: 'error', error: kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'node does not know the shard count yet') };
    const shardId = shardForKey(key, shardCount);
    const host = this.context.host;
    const replica = host.replica(shardId);
    if (replica === undefined || replica.removed) {
      return { kind: 'error', error: kvError(ErrorCode.ERROR_CODE_WRONG_SHARD, `this node holds no replica of shard ${shardId}`) };
    }
    if (replica.role === Role.Leader) return { kind: 'leader', replica };
    if (!waited && host.leaderUnusable(replica) && host.leaderWait.hasRoom) return { kind: 'follower', replica };
    return { kind: 'error', error: this.notLeader(replica) };
  }

  private notLeader(replica: Replica): KvError {
    const leaderNodeId = replica.leaderId === 0 ? undefined : replica.nodeIdOf(replica.leaderId);
    if (leaderNodeId === undefined) {
      return { ...kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, `shard ${replica.shardId} has no known leader`), epoch: replica.machine.epoch };
    }
    if (leaderNodeId !== this.context.host.nodeId && this.context.host.leaderUnusable(replica)) {
      // Its node was reported dead and has not been heard from since (a request held for the
      // new leader that did not come in time): pointing the client there only costs it a failed
      // connection. It retries as after any UNAVAILABLE.
      return {
        ...kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, `shard ${replica.shardId}'s leader on ${leaderNodeId} is unreachable and no new leader is known yet`),
        epoch: replica.machine.epoch,
      };
    }
    const leaderAddress = leaderNodeId === this.context.host.nodeId ? this.context.address : this.context.peers.get(leaderNodeId) ?? '';
    return {
      code: ErrorCode.ERROR_CODE_NOT_LEADER,
      message: `not the leader of shard ${replica.shardId}`,
      leaderNodeId,
      leaderAddress,
      epoch: replica.machine.epoch,
    };
  }

  private failure(replica: Replica, reason: FailureReason, isWrite: boolean): KvError {
    switch (reason) {
      case 'NOT_LEADER':
        return this.notLeader(replica);
      case 'DROPPED':
        return kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'leader changed before the write committed; it was not applied, retry');
      case 'TIMEOUT':
        return kvError(ErrorCode.ERROR_CODE_TIMEOUT, isWrite
          ? 'write did not apply in time: its outcome is unknown (retry within the same session)'
          : 'read could not be confirmed in time');
      case 'UNAVAILABLE':
        return kvError(ErrorCode.ERROR_CODE_UNAVAILABLE, `shard ${replica.shardId} cannot serve now`);
      case 'REPLICA_REQUESTS_FULL':
        this.context.refused?.('replica_requests');
        return kvError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED,
          `shard ${replica.shardId}'s leader holds ${MAX_REPLICA_WAITING_REQUESTS} waiting requests, its limit: not applied; back off and retry`);
      case 'REPLICA_BYTES_FULL':
        this.context.refused?.('replica_bytes');
        return kvError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED,
          `shard ${replica.shardId}'s leader holds ${MAX_REPLICA_WAITING_BYTES} bytes of waiting requests, its limit: not applied; back off and retry`);
    }
  }

  /** Runs one Batch item, answering with a response item. */
  item(item: BatchRequestItem, done: Done<BatchResponseItem>): void {
    const requestId = item.requestId;
    const op = item.op;
    switch (op?.$case) {
      case 'get':
        this.get(op.value, (value) => done({ requestId, result: { $case: 'get', value } }));
        return;
      case 'put':
        this.put(op.value, (value) => done({ requestId, result: { $case: 'put', value } }));
        return;
      case 'delete':
        this.delete(op.value, (value) => done({ requestId, result: { $case: 'delete', value } }));
        return;
      case 'cas':
        this.cas(op.value, (value) => done({ requestId, result: { $case: 'cas', value } }));
        return;
      case 'txn':
        this.txn(op.value, (value) => done({ requestId, result: { $case: 'txn', value } }));
        return;
      case undefined:
        done(errorItem(item, kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'batch item has no operation')));
    }
  }
}

/** The answer to a Batch item that fails with `failure` without running (refused, or invalid). */
export function errorItem(item: BatchRequestItem, failure: KvError): BatchResponseItem {
  const requestId = item.requestId;
  switch (item.op?.$case) {
    case 'put':
      return { requestId, result: { $case: 'put', value: { error: failure, version: 0 } } };
    case 'delete':
      return { requestId, result: { $case: 'delete', value: { error: failure, existed: false } } };
    case 'cas':
      return { requestId, result: { $case: 'cas', value: { error: failure, version: 0, currentVersion: 0 } } };
    case 'txn':
      return { requestId, result: { $case: 'txn', value: { error: failure, succeeded: false, results: [] } } };
    case 'get':
    case undefined:
      return { requestId, result: { $case: 'get', value: getFailure(failure) } };
  }
}

function isRefusal(result: WriteResult): result is SessionRefusal {
  return result.kind === 'session-expired' || result.kind === 'session-mismatch' || result.kind === 'sessions-full' || result.kind === 'txn-reads-gone';
}

function wireTxnResult(result: TxnOpResult): WireTxnOpResult {
  switch (result.kind) {
    case 'put':
      return { result: { $case: 'put', value: { version: result.version } } };
    case 'delete':
      return { result: { $case: 'delete', value: { existed: result.existed } } };
    case 'get':
      return { result: { $case: 'get', value: { found: result.value !== undefined, value: result.value ?? EMPTY, version: result.version } } };
  }
}

/**
 * The error for a write its session refused. Only `sessions-full` says "not applied": the
 * client had no session, so this write never applied. An expired seq may have applied
 * earlier, so it is TIMEOUT, whose contract is "outcome unknown" — never "not applied".
 * @internal exported for tests
 */
export function refusalError(shardId: number, refusal: SessionRefusal): KvError {
  switch (refusal.kind) {
    case 'session-expired':
      return kvError(ErrorCode.ERROR_CODE_TIMEOUT,
        `session expired: shard ${shardId} no longer remembers seq ${refusal.seq} of this client id, so this retry was not applied; ` +
        'an earlier attempt may have been: the outcome is unknown');
    case 'session-mismatch':
      return kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        `retry does not match the write recorded for seq ${refusal.seq} of this client id (${refusal.mismatch}); not applied: ` +
        'a retry must resend the same write, a new write needs a new seq');
    case 'sessions-full':
      return kvError(ErrorCode.ERROR_CODE_UNAVAILABLE,
        `shard ${shardId} holds ${refusal.limit} client sessions, all active in the last minutes; this write was not applied, retry later`);
    case 'txn-reads-gone':
      return kvError(ErrorCode.ERROR_CODE_TIMEOUT,
        `transaction seq ${refusal.seq} of this client id applied on an earlier attempt, but a key it read was written since, ` +
        'so its result cannot be given again: the outcome is reported unknown');
  }
}

/** An error of `code` with `message` and no leader hint. */
export function kvError(code: ErrorCode, message: string): KvError {
  return { code, message, leaderNodeId: '', leaderAddress: '', epoch: 0 };
}

function sessionOf(session: Session | undefined): { session?: { clientId: string; seq: number } } {
  return session === undefined || session.clientId === '' ? {} : { session: { clientId: session.clientId, seq: session.seq } };
}
