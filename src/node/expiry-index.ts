/**
 * Keys by expiry time, so a state machine removes the keys due at a log time without a scan:
 * a binary min-heap of (expiresAtMs, key, version). An entry goes stale when its key is written
 * again or deleted; stale entries are dropped as they reach the top (the key's current version
 * no longer matches), so every write is O(log n) and removal costs only the keys removed.
 * @internal
 */

interface ExpiryEntry {
  expiresAtMs: number;
  key: string;
  version: number;
}

export class ExpiryIndex {
  private readonly heap: ExpiryEntry[] = [];

  /** Entries held, stale ones included (tests, metrics). */
  get size(): number {
    return this.heap.length;
  }

  add(key: string, version: number, expiresAtMs: number): void {
    const heap = this.heap;
    heap.push({ expiresAtMs, key, version });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as ExpiryEntry, heap[parent] as ExpiryEntry)) break;
      swap(heap, i, parent);
      i = parent;
    }
  }

  /**
   * The earliest expiry still live (`live(key, version)` says whether an entry still names the
   * key's current version), dropping stale entries on the way; undefined when none.
   */
  earliest(live: (key: string, version: number) => boolean): number | undefined {
    for (let top = this.heap[0]; top !== undefined; top = this.heap[0]) {
      if (live(top.key, top.version)) return top.expiresAtMs;
      this.pop();
    }
    return undefined;
  }

  /** Takes out every entry due at `nowMs` (stale ones too: the caller checks), earliest first. */
  takeDue(nowMs: number): ExpiryEntry[] {
    const due: ExpiryEntry[] = [];
    for (let top = this.heap[0]; top !== undefined && top.expiresAtMs <= nowMs; top = this.heap[0]) due.push(this.pop());
    return due;
  }

  private pop(): ExpiryEntry {
    const heap = this.heap;
    const top = heap[0] as ExpiryEntry;
    const last = heap.pop() as ExpiryEntry;
    if (heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left] as ExpiryEntry, heap[smallest] as ExpiryEntry)) smallest = left;
      if (right < heap.length && before(heap[right] as ExpiryEntry, heap[smallest] as ExpiryEntry)) smallest = right;
      if (smallest === i) return top;
      swap(heap, i, smallest);
      i = smallest;
    }
  }
}

function before(a: ExpiryEntry, b: ExpiryEntry): boolean {
  return a.expiresAtMs < b.expiresAtMs;
}

function swap(heap: ExpiryEntry[], i: number, j: number): void {
  const held = heap[i] as ExpiryEntry;
  heap[i] = heap[j] as ExpiryEntry;
  heap[j] = held;
}
