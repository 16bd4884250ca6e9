/**
 * One group's durable storage: the in-memory view the core reads (a
 * {@link MemoryStorage}) plus the WAL records that make it survive a crash.
 * Writes go to both at once, but the WAL part is only buffered: nothing is
 * durable until the host calls `wal.sync()`, once per turn for all groups
 * (group commit, STYLE.md §5).
 */
import type {
  ConfState,
  Entry,
  HardState,
  InitialState,
  Snapshot,
  StorageResult,
  WritableStorage,
} from '../types.js';
import type { MemoryStorage } from './memory-storage.js';

/**
 * The WAL as one group's storage sees it: buffered appends of that group's
 * records. Created by `Wal.openGroup`.
 *
 * @internal
 */
export interface GroupLog {
  readonly groupId: number;
  /** Throws `WalError` (`CLOSED`, `GROUP_DROPPED`) when the group may no longer write. */
  checkWritable(): void;
  appendEntries(entries: Entry[]): void;
  appendHardState(hardState: HardState): void;
  /** `replacesLog`: the snapshot came from the leader and discards the whole log. */
  appendSnapshot(snapshot: Snapshot, replacesLog: boolean): void;
}

/**
 * {@link WritableStorage} for one Raft group, backed by the node's shared WAL.
 * Obtain it from `Wal.openGroup(groupId)`; after a restart the same call
 * returns the recovered hard state, snapshot and entries.
 *
 * Contract (Ready, src/raft/types.ts): after `setHardState`, `append` or
 * `applySnapshot`, the change is visible to reads at once but is durable only
 * once a later `wal.sync()` resolves. The host MUST await that sync BEFORE
 * sending the Ready's messages. `createSnapshot` is visible at once and durable
 * a little later (below): nothing any message claims depends on it.
 */
export class DurableStorage implements WritableStorage {
  private readonly memory: MemoryStorage;
  private readonly log: GroupLog;

  /** @internal Use `Wal.openGroup`. */
  constructor(memory: MemoryStorage, log: GroupLog) {
    this.memory = memory;
    this.log = log;
  }

  /** The group (shard) id this storage's records are tagged with. */
  get groupId(): number {
    return this.log.groupId;
  }

  initialState(): InitialState {
    return this.memory.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): StorageResult<Entry[]> {
    return this.memory.entries(lo, hi, maxBytes);
  }

  term(index: number): StorageResult<number> {
    return this.memory.term(index);
  }

  firstIndex(): number {
    return this.memory.firstIndex();
  }

  lastIndex(): number {
    return this.memory.lastIndex();
  }

  snapshot(): StorageResult<Snapshot> {
    return this.memory.snapshot();
  }

  /** Records the hard state; durable after the next `wal.sync()`. */
  setHardState(hardState: HardState): void {
    this.log.checkWritable();
    this.memory.setHardState(hardState);
    this.log.appendHardState(hardState);
  }

  /**
   * Appends entries, replacing any suffix from the first entry's index on;
   * durable after the next `wal.sync()`. Entries at or below the compaction
   * point are skipped, and only what the in-memory log kept is logged, so
   * recovery rebuilds exactly this log.
   */
  append(entries: Entry[]): void {
    this.log.checkWritable();
    const first = entries[0];
    if (first === undefined) return;
    const firstIndex = this.memory.firstIndex();
    const kept = first.index >= firstIndex ? entries : entries.slice(firstIndex - first.index);
    if (kept.length === 0) return;
    this.memory.append(kept);
    this.log.appendEntries(kept);
  }

  /**
   * Replaces the whole log with a snapshot from the leader. Its data file is
   * written and fsynced by the next `wal.sync()`, BEFORE the marker naming it.
   */
  applySnapshot(snapshot: Snapshot): void {
    this.log.checkWritable();
    this.memory.applySnapshot(snapshot);
    this.log.appendSnapshot(snapshot, true);
  }

  /**
   * Records the application's snapshot at `index`. Its data file is written in
   * the background and its marker appended once the file is durable, then synced
   * (`wal.syncAll()` waits for both): no `wal.sync()` waits for the file. Until the
   * marker is durable a restart recovers the previous snapshot and the entries
   * after it; once it is, WAL segments holding only entries ≤ `index` of this
   * group may be deleted.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    this.log.checkWritable();
    const snapshot = this.memory.createSnapshot(index, confState, data);
    this.log.appendSnapshot(snapshot, false);
    return snapshot;
  }

  /**
   * Discards in-memory entries before `index` (≤ latest snapshot index + 1).
   * Writes nothing: recovery starts the log right after the latest snapshot anyway.
   */
  compact(index: number): void {
    this.memory.compact(index);
  }
}
