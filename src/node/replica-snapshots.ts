/**
 * When a replica snapshots, and how much log it keeps behind the snapshot. One small state
 * machine per replica, driven by {@link Replica}: it counts what was applied since the last
 * snapshot, holds what is asked of it (the WAL purge, a joining member), spends the node's
 * per-turn budget (`snapshot-budget.ts`), and takes and compacts through the replica's storage.
 *
 * Taking a snapshot later than due is always safe: the log (in memory and in the WAL) is only
 * kept a little longer. Taking one sooner is safe too. What must hold is that a new member's
 * snapshot exists before a learner is sent one, so that one is never put off.
 * @internal
 */
import type { ConfState, WritableStorage } from '../raft/index.js';
import type { SnapshotBudget } from './snapshot-budget.js';

/** What the next snapshot is waiting for, beyond the bounds. */
export enum SnapshotWant {
  /** Nothing: a snapshot comes when a bound is reached. */
  None,
  /** Asked for (the WAL's oldest segments wait for this group's): at the next chance, within the budget. */
  Wanted,
  /** Due or wanted, and put off by a turn's budget: wanted, and the host gives this replica the next turn. */
  PutOff,
  /** A new member joined: taken in this very Ready, whatever the budget (it needs the whole configuration). */
  ForMember,
}

/** The bounds of one replica's log; see the matching `ReplicaOptions` fields. */
export interface SnapshotBounds {
  /** Snapshot every this many applied entries. */
  intervalEntries: number;
  /** Also once the entries applied since the last snapshot hold this many bytes, or as many as that snapshot. */
  logBytes: number;
  /** This replica's multiple of both (`snapshotSpread`). */
  spread: number;
  /** Entries kept behind a snapshot for slow followers… */
  retainedEntries: number;
  /** …and at most this many bytes of them. */
  retainedBytes: number;
  /** Shared by a node's replicas; undefined: no limit. */
  budget: SnapshotBudget | undefined;
}

/** A snapshot just taken, for the replica's log line. */
export interface SnapshotTaken {
  index: number;
  bytes: number;
  /** Entries kept behind it. */
  retained: number;
  /** It was asked for, not (only) due. */
  wanted: boolean;
}

/** One replica's snapshot schedule. */
export class ReplicaSnapshots {
  private want = SnapshotWant.None;
  /** Index of the latest snapshot, taken or installed. */
  private index: number;
  /** Size of its data: a state this big is not snapshotted for less log than that. */
  private bytes: number;
  /** Bytes of entry data applied since it. */
  private bytesSince = 0;

  constructor(private readonly storage: WritableStorage, private readonly bounds: SnapshotBounds) {
    const snapshot = storage.snapshot();
    this.index = snapshot.ok ? snapshot.value.metadata.index : 0;
    this.bytes = snapshot.ok ? snapshot.value.data.length : 0;
  }

  /** What the next snapshot waits for (tests and the replica's checks). */
  get state(): SnapshotWant {
    return this.want;
  }

  /** An entry with `bytes` of data was applied. */
  applied(bytes: number): void {
    this.bytesSince += bytes;
  }

  /**
   * A snapshot from the leader was installed at `index`: it is this replica's latest (its marker
   * is in the WAL too), so one put off or asked for by the purge is no longer needed. A new
   * member's is taken regardless.
   */
  installed(index: number, bytes: number): void {
    this.index = index;
    this.bytes = bytes;
    this.bytesSince = 0;
    if (this.want !== SnapshotWant.ForMember) this.want = SnapshotWant.None;
  }

  /** A new member joined the group: the next Ready takes a snapshot, whatever the budget. */
  memberJoined(): void {
    this.want = SnapshotWant.ForMember;
  }

  /** Asks for a snapshot at the next chance (`wal-purge.ts`). */
  request(): void {
    if (this.want === SnapshotWant.None) this.want = SnapshotWant.Wanted;
  }

  /** A snapshot is asked for, put off or needed by a new member. */
  get wanted(): boolean {
    return this.want !== SnapshotWant.None;
  }

  /** The last one due was put off by a turn's budget: this replica wants a turn soon. */
  get putOff(): boolean {
    return this.want === SnapshotWant.PutOff;
  }

  /**
   * Takes a snapshot at `applied` if one is wanted or a bound is reached and the turn's budget
   * has room (a new member's needs none), then compacts the log, keeping at most
   * `retainedEntries` and `retainedBytes` behind it. Returns what it took, or undefined.
   */
  maybeTake(applied: number, confState: ConfState, encode: () => Uint8Array): SnapshotTaken | undefined {
    // A put-off snapshot is tried again now: still wanted, but no longer owed a turn of its own.
    if (this.want === SnapshotWant.PutOff) this.want = SnapshotWant.Wanted;
    if (applied <= this.index) return undefined;
    const { intervalEntries, logBytes, spread, budget } = this.bounds;
    const due = applied - this.index >= intervalEntries * spread || this.bytesSince >= Math.max(logBytes, this.bytes) * spread;
    if (this.want === SnapshotWant.None && !due) return undefined;
    if (this.want !== SnapshotWant.ForMember && budget?.hasRoom() === false) {
      // Past this turn's budget: a turn without a Ready takes it (the replica's snapshotIfWanted),
      // and the host gives this replica the next turn.
      this.want = SnapshotWant.PutOff;
      return undefined;
    }
    const wanted = this.want !== SnapshotWant.None;
    this.want = SnapshotWant.None;
    const snapshot = this.storage.createSnapshot(applied, confState, encode());
    budget?.spend(snapshot.data.length);
    this.index = applied;
    this.bytes = snapshot.data.length;
    this.bytesSince = 0;
    const keepFrom = this.retainFrom(applied);
    if (keepFrom > this.storage.firstIndex()) this.storage.compact(keepFrom);
    return { index: applied, bytes: this.bytes, retained: applied + 1 - keepFrom, wanted };
  }

  /**
   * The first entry to keep behind a snapshot at `applied`: at most `retainedEntries`, and of
   * those the newest whose data fits in `retainedBytes` (counted entry by entry: one large
   * transaction among small puts must not keep megabytes). A follower further behind gets a
   * snapshot instead, which is all a short log costs.
   */
  private retainFrom(applied: number): number {
    const { retainedEntries, retainedBytes } = this.bounds;
    const first = Math.max(this.storage.firstIndex(), applied + 1 - retainedEntries);
    if (retainedBytes === Number.POSITIVE_INFINITY || first > applied) return first;
    const kept = this.storage.entries(first, applied + 1, Number.POSITIVE_INFINITY);
    if (!kept.ok) return first;
    let bytes = 0;
    let from = applied + 1;
    for (let i = kept.value.length - 1; i >= 0; i--) {
      bytes += kept.value[i]?.data.length ?? 0;
      if (bytes > retainedBytes) break;
      from -= 1;
    }
    return from;
  }
}
