/**
 * The bounded window of append messages in flight to one follower (etcd
 * `tracker/inflights.go`). A fixed ring buffer: adding and freeing never
 * allocate or shift, which matters on the replication hot path.
 */
import { assertInvariant } from './errors.js';

/**
 * Last entry indexes of the appends sent but not yet acknowledged, oldest first.
 * Full means the leader stops sending new entries to this follower until acks
 * free slots: the bound on in-flight messages (flow control).
 */
export class Inflights {
  /** Ring of last indexes; `count` valid slots starting at `start`. */
  private readonly buffer: number[];
  private start = 0;
  private count_ = 0;

  /** @param capacity the most appends in flight (`maxInflightMsgs`, ≥ 1). */
  constructor(readonly capacity: number) {
    assertInvariant(capacity >= 1, 'inflights capacity must be at least 1', { capacity });
    this.buffer = new Array<number>(capacity).fill(0);
  }

  /** How many appends are in flight. */
  get count(): number {
    return this.count_;
  }

  /** True when no more appends may be sent. */
  full(): boolean {
    return this.count_ === this.capacity;
  }

  /** Records an append whose last entry is `lastIndex`; indexes must increase. */
  add(lastIndex: number): void {
    assertInvariant(!this.full(), 'inflights overflow', { capacity: this.capacity });
    let slot = this.start + this.count_;
    if (slot >= this.capacity) slot -= this.capacity;
    this.buffer[slot] = lastIndex;
    this.count_++;
  }

  /** Frees every append whose last index is ≤ `index` (acknowledged). */
  freeLE(index: number): void {
    while (this.count_ > 0 && (this.buffer[this.start] as number) <= index) {
      this.start++;
      if (this.start === this.capacity) this.start = 0;
      this.count_--;
    }
    if (this.count_ === 0) this.start = 0;
  }

  /** Forgets everything (state change of the follower's progress). */
  reset(): void {
    this.start = 0;
    this.count_ = 0;
  }
}
