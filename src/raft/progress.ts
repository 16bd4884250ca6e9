/**
 * The leader's replication state for one follower (etcd `tracker/progress.go`).
 */
import { assertInvariant } from './errors.js';
import { Inflights } from './inflights.js';
import { ProgressState } from './types.js';

/**
 * Where one member's log stands, as far as the leader knows.
 *
 * Invariant: `match < next` (the leader never sends an entry it already knows
 * the follower has as "next"). Checked on every transition.
 */
export class Progress {
  /** Highest index known to match the leader's log. */
  match: number;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In `snapshot` state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round (Raft thesis §6.2). */
  recentActive = false;
  /**
   * Appends are paused: in `probe` state one is out (wait for its answer or a
   * heartbeat response); in `replicate` state the in-flight window is full. A
   * heartbeat response clears it so a lost append is detected and re-sent.
   */
  msgAppFlowPaused = false;
  /** Highest commit index sent; lets the leader skip empty appends that tell nothing new. */
  sentCommit = 0;
  /**
   * An append went out since the last heartbeat: the follower heard from this leader (its
   * election timer reset) and will answer (CheckQuorum sees it), so with `piggyback` the
   * next periodic heartbeat skips it.
   */
  appendSinceHeartbeat = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(match: number, next: number, maxInflight: number, isLearner: boolean) {
    this.match = match;
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflight);
    this.checkInvariant();
  }

  private checkInvariant(): void {
    assertInvariant(this.match < this.next, 'progress match must be below next', { match: this.match, next: this.next });
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** A fresh start on a new term: probe from `next`, forget what was sent. */
  reset(match: number, next: number, recentActive: boolean): void {
    this.resetState(ProgressState.Probe);
    this.match = match;
    this.next = next;
    this.sentCommit = 0;
    this.appendSinceHeartbeat = false;
    this.recentActive = recentActive;
    this.checkInvariant();
  }

  /** Back to probing after a rejection, unreachability, or a finished snapshot. */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
    this.checkInvariant();
  }

  /** Logs match: stream appends optimistically. */
  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
    this.checkInvariant();
  }

  /** The follower needs the snapshot at `snapshotIndex`; stop appends until it is installed. */
  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** True when the leader must not send appends now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
      case ProgressState.Replicate:
        return this.msgAppFlowPaused;
      default:
        return true;
    }
  }

  /** Accounts for an append carrying entries up to `lastIndex` (or none). */
  sentEntries(entryCount: number, lastIndex: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === ProgressState.Probe) {
      this.msgAppFlowPaused = true;
    }
    this.checkInvariant();
  }

  /** An ack up to `index`: returns true if it moved `match` forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    this.checkInvariant();
    return updated;
  }

  /**
   * A rejection of the append at `rejected`, with the follower's hint that its
   * log may match up to `matchHint`. Returns false for a stale rejection.
   */
  maybeDecreaseTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      this.checkInvariant();
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    this.checkInvariant();
    return true;
  }
}
