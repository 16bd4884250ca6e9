/**
 * Configuration of one Raft replica (etcd `raft.go` `Config`), with defaults.
 */
import { RaftInvariantError } from './errors.js';
import type { RaftLogger, RandomSource, ReplicaId, Storage } from './types.js';

/** What a {@link RawNode} is built from. */
export interface RaftConfig {
  /** This replica's id; never {@link NONE}. */
  id: ReplicaId;
  /** The log and snapshot store; its initial state is loaded at construction. */
  storage: Storage;
  /**
   * Ticks without hearing from a leader before a follower campaigns. The actual
   * timeout is drawn from `[electionTick, 2 * electionTick)` each time (Raft
   * §5.2) so split votes resolve. Default 10. Must exceed `heartbeatTick`.
   */
  electionTick?: number;
  /** Ticks between leader heartbeats. Default 1. Lower detects failure sooner, costs more messages. */
  heartbeatTick?: number;
  /**
   * The last index the application applied before a restart; entries up to it
   * are not handed out again. Default: the snapshot index (everything after it
   * is re-applied, including conf changes).
   */
  applied?: number;
  /**
   * Most bytes of entry data in one append (at least one entry is always sent).
   * Bigger batches mean fewer messages but slower recovery when one is lost.
   * Default 1 MiB.
   */
  maxSizePerMsg?: number;
  /**
   * Most appends in flight to one follower in replicate state. With
   * `maxSizePerMsg` this bounds the bytes in flight per follower (Little's law:
   * throughput ≈ inflight bytes / round-trip time). Default 256.
   */
  maxInflightMsgs?: number;
  /**
   * Most bytes of uncommitted entries a leader accepts before refusing
   * proposals with `TOO_LARGE`; bounds memory when followers are slow.
   * Default: unlimited.
   */
  maxUncommittedEntriesBytes?: number;
  /** Most bytes of committed entries handed out in one Ready. Default: unlimited. */
  maxCommittedBytesPerReady?: number;
  /**
   * PreVote (Raft thesis §9.6): before raising its term a candidate asks
   * whether it could win, so a partitioned replica rejoining does not depose a
   * healthy leader. Default true.
   */
  preVote?: boolean;
  /**
   * CheckQuorum (thesis §6.2): a leader that has not heard from a majority
   * within an election timeout steps down, and followers with a live leader
   * ignore vote requests (leader lease). Default true.
   */
  checkQuorum?: boolean;
  /**
   * Piggybacking: a commit index that moved alone reaches followers with the next
   * append or heartbeat instead of an empty append of its own (etcd sends one, and
   * gets an answer), and a heartbeat tick skips a follower that got an append since
   * the last tick (that append reset its election timer and its answer keeps CheckQuorum
   * fed). Followers then apply up to two heartbeat periods later — they serve no reads,
   * so only their apply lag changes — and a lost append is noticed one heartbeat later;
   * a write costs two Raft messages per follower instead of four, and a busy group sends
   * no heartbeats. ReadIndex rounds are unchanged. Default false (etcd's behaviour).
   */
  piggyback?: boolean;
  /** Seeded source of election-timeout randomness. */
  random: RandomSource;
  /** Structured logger; default discards. */
  logger?: RaftLogger;
}

/** A config with every default filled in. */
export type ResolvedRaftConfig = Required<Omit<RaftConfig, 'applied'>> & { applied: number };

const SILENT: RaftLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Fills defaults and rejects nonsense (a bug in the caller, so it throws). */
export function resolveConfig(config: RaftConfig): ResolvedRaftConfig {
  const resolved: ResolvedRaftConfig = {
    id: config.id,
    storage: config.storage,
    electionTick: config.electionTick ?? 10,
    heartbeatTick: config.heartbeatTick ?? 1,
    applied: config.applied ?? 0,
    maxSizePerMsg: config.maxSizePerMsg ?? 1024 * 1024,
    maxInflightMsgs: config.maxInflightMsgs ?? 256,
    maxUncommittedEntriesBytes: config.maxUncommittedEntriesBytes ?? Number.POSITIVE_INFINITY,
    maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? Number.POSITIVE_INFINITY,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    piggyback: config.piggyback ?? false,
    random: config.random,
    logger: config.logger ?? SILENT,
  };
  const fail = (message: string): never => {
    throw new RaftInvariantError(`invalid raft config: ${message}`, { id: config.id });
  };
  if (!(resolved.id > 0)) fail('id must be a positive number');
  if (!(resolved.heartbeatTick > 0)) fail('heartbeatTick must be positive');
  if (!(resolved.electionTick > resolved.heartbeatTick)) fail('electionTick must exceed heartbeatTick');
  if (!(resolved.maxInflightMsgs >= 1)) fail('maxInflightMsgs must be at least 1');
  if (!(resolved.maxSizePerMsg >= 0)) fail('maxSizePerMsg must not be negative');
  return resolved;
}
