/**
 * Routing and retries: key → shard → leader, following NOT_LEADER hints, refreshing the map on
 * WRONG_SHARD or a dead node, and retrying retryable failures with exponential backoff and jitter
 * until the call's deadline. RESOURCE_EXHAUSTED (the node is at its admission bounds) is retried on
 * the same node after the backoff: it is the leader, only busy. INVALID_ARGUMENT and CONFLICT are
 * never retried. A write is retried only
 * with its original (clientId, seq), so the node applies it at most once (STYLE.md §4).
 */
import { shardForKey } from '../common/index.js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCode, type Error as NodeError } from '../gen/kvstore/v1/kvstore.js';
import { backoffDelayMs, sleep, type BackoffPolicy, type CallDeadline } from './deadline.js';
import { KVError } from './errors.js';
import type { ClientLogger } from './logger.js';
import { ChannelSecurity } from '../security/channel-security.js';
import { NodeConnection, NodeTransportError, type NodeRequest, type NodeResponse } from './node-connection.js';
import type { ShardMapCache, ShardRoute } from './shard-map.js';

/** What one attempt's answer means to the router. */
export type AttemptOutcome<T> = { ok: true; value: T } | { ok: false; error: NodeError };

/** One logical operation, re-buildable for every attempt (the epoch may change between attempts). */
export interface Operation<T> {
  /** For messages: `get`, `put`, `delete`, `cas`. */
  name: string;
  /** The key's UTF-8 bytes (already validated). */
  key: Uint8Array;
  /** Writes change state: their timeouts say the outcome is unknown. */
  isWrite: boolean;
  /** The request for one attempt, carrying the shard epoch the client believes in. */
  build(epoch: number): NodeRequest;
  /** Reads the node's answer; may throw a final {@link KVError} (e.g. CONFLICT with the current version). */
  interpret(response: NodeResponse): AttemptOutcome<T>;
}

/** Router settings. */
export interface RouterOptions {
  /** Retries after the first attempt; undefined = retry until the deadline. */
  maxRetries: number | undefined;
  /** Backoff between attempts. */
  backoff: BackoffPolicy;
  /** Longest wait for one node's answer before trying again (capped by the deadline). */
  attemptTimeoutMs: number;
}

/** Defaults: 10 ms doubling to 500 ms; 2 s per attempt so a hung node cannot eat the whole deadline. */
export const DEFAULT_ROUTER_OPTIONS: RouterOptions = {
  maxRetries: undefined,
  backoff: { baseDelayMs: 10, maxDelayMs: 500 },
  attemptTimeoutMs: 2000,
};

/** NOT_LEADER hints followed back to back before backing off (a hint can be stale during an election). */
const MAX_FREE_HINT_HOPS = 3;

/**
 * Sends operations to the right node and retries them. Owns one {@link NodeConnection} per node
 * address, reused across calls and shards.
 */
export class Router {
  private readonly connections = new Map<string, NodeConnection>();
  private rotation = 0;
  private closed = false;

  constructor(
    private readonly map: ShardMapCache,
    private readonly options: RouterOptions,
    private readonly logger: ClientLogger,
    private readonly security: ChannelSecurity = ChannelSecurity.NONE,
  ) {}

