/**
 * The Raft core's data types and its two outside contracts: the {@link Storage}
 * it reads from and the {@link Ready} it hands to the caller.
 *
 * Everything here is plain data: no I/O, no clock, no randomness. The numeric
 * values of {@link MessageType} and {@link EntryType} equal those of the wire
 * protocol (`proto/kvstore/v1/raft.proto`), so the node converts with a cast.
 */

/** A replica's id within its group. Allocated by the manager, never reused. `0` means none. */
export type ReplicaId = number;

/** The id that means "no replica" (no vote, no leader). */
export const NONE: ReplicaId = 0;

/** How an entry's data is interpreted. */
export enum EntryType {
  /** A proposal of the application, or the leader's empty no-op when `data` is empty. */
  Normal = 0,
  /** A membership change; `data` is `encodeConfChange(change)`. */
  ConfChange = 1,
}

/** One log entry. `index` starts at 1; entry 0 is the empty log's sentinel. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/**
 * The state that MUST be on stable storage BEFORE any message that depends on
 * it is sent (Raft §5.1, Figure 2 "persistent state on all servers").
 */
export interface HardState {
  term: number;
  /** The replica this one voted for in `term`, or {@link NONE}. */
  vote: ReplicaId;
  /**
   * Highest index known committed. Raft's safety does not need it persisted, but a replica
   * MUST NOT act outside the log on an applied membership change before the commit index
   * covering it is durable: restarted below it, the replica counts the old configuration
   * again (the host syncs first: `Replica.needsSync` in src/node).
   */
  commit: number;
}

/** A group's members. A replica is in at most one of the two lists. */
export interface ConfState {
  voters: ReplicaId[];
  /** Non-voting members: they receive the log but do not count toward any quorum. */
  learners: ReplicaId[];
}

/** What a snapshot covers: the state machine after applying every entry up to `index`. */
export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** A point-in-time image of the state machine, opaque to the core. */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** Message types, paired request/response on one stem. Local-only types never cross the network. */
export enum MessageType {
  Append = 1,
  AppendResponse = 2,
  Vote = 3,
  VoteResponse = 4,
  PreVote = 5,
  PreVoteResponse = 6,
  Heartbeat = 7,
  HeartbeatResponse = 8,
  Snapshot = 9,
  TimeoutNow = 10,
  ReadIndex = 11,
  ReadIndexResponse = 12,
  /** Forwarded by a follower to the leader when the application asks it to transfer leadership. */
  TransferLeader = 13,
  /** Local: a proposal. */
  Propose = 14,
  /** Local: the caller reports the outcome of sending a snapshot. */
  SnapshotStatus = 15,
  /** Local: the caller reports that a peer could not be reached. */
  Unreachable = 16,
}

/**
 * One Raft message. Fields a type does not use are zero / empty. `snapshot` is set
 * only on {@link MessageType.Snapshot}.
 */
export interface Message {
  type: MessageType;
  to: ReplicaId;
  from: ReplicaId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  snapshot?: Snapshot;
  context: Uint8Array;
}

/** Kinds of one-at-a-time membership change. */
export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveReplica = 2,
}

/**
 * A membership change, proposed with `proposeConfChange` and applied by the caller
 * with `applyConfChange` once committed. `context` is opaque to the core (the node
 * stores the replica's node id there).
 */
export interface ConfChange {
  type: ConfChangeType;
  replicaId: ReplicaId;
  context: Uint8Array;
}

/** A replica's role. */
export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** Volatile state worth telling the caller about when it changes. */
export interface SoftState {
  leaderId: ReplicaId;
  role: Role;
}

/**
 * The answer to a `readIndex(context)` call: once the caller has applied through
 * `index`, a read started before the call is linearizable (Raft thesis §6.4).
 */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

/**
 * Everything the caller must do, in this order (etcd `node.go` Ready contract):
 *
 * 1. Persist `hardState`, `entries` and `snapshot` to stable storage. When
 *    `mustSync` is true this write MUST be durable (fsynced) BEFORE step 2.
 * 2. Send `messages`. They may depend on step 1 (a vote, an append ack), so never
 *    earlier.
 * 3. Apply `snapshot` (if any) and then `committedEntries`, in order, to the state
 *    machine. Committed entries may be applied before or concurrently with step 1
 *    only if they are already durable; the simple rule is: persist, send, apply.
 * 4. Answer reads in `readStates` once applied index ≥ their index.
 * 5. Call `advance(ready)`.
 *
 * Calling `ready()` again before `advance()` throws.
 */
