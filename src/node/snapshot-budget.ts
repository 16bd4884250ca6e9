/**
 * How much snapshot encoding a node does per turn. Encoding a replica's snapshot is synchronous
 * (about 1 ms for 300 KB of keys and session results alone, 5–13 ms on the 2-core bench machine
 * shared with the other nodes and the client), and the replicas of a node tend to want theirs
 * together: the WAL purge asks every replica that pins the oldest segment at once, and groups
 * loaded alike reach their byte or entry bound in the same few turns. 66 of them in one turn
 * stalled a node's event loop for 270–580 ms (its `nodejs_eventloop_lag_max_seconds`), which
 * every request in flight waited out. So a turn takes snapshots while it has encoded less than
 * its budget of bytes — at least one, and many small ones (idle groups the purge asks for, which
 * have no Ready and get only the turn's budget, drain many per fsync). A replica past the budget
 * wants its snapshot from then on and is given the next turn (`Replica.snapshotDue`, `TurnLoop`),
 * where the budget is full again. Taking a snapshot later is always safe; it only keeps the log
 * (in memory and in the WAL) a little longer.
 * @internal
 */
export class SnapshotBudget {
  private spent = 0;

  constructor(readonly bytesPerTurn: number) {
    // With none, replicas put off would be given turn after turn and never snapshot.
    if (!Number.isInteger(bytesPerTurn) || bytesPerTurn < 1) {
      throw new RangeError(`snapshot bytes per turn must be an integer of at least 1, got ${bytesPerTurn}`);
    }
  }

  /** A new turn (or a sync's completion, where Readies finish): the full budget again. */
  refill(): void {
    this.spent = 0;
  }

  /** True while this turn has encoded less than its budget: one more snapshot may be taken. */
  hasRoom(): boolean {
    return this.spent < this.bytesPerTurn;
  }

  /** Counts a snapshot of `bytes` taken in this turn (at least one byte: a budget of 1 is one snapshot). */
  spend(bytes: number): void {
    this.spent += Math.max(1, bytes);
  }
}

/**
 * Snapshot bytes a node encodes per turn: 128 KiB, so one snapshot of a busy shard of the bench
 * (~230 KB of 1 KiB values and session results; the first is always taken) and dozens of small
 * ones. A loaded node runs hundreds of turns a second, so even the WAL purge's 66 wanted
 * snapshots are all taken within a fraction of a second, while each turn (and each sync's
 * completion) adds about one encoding to the wait of the requests in it. With 4 snapshots a
 * turn, a node under the bench-vs-etcd load (64 in flight, 1 KiB values) ran turns of 30–115 ms,
 * most of it 4 encodings; with one, its turns with a snapshot took at most 28 ms.
 */
export const SNAPSHOT_BYTES_PER_TURN = 128 * 1024;

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
