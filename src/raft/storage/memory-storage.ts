/**
 * An in-memory {@link WritableStorage} (etcd `storage.go` `MemoryStorage`):
 * the storage of tests and the simulation, and the in-memory half that the
 * durable storage composes with its WAL.
 *
 * Layout: `entries[0]` is a dummy entry holding the index and term of the last
 * discarded entry (the compaction point), so `term(firstIndex() - 1)` is always
 * answerable. Invariant: `entries[i].index === entries[0].index + i`.
 */
import { RaftInvariantError } from '../errors.js';
import {
  EntryType,
  NONE,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type StorageResult,
  type WritableStorage,
} from '../types.js';

/** How a fresh {@link MemoryStorage} starts. */
export interface MemoryStorageOptions {
  /**
   * Initial members (bootstrap, DESIGN.md shared decisions): recorded as the
   * conf state of an empty snapshot at index 0, term 0. Omit for an
   * uninitialized replica that waits for the leader's snapshot.
   */
  confState?: ConfState;
  /** Initial hard state; defaults to term 0, no vote, commit 0. */
  hardState?: HardState;
}

const COMPACTED = { ok: false, reason: 'COMPACTED' } as const;
const UNAVAILABLE = { ok: false, reason: 'UNAVAILABLE' } as const;

/** Copies a conf state so callers cannot alias our arrays. */
function copyConfState(confState: ConfState): ConfState {
  return { voters: [...confState.voters], learners: [...confState.learners] };
}

/**
 * Log, hard state and latest snapshot held in memory. Not durable by itself:
 * a test that simulates a crash keeps this object (or a {@link clone}) as the
 * replica's "disk" and only writes to it what a Ready said to persist.
 */
export class MemoryStorage implements WritableStorage {
  private hardState: HardState;
  private latestSnapshot: Snapshot;
  /** `entries[0]` is the dummy at the compaction point; see the file comment. */
  private entries_: Entry[];

  constructor(options: MemoryStorageOptions = {}) {
    this.hardState = options.hardState ? { ...options.hardState } : { term: 0, vote: NONE, commit: 0 };
    const confState = options.confState ? copyConfState(options.confState) : { voters: [], learners: [] };
    this.latestSnapshot = { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) };
    this.entries_ = [{ index: 0, term: 0, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Hard state and the latest snapshot's conf state. */
  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: copyConfState(this.latestSnapshot.metadata.confState) };
  }

  /** The dummy entry; always present. */
  private get dummy(): Entry {
    const first = this.entries_[0];
    if (first === undefined) throw new RaftInvariantError('memory storage lost its dummy entry', {}, 'STORAGE');
    return first;
  }

  firstIndex(): number {
    return this.dummy.index + 1;
  }

  lastIndex(): number {
    return this.dummy.index + this.entries_.length - 1;
  }

  term(index: number): StorageResult<number> {
    const offset = this.dummy.index;
    if (index < offset) return COMPACTED;
    const entry = this.entries_[index - offset];
    if (entry === undefined) return UNAVAILABLE;
    return { ok: true, value: entry.term };
  }

  entries(lo: number, hi: number, maxBytes: number): StorageResult<Entry[]> {
    const offset = this.dummy.index;
    if (lo <= offset) return COMPACTED;
    if (hi > this.lastIndex() + 1) return UNAVAILABLE;
    if (lo >= hi) return { ok: true, value: [] };
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.entries_[index - offset] as Entry;
      bytes += entry.data.length;
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return { ok: true, value: result };
  }

  snapshot(): StorageResult<Snapshot> {
    return { ok: true, value: this.latestSnapshot };
  }

  setHardState(hardState: HardState): void {
    this.hardState = { ...hardState };
  }

  /**
   * Appends entries, replacing any existing suffix from `entries[0].index` on.
   * Entries at or below the compaction point are ignored (already covered by
   * the snapshot); a gap after the last index is a caller bug and throws.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    let toAppend = entries;
    const incomingFirst = (entries[0] as Entry).index;
    const incomingLast = incomingFirst + entries.length - 1;
    if (incomingLast < first) return;
    if (incomingFirst < first) toAppend = entries.slice(first - incomingFirst);
    const start = (toAppend[0] as Entry).index;
    const offset = this.dummy.index;
    const last = this.lastIndex();
    if (start > last + 1) {
      throw new RaftInvariantError('memory storage append leaves a gap', { start, lastIndex: last }, 'STORAGE');
    }
    if (start <= last) this.entries_.length = start - offset;
    for (const entry of toAppend) this.entries_.push(entry);
  }

  /** Replaces the log with `snapshot`; an older snapshot than the one held throws. */
  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.latestSnapshot.metadata.index && this.latestSnapshot.metadata.index > 0) {
      throw new RaftInvariantError('snapshot out of date', { index, held: this.latestSnapshot.metadata.index }, 'STORAGE');
    }
    this.latestSnapshot = {
      metadata: { index, term, confState: copyConfState(snapshot.metadata.confState) },
      data: snapshot.data,
    };
    this.entries_ = [{ index, term, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /**
   * Records the application's snapshot at `index` (≤ applied ≤ last index,
   * newer than the held one). Does not discard entries: call {@link compact}.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.latestSnapshot.metadata.index) {
      throw new RaftInvariantError('snapshot out of date', { index, held: this.latestSnapshot.metadata.index }, 'STORAGE');
    }
    const term = this.term(index);
    if (!term.ok) throw new RaftInvariantError('snapshot index not in the log', { index, reason: term.reason }, 'STORAGE');
    this.latestSnapshot = { metadata: { index, term: term.value, confState: copyConfState(confState) }, data };
    return this.latestSnapshot;
  }

  /**
   * Discards the entries before `index`, so `firstIndex()` becomes `index`.
   * `index` MUST be ≤ the latest snapshot's index + 1: entries not covered by
   * a snapshot are never thrown away. A compaction point already passed is a no-op.
   */
  compact(index: number): void {
    const offset = this.dummy.index;
    if (index - 1 <= offset) return;
    const snapshotIndex = this.latestSnapshot.metadata.index;
    if (index > snapshotIndex + 1) {
      throw new RaftInvariantError('compaction beyond the latest snapshot', { index, snapshotIndex }, 'STORAGE');
    }
    const newDummy = this.entries_[index - 1 - offset];
    if (newDummy === undefined) {
      throw new RaftInvariantError('compaction beyond the last index', { index, lastIndex: this.lastIndex() }, 'STORAGE');
    }
    const kept: Entry[] = [{ index: newDummy.index, term: newDummy.term, type: EntryType.Normal, data: new Uint8Array(0) }];
    for (let i = index - offset; i < this.entries_.length; i++) kept.push(this.entries_[i] as Entry);
    this.entries_ = kept;
  }

  /**
   * A copy that shares no mutable state (entries themselves are immutable):
   * the simulation's "disk image" of a crashed replica.
   */
  clone(): MemoryStorage {
    const copy = new MemoryStorage();
    copy.hardState = { ...this.hardState };
    copy.latestSnapshot = {
      metadata: { ...this.latestSnapshot.metadata, confState: copyConfState(this.latestSnapshot.metadata.confState) },
      data: this.latestSnapshot.data,
    };
    copy.entries_ = [...this.entries_];
    return copy;
  }
}
