/**
 * The tail of the log not yet on stable storage (etcd `log_unstable.go`):
 * entries (and possibly an incoming snapshot) that a Ready hands out for
 * persisting, until `advance()` says they are stable.
 */
import { assertInvariant } from './errors.js';
import type { Entry, Snapshot } from './types.js';

/**
 * Live entries are `buffer[head..]`, and `buffer[head].index === offset`.
 * Stabilising advances `head` instead of shifting the array (no O(n) work per
 * Ready); the buffer is compacted once the dead prefix dominates.
 */
export class UnstableLog {
  /** An incoming snapshot not yet persisted. */
  snapshot: Snapshot | undefined;
  private buffer: Entry[] = [];
  private head = 0;
  /** Index of the first unstable entry (one past the last stable one). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** Number of unstable entries. */
  get length(): number {
    return this.buffer.length - this.head;
  }

  /** First index known from the unstable snapshot, if any. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  /** Last index held here, if any. */
  maybeLastIndex(): number | undefined {
    if (this.length > 0) return this.offset + this.length - 1;
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index;
  }

  /** Term at `index` if held here. */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return undefined;
    }
    const entry = this.buffer[this.head + index - this.offset];
    return entry === undefined ? undefined : entry.term;
  }

  /** The entry at `index`, which must be held here. */
  entryAt(index: number): Entry | undefined {
    if (index < this.offset) return undefined;
    return this.buffer[this.head + index - this.offset];
  }

  /** A copy of all unstable entries (handed to a Ready). */
  allEntries(): Entry[] {
    return this.buffer.slice(this.head);
  }

  /** Entries in `[lo, hi)`; both must lie within `[offset, lastIndex + 1]`. */
  slice(lo: number, hi: number): Entry[] {
    assertInvariant(lo >= this.offset && hi <= this.offset + this.length && lo <= hi, 'unstable slice out of bounds', {
      lo,
      hi,
      offset: this.offset,
      length: this.length,
    });
    return this.buffer.slice(this.head + lo - this.offset, this.head + hi - this.offset);
  }

  /** Entries through `index` (of `term`) are now on stable storage. */
  stableTo(index: number, term: number): void {
    const held = this.maybeTerm(index);
    // A mismatch means the entries were replaced since the Ready: keep the new ones.
    if (held === undefined || held !== term || index < this.offset) return;
    const count = index + 1 - this.offset;
    this.head += count;
    this.offset = index + 1;
    if (this.head === this.buffer.length) {
      this.buffer = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
  }

  /** The unstable snapshot at `index` is now persisted. */
  stableSnapshotTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) this.snapshot = undefined;
  }

  /** Replaces everything with an incoming snapshot. */
  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.buffer = [];
    this.head = 0;
    this.snapshot = snapshot;
  }

  /** Appends `entries`, first dropping any held suffix they replace. */
  truncateAndAppend(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = (entries[0] as Entry).index;
    if (after === this.offset + this.length) {
      for (const entry of entries) this.buffer.push(entry);
    } else if (after <= this.offset) {
      // Replaces every unstable entry (and part of the stable log, which
      // storage.append truncates when the Ready is persisted).
      this.offset = after;
      this.buffer = entries.slice();
      this.head = 0;
    } else {
      assertInvariant(after < this.offset + this.length, 'unstable append leaves a gap', { after, offset: this.offset });
      this.buffer.length = this.head + after - this.offset;
      for (const entry of entries) this.buffer.push(entry);
    }
  }

  /** Appends one entry at the end (the leader's hot path). */
  push(entry: Entry): void {
    this.buffer.push(entry);
  }
}