  /** Runs `operation` to completion, a KVError, or the deadline. */
  async execute<T>(operation: Operation<T>, deadline: CallDeadline): Promise<T> {
    const shardId = shardForKey(operation.key, this.map.shardCount);
    const avoid = new Set<string>();
    let target: string | undefined;
    let retries = 0;
    let backoffAttempt = 0;
    let hintHops = 0;
    let maybeDelivered = false;
    let lastError: unknown;
    /** The last attempt was refused at the node's admission bounds (not applied). */
    let exhausted = false;

    for (;;) {
      if (deadline.expired) {
        if (exhausted && deadline.passed) throw exhaustedError(operation, lastError, maybeDelivered);
        // A write that timed out is reported as of unknown outcome even if it may never have left: conservative, never wrong.
        throw deadline.timeoutError(operation.name, operation.isWrite, lastError);
      }
      if (this.closed) throw new KVError('CLOSED', 'the client was finalized');
      const route = this.map.route(shardId);
      if (target === undefined && route !== undefined) {
        target = this.pickTarget(route, avoid);
        if (target === undefined && avoid.size > 0) {
          avoid.clear(); // every replica failed once in this call: start another round over all of them
          target = this.pickTarget(route, avoid);
        }
      }
      let backoff = true;
      exhausted = false;
      if (route === undefined || target === undefined) {
        avoid.clear();
        lastError = new Error(route === undefined ? `shard ${shardId} is not in the map` : `shard ${shardId} has no reachable replica`);
        void this.map.refresh();
      } else {
        const sentTo: string = target;
        try {
          const response = await this.connection(sentTo).send(operation.build(route.epoch), deadline, this.options.attemptTimeoutMs);
          const outcome = operation.interpret(response);
          if (outcome.ok) return outcome.value;
          const error = outcome.error;
          lastError = new Error(`${sentTo}: ${ErrorCode[error.code] ?? error.code} ${error.message}`);
          this.logger.debug('attempt refused', { address: sentTo, shard: shardId, code: ErrorCode[error.code] ?? error.code, leader: error.leaderAddress });
          if (error.epoch > 0) this.map.noteEpoch(shardId, error.epoch);
          switch (error.code) {
            case ErrorCode.ERROR_CODE_INVALID_ARGUMENT:
              throw new KVError('INVALID_ARGUMENT', error.message || 'the node refused the request as invalid');
            case ErrorCode.ERROR_CODE_CONFLICT:
              throw new KVError('CONFLICT', error.message || `${operation.name}: version conflict`);
            case ErrorCode.ERROR_CODE_NOT_LEADER:
              if (error.leaderAddress !== '' && error.leaderAddress !== sentTo && !avoid.has(error.leaderAddress)) {
                this.map.noteLeader(shardId, error.leaderAddress);
                target = error.leaderAddress;
                backoff = ++hintHops > MAX_FREE_HINT_HOPS;
              } else {
                this.map.forgetLeader(shardId, sentTo);
                avoid.add(sentTo);
                target = undefined;
                void this.map.refresh();
              }
              break;
            case ErrorCode.ERROR_CODE_WRONG_SHARD:
              this.map.forgetLeader(shardId, sentTo);
              avoid.add(sentTo);
              target = undefined;
              await this.refreshWithin(deadline);
              break;
            case ErrorCode.ERROR_CODE_TIMEOUT:
              maybeDelivered = true;
              break; // the same node again after backoff: it may still be committing
            case ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED:
              exhausted = true;
              break; // refused, not applied: the same node again after backoff
            default: // UNAVAILABLE, unknown codes: this replica cannot serve now
              maybeDelivered ||= operation.isWrite;
              this.map.forgetLeader(shardId, sentTo);
              avoid.add(sentTo);
              target = undefined;
              void this.map.refresh();
          }
        } catch (error) {
          if (!(error instanceof NodeTransportError)) throw error;
          if (error.grpcCode === GrpcStatus.UNAUTHENTICATED) {
            // Credentials are the cluster's to judge and the same at every node: retrying cannot help.
            throw new KVError('UNAUTHENTICATED', error.message, { outcomeUnknown: operation.isWrite && maybeDelivered, cause: error });
          }
          maybeDelivered ||= error.maybeDelivered;
          if (deadline.expired) continue; // reported as TIMEOUT at the top of the loop
          lastError = error;
          if (error.grpcCode === GrpcStatus.RESOURCE_EXHAUSTED) {
            // The node ended the call at a bound (too many calls open): busy, not gone; same node after backoff.
            exhausted = true;
            this.logger.debug('node refused the call: at its bounds', { address: sentTo, shard: shardId, reason: error.message });
          } else {
            this.logger.debug('node unreachable', { address: sentTo, shard: shardId, reason: error.message });
            this.map.forgetLeader(shardId, sentTo);
            avoid.add(sentTo);
            target = undefined;
            void this.map.refresh();
          }
        }
      }
      if (this.options.maxRetries !== undefined && retries >= this.options.maxRetries) {
        if (exhausted) throw exhaustedError(operation, lastError, maybeDelivered);
        throw new KVError('UNAVAILABLE', `${operation.name} failed after ${retries + 1} attempts: ${describe(lastError)}`, {
          outcomeUnknown: operation.isWrite && maybeDelivered,
          cause: lastError,
        });
      }
      retries++;
      if (backoff) {
        hintHops = 0;
        const delayMs = backoffDelayMs(backoffAttempt++, this.options.backoff);
        // A node busy at its bounds gets no attempt squeezed into the call's last moments: it would
        // only add load, and its answer could not come back in time (the call would end TIMEOUT,
        // of unknown outcome, instead of the refusal it almost certainly is).
        if (exhausted && deadline.remainingMs() < delayMs + MIN_ATTEMPT_AFTER_REFUSAL_MS) throw exhaustedError(operation, lastError, maybeDelivered);
        await sleep(Math.min(delayMs, deadline.remainingMs()), deadline.signal);
      }
    }
  }

  /** Closes every node connection; calls in flight reject. */
  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }

  /** Open node connections (for tests). */
  get connectionCount(): number {
    return this.connections.size;
  }

  private connection(address: string): NodeConnection {
    let connection = this.connections.get(address);
    if (connection === undefined) {
      connection = new NodeConnection(address, this.security);
      this.connections.set(address, connection);
    }
    return connection;
  }

  /** The leader if known and not failed in this call, else the next voter in rotation. */
  private pickTarget(route: ShardRoute, avoid: Set<string>): string | undefined {
    if (route.leaderAddress !== undefined && !avoid.has(route.leaderAddress)) return route.leaderAddress;
    const voters = route.replicas.filter((replica) => !replica.learner && replica.address !== '' && !avoid.has(replica.address));
    if (voters.length === 0) return undefined;
    return voters[this.rotation++ % voters.length]?.address;
  }

  private async refreshWithin(deadline: CallDeadline): Promise<void> {
    await untilAborted(this.map.refresh({ force: true }), deadline.signal);
  }
}

/** Waits for `promise` (which must not reject) or for `signal` to abort, whichever is first. */
function untilAborted(promise: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    void promise.then(done, done);
  });
}

/** Least time left for which a call retries a node that refused it at its admission bounds. */
const MIN_ATTEMPT_AFTER_REFUSAL_MS = 100;

/** The error of a call whose last attempt the node refused at its admission bounds. */
function exhaustedError(operation: Operation<unknown>, lastError: unknown, maybeDelivered: boolean): KVError {
  return new KVError('RESOURCE_EXHAUSTED', `${operation.name}: the node stayed at its admission bounds, retried with backoff until giving up: ${describe(lastError)}`, {
    outcomeUnknown: operation.isWrite && maybeDelivered,
    cause: lastError,
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
