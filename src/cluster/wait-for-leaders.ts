/**
 * Readiness of a cluster: every shard has a leader, as the manager's map says. One poll, used by
 * `kvstore cluster` (the ready line), `kvstore status --wait`, the bench's and the tests' local
 * clusters. The manager connection is made in {@link connectManager} only, so credentials are
 * threaded through there once.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { clientChannelSecurity, ManagerConnection, ManagerUnreachableError } from '../client/index.js';
import { sleep, type Logger } from '../common/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import type { ClientCredentials } from './security.js';

/** How often the map is fetched again, unless the caller says otherwise. */
const POLL_INTERVAL_MS = 200;
/** One GetClusterMap call's deadline, unless the caller says otherwise. */
const FETCH_TIMEOUT_MS = 2000;
/** With a logger, a progress line is logged this often while waiting. */
const PROGRESS_LOG_INTERVAL_MS = 10_000;

/** How to reach the manager. */
export interface ManagerAccess {
  /** The manager's `host:port`. */
  address: string;
  /** What to present to it (TLS, a token); plaintext without. */
  credentials?: ClientCredentials | undefined;
}

/** A connection to the manager; the caller closes it. */
export function connectManager(access: ManagerAccess): ManagerConnection {
  return new ManagerConnection(access.address, access.credentials === undefined ? undefined : clientChannelSecurity(access.credentials));
}

/** True when the map covers every shard and each has a leader: the cluster can serve every key. */
export function everyShardHasLeader(map: GetClusterMapResponse): boolean {
  return map.shardCount > 0 && map.shards.length === map.shardCount && map.shards.every((shard) => shard.leaderNodeId !== '');
}

/** How many shards of the map have a leader. */
export function shardsWithLeader(map: GetClusterMapResponse): number {
  return map.shards.filter((shard) => shard.leaderNodeId !== '').length;
}

/** How {@link waitForLeaders} polls and when it gives up. */
export interface WaitForLeadersOptions {
  /** Give up after this long (outcome `timeout`). Default: never. */
  timeoutMs?: number;
  /** Give up when this aborts (outcome `aborted`); it also cancels a fetch in flight. */
  signal?: AbortSignal;
  /** Pause between fetches. Default 200 ms. */
  pollIntervalMs?: number;
  /** One fetch's deadline (never past `timeoutMs`). Default 2000 ms. */
  fetchTimeoutMs?: number;
  /** Runs before every fetch; throw to stop waiting (e.g. a child exited), and the wait rejects with it. */
  beforePoll?: () => void;
  /** Logs `waiting for shard leaders` with `{ led, shards }` every 10 s while waiting. */
  logger?: Logger;
}

/** The outcome of {@link waitForLeaders}. */
export type LeadersOutcome =
  | { ready: true; map: GetClusterMapResponse }
  | {
      ready: false;
      /** `refused`: the manager refused the credentials (or TLS is on at one end only): waiting cannot help. */
      reason: 'timeout' | 'aborted' | 'refused';
      /** The last map fetched, if any. */
      lastMap: GetClusterMapResponse | undefined;
      /** The last failed fetch, if any. */
      lastError: ManagerUnreachableError | undefined;
    };

/**
 * Polls the manager until every shard has a leader. An unreachable manager is retried: it may still
 * be starting; one that refuses the credentials ends the wait (`refused`). Any other error rejects.
 */
export async function waitForLeaders(access: ManagerAccess, options: WaitForLeadersOptions = {}): Promise<LeadersOutcome> {
  const { signal, beforePoll, logger } = options;
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  const sleepSignal = signal ?? new AbortController().signal;
  const connection = connectManager(access);
  let lastMap: GetClusterMapResponse | undefined;
  let lastError: ManagerUnreachableError | undefined;
  let lastLogAtMs = Date.now();
  try {
    for (;;) {
      if (signal?.aborted === true) return { ready: false, reason: 'aborted', lastMap, lastError };
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) return { ready: false, reason: 'timeout', lastMap, lastError };
      beforePoll?.();
      try {
        const map = await connection.getClusterMap(Math.min(options.fetchTimeoutMs ?? FETCH_TIMEOUT_MS, remainingMs), signal);
        lastMap = map;
        if (everyShardHasLeader(map)) return { ready: true, map };
        if (logger !== undefined && Date.now() - lastLogAtMs > PROGRESS_LOG_INTERVAL_MS) {
          lastLogAtMs = Date.now();
          logger.info('waiting for shard leaders', { led: shardsWithLeader(map), shards: map.shardCount });
        }
      } catch (error) {
        if (!(error instanceof ManagerUnreachableError)) throw error;
        lastError = error;
        if (error.grpcCode === GrpcStatus.UNAUTHENTICATED) return { ready: false, reason: 'refused', lastMap, lastError };
      }
      await sleep(Math.min(options.pollIntervalMs ?? POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())), sleepSignal);
    }
  } finally {
    connection.close();
  }
}
