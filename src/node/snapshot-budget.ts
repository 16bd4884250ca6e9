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

/** Snapshots per turn on a node: a few at a time, so no turn encodes more than ~40 ms of them. */
export const SNAPSHOTS_PER_TURN = 4;