export interface Ready {
  /** Set when the leader or role changed since the last Ready. Needs no persisting. */
  softState?: SoftState;
  /** Set when term, vote or commit changed. MUST be persisted BEFORE sending `messages`. */
  hardState?: HardState;
  /** Reads that may be served once applied through their index. */
  readStates: ReadState[];
  /** Entries to append to stable storage BEFORE sending `messages`. */
  entries: Entry[];
  /** A snapshot to persist and apply, when one arrived from the leader. */
  snapshot?: Snapshot;
  /** Committed entries to apply to the state machine, in order. */
  committedEntries: Entry[];
  /** Messages to send AFTER `hardState`, `entries` and `snapshot` are persisted. */
  messages: Message[];
  /** True when `hardState` or `entries` changed in a way that needs an fsync. */
  mustSync: boolean;
}

/** Outcome of a storage read. `COMPACTED`: the index is below the first index; `UNAVAILABLE`: above the last. */
export type StorageResult<T> =
  | { ok: true; value: T }
  | { ok: false; reason: 'COMPACTED' | 'UNAVAILABLE' };

/** What storage held at start-up. */
export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

/**
 * The core's read-only view of the log and snapshot (etcd `storage.go`). The core
 * never writes storage: the caller persists what `Ready` says through
 * {@link WritableStorage}, then calls `advance()`.
 *
 * Invariant: `firstIndex() - 1` is the index of the latest snapshot (or 0), and its
 * term is always available through `term(firstIndex() - 1)`.
 */
export interface Storage {
  initialState(): InitialState;
  /** Entries in `[lo, hi)`, at least one if any, at most `maxBytes` of data after the first. */
  entries(lo: number, hi: number, maxBytes: number): StorageResult<Entry[]>;
  /** The term of the entry at `index`, for `firstIndex() - 1 <= index <= lastIndex()`. */
  term(index: number): StorageResult<number>;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot; `UNAVAILABLE` when it is temporarily not ready (the core retries later). */
  snapshot(): StorageResult<Snapshot>;
}

/**
 * The caller's writing side of storage. In-memory for tests; durable (WAL +
 * snapshot files) for the node. Durable implementations buffer writes until the
 * caller syncs, so many groups share one fsync.
 */
export interface WritableStorage extends Storage {
  setHardState(hardState: HardState): void;
  /** Appends entries, discarding any existing suffix from the first entry's index on. */
  append(entries: Entry[]): void;
  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void;
  /** Records a snapshot the application took at `index` (≤ applied); does not compact. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot;
  /** Discards entries before `index`; `index` must be ≤ the latest snapshot's index + 1 ... see implementation docs. */
  compact(index: number): void;
}

/** Structured logger injected into the core (etcd `logger.go`); fields never carry user values. */
export interface RaftLogger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** The injected source of randomness: an integer in `[0, maxExclusive)`. Seeded in tests. */
export interface RandomSource {
  nextInt(maxExclusive: number): number;
}

/**
 * How the leader replicates to one follower (etcd `tracker/state.go`):
 * `probe` sends one append at a time until it finds where logs match;
 * `replicate` streams appends optimistically, bounded by `maxInflightMsgs`;
 * `snapshot` waits for a snapshot to be installed.
 */
export enum ProgressState {
  Probe = 'probe',
  Replicate = 'replicate',
  Snapshot = 'snapshot',
}

/** The leader's view of one member, as shown by `status()`. */
export interface ProgressStatus {
  /** Highest index known replicated on the member. Invariant: `match < next`. */
  match: number;
  /** Next index the leader will send. */
  next: number;
  state: ProgressState;
  isLearner: boolean;
  /** Heard from within the current election timeout (CheckQuorum). */
  recentActive: boolean;
}

/** A snapshot of a replica's state for operators and tests. */
export interface RaftStatus {
  id: ReplicaId;
  term: number;
  vote: ReplicaId;
  commit: number;
  applied: number;
  leaderId: ReplicaId;
  role: Role;
  /** The replica a leadership transfer is under way to, or {@link NONE}. */
  leadTransferee: ReplicaId;
  /** Current membership. */
  confState: ConfState;
  /** Per member, only when this replica is the leader. */
  progress?: Map<ReplicaId, ProgressStatus>;
}

/**
 * Why a proposal was refused. `NOT_LEADER`: only the leader accepts proposals
 * (the node answers the client, no forwarding); `TRANSFERRING`: a leadership
 * transfer is under way; `CONF_CHANGE_PENDING`: a membership change is not yet
 * applied (one at a time); `TOO_LARGE`: the uncommitted log would exceed
 * `maxUncommittedEntriesBytes`.
 */
export type ProposeRejection = 'NOT_LEADER' | 'TRANSFERRING' | 'CONF_CHANGE_PENDING' | 'TOO_LARGE';

/**
 * Outcome of `propose`/`proposeConfChange`: where the entry was appended, or why
 * not. Appended is not committed: the caller matches `(index, term)` against
 * committed entries later (a different term at that index means it was lost).
 */
export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: ProposeRejection; leaderId: ReplicaId };
