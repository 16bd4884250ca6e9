/**
 * How many snapshots a node takes per turn. Encoding a replica's snapshot is synchronous
 * (about 4 ms for 300 KB of keys and session results on the 2-core bench machine), and the
 * replicas of a node tend to want theirs together: the WAL purge asks every replica that pins
 * the oldest segment at once, and groups loaded alike reach their byte or entry bound in the
 * same few turns. 66 of them in one turn stalled a node's event loop for 270–580 ms (its
 * `nodejs_eventloop_lag_max_seconds`), which every request in flight waited out. A replica
 * past its budget wants its snapshot from then on and is given the next turn
 * (`Replica.snapshotDue`, `TurnLoop`), where the budget is full again. Taking a snapshot later
 * is always safe; it only keeps the log (in memory and in the WAL) a little longer.
 * @internal
 */
export class SnapshotBudget {
  private left: number;

  constructor(readonly perTurn: number) {
    // With none, replicas put off would be given turn after turn and never snapshot.
    if (!Number.isInteger(perTurn) || perTurn < 1) throw new RangeError(`snapshots per turn must be an integer of at least 1, got ${perTurn}`);
    this.left = perTurn;
  }

  /** A new turn (or a sync's completion, where Readies finish): the full budget again. */
  refill(): void {
    this.left = this.perTurn;
  }

  /** Takes one snapshot's room; false when this turn's is spent. */
  take(): boolean {
    if (this.left <= 0) return false;
    this.left -= 1;
    return true;
  }
}

/**
 * Snapshots per turn on a node: one. A loaded node runs hundreds of turns a second, so even
 * the WAL purge's 66 wanted snapshots are all taken within a fraction of a second, while each
 * turn (and each sync's completion) adds at most one encoding to the wait of the requests in
 * it. With 4, a node under the bench-vs-etcd load (64 in flight, 1 KiB values) ran turns of
 * 30–74 ms: 4 encodings of ~230 KB each, 1 ms apiece alone but 5–13 ms on two cores shared
 * with the other nodes and the client.
 */
export const SNAPSHOTS_PER_TURN = 1;

/** The golden ratio's fractional part: consecutive shard ids land far apart in [0, 1). */
const GOLDEN_FRACTION = 0.6180339887498949;

/**
 * A replica's multiple of the snapshot bounds, in [0.75, 1.25), the same for every replica of
 * a shard and spread evenly over a node's shards. Groups loaded alike (uniform keys, the
 * bench) otherwise reach their byte bound within the same second, every ~20 s, and queue up
 * for the budget: a burst of turns each carrying an encoding. With their bounds a quarter
 * apart either way their snapshots fall at different times, and the mean bound is unchanged.
 */
export function snapshotSpread(shardId: number): number {
  return 0.75 + 0.5 * ((shardId * GOLDEN_FRACTION) % 1);
}
