/**
 * The replica's log: stable storage plus the unstable tail (etcd `log.go`),
 * with the commit and apply cursors.
 */
import { assertInvariant, RaftInvariantError } from './errors.js';
import { UnstableLog } from './unstable-log.js';
import type { Entry, Snapshot, Storage, StorageResult } from './types.js';

/** Bytes an entry counts for in message and Ready size limits. */
export function entrySize(entry: Entry): number {
  return entry.data.length;
}

/** A `(index, term)` pair, for conflict hints. */
export interface IndexTerm {
  index: number;
  term: number;
}

/**
 * Invariant: `applied <= applying <= committed <= lastIndex()` (etcd `log.go`).
 * `applying` is what the last Ready handed out; `applied` what `advance()` confirmed.
 */
export class RaftLog {
  readonly unstable: UnstableLog;
  /** Highest index known committed (Raft §5.3). */
  committed: number;
  /** Highest index handed to the application for applying. */
  applying: number;
  /** Highest index the application confirmed applied. */
  applied: number;

  constructor(
    readonly storage: Storage,
    /** Bound on the bytes of committed entries per Ready. */
    private readonly maxCommittedBytesPerReady: number,
  ) {
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new UnstableLog(lastIndex + 1);
    this.committed = firstIndex - 1;
    this.applying = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  private checkInvariant(): void {
    assertInvariant(
      this.applied <= this.applying && this.applying <= this.committed && this.committed <= this.lastIndex(),
      'log cursors out of order',
      { applied: this.applied, applying: this.applying, committed: this.committed, lastIndex: this.lastIndex() },
    );
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    if (term === undefined) throw new RaftInvariantError('term of the last index unavailable', { lastIndex: this.lastIndex() });
    return term;
  }

  /** Term at `index`, or undefined when compacted away or beyond the log. */
  term(index: number): number | undefined {
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== undefined) return unstableTerm;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    const stored = this.storage.term(index);
    return stored.ok ? stored.value : undefined;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The first index where `entries` disagree with the log (0 if none and nothing new). */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The last index ≤ `index` whose term is ≤ `term` (etcd `findConflictByTerm`).
   * A follower answers a rejected append with it, so the leader skips a whole
   * conflicting term per round trip instead of one entry (Raft §5.3, "optimization").
   */
  findConflictByTerm(index: number, term: number): IndexTerm {
    let candidate = index;
    for (; candidate > 0; candidate--) {
      const ourTerm = this.term(candidate);
      if (ourTerm === undefined) return { index: candidate, term: 0 };
      if (ourTerm <= term) return { index: candidate, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  /**
   * The follower side of AppendEntries (Raft §5.3): if our entry at `index` has
   * `logTerm`, append `entries` (truncating a conflicting suffix) and commit up
   * to `min(commit, last new index)`. Returns the last new index, or undefined
   * when the log does not match.
   */
  maybeAppend(index: number, logTerm: number, commit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assertInvariant(conflict > this.committed, 'conflict with a committed entry', { conflict, committed: this.committed });
      this.append(entries.slice(conflict - index - 1));
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries (possibly replacing an uncommitted suffix); returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = (entries[0] as Entry).index - 1;
    assertInvariant(after >= this.committed, 'append would overwrite committed entries', { after, committed: this.committed });
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /** Appends one entry that directly follows the last (the leader's proposal path). */
  appendOne(entry: Entry): void {
    assertInvariant(entry.index === this.lastIndex() + 1, 'leader append out of order', { index: entry.index });
    if (this.unstable.length === 0 && this.unstable.snapshot === undefined) this.unstable.offset = entry.index;
    this.unstable.push(entry);
  }

  /** Entries from `lo` to the end, at most `maxBytes` after the first; `COMPACTED` if `lo` is gone. */
  entriesFrom(lo: number, maxBytes: number): StorageResult<Entry[]> {
    const last = this.lastIndex();
    if (lo > last) return { ok: true, value: [] };
    return this.slice(lo, last + 1, maxBytes);
  }

  /** Entries in `[lo, hi)`, at least one, at most `maxBytes` of data after the first. */
  slice(lo: number, hi: number, maxBytes: number): StorageResult<Entry[]> {
    if (lo < this.firstIndex()) return { ok: false, reason: 'COMPACTED' };
    assertInvariant(hi <= this.lastIndex() + 1, 'slice beyond the last index', { lo, hi, lastIndex: this.lastIndex() });
    if (lo >= hi) return { ok: true, value: [] };
    const offset = this.unstable.offset;
    let result: Entry[] = [];
    let bytes = 0;
    if (lo < offset) {
      const storageHi = Math.min(hi, offset);
      const stored = this.storage.entries(lo, storageHi, maxBytes);
      if (!stored.ok) {
        if (stored.reason === 'COMPACTED') return stored;
        throw new RaftInvariantError('storage entries unavailable', { lo, hi: storageHi }, 'STORAGE');
      }
      result = stored.value;
      if (result.length < storageHi - lo) return { ok: true, value: result };
      for (const entry of result) bytes += entrySize(entry);
    }
    for (let index = Math.max(lo, offset); index < hi; index++) {
      const entry = this.unstable.entryAt(index) as Entry;
      bytes += entrySize(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return { ok: true, value: result };
  }

  /** True when an incoming snapshot awaits persisting. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** True when committed entries await applying (none while a snapshot is pending). */
  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.committed > Math.max(this.applying, this.firstIndex() - 1);
  }

  /** The next committed entries to apply, bounded by bytes. */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const result = this.slice(lo, this.committed + 1, this.maxCommittedBytesPerReady);
    if (!result.ok) throw new RaftInvariantError('committed entries compacted before applying', { lo, applied: this.applied });
    return result.value;
  }

  /** Raises the commit index; it never moves backwards. */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assertInvariant(index <= this.lastIndex(), 'commit beyond the last index', { index, lastIndex: this.lastIndex() });
    this.committed = index;
  }

  /**
   * Commits `index` only when its entry is of `term`, the leader's current term.
   * Raft §5.4.2: a leader never commits an entry of an earlier term by counting
   * replicas; such entries commit indirectly, with the first entry of its own term.
   */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  /** The application was handed entries through `index`. */
  applyingTo(index: number): void {
    this.applying = Math.max(this.applying, index);
    this.checkInvariant();
  }

  /** The application applied through `index`. */
  appliedTo(index: number): void {
    this.applied = Math.max(this.applied, index);
    this.applying = Math.max(this.applying, this.applied);
    this.checkInvariant();
  }

  /**
   * The last index the caller has made durable (`advance` reported it): entries after
   * it are still in the unstable tail, on their way to storage.
   */
  stableLastIndex(): number {
    return this.unstable.length > 0 ? this.unstable.offset - 1 : this.lastIndex();
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapshotTo(index: number): void {
    this.unstable.stableSnapshotTo(index);
  }

  /** Replaces the log with an incoming snapshot (follower side of InstallSnapshot, Raft §7). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /** The snapshot to send a lagging follower: the unstable one, else storage's. */
  snapshot(): StorageResult<Snapshot> {
    if (this.unstable.snapshot !== undefined) return { ok: true, value: this.unstable.snapshot };
    return this.storage.snapshot();
  }
}
