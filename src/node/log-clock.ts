/**
 * Log time as a leader stamps it into the writes it proposes (`proposedAtMs` in
 * `kv-command.ts`). It is the KV state machine's only clock: it decides when remembered
 * results and idle client sessions are forgotten (`session-table.ts`). The state machine
 * takes the largest stamp applied so far, so log time never runs backwards; this file
 * makes sure it does not jump with one leader's wall clock either.
 *
 * Stamping a proposal with the leader's wall clock (what this replaced) let one node with
 * a wrong clock move every session's age at once: a new leader 60 s ahead made retries of
 * writes that had applied look "expired, not applied", one 10 minutes ahead made the state
 * machine forget the sessions and apply the retries again. Taking max(previous log time,
 * wall clock) keeps log time from going back but not from jumping ahead.
 *
 * Rule: a leader measures how long it has been since it knew the log's time, with its
 * monotonic clock, and moves log time forward by that much — a little more or less (at
 * most {@link LOG_CLOCK_SLEW}) when that brings it closer to its wall clock:
 *
 * ```
 * known    the log time this leader knows: at the start of its term, the state machine's
 *          applied log time; then its own last stamp, or the applied log time when entries
 *          of an earlier leader applied since carry a later one
 * elapsed  this node's monotonic ms since it learned `known`
 * stamp    known + clamp(wallClock − known, elapsed·(1 − SLEW), elapsed·(1 + SLEW))
 * ```
 *
 * So between two entries log time advances by the real time between their proposals times
 * (1 ± SLEW)(1 ± the monotonic clocks' drift), whatever any wall clock says: a leader
 * minutes ahead or behind moves it at most 1% faster or slower than real time while it
 * leads. Every stamp is a committed log time plus time measured since by one monotonic
 * clock, so no chain of leaders can add more than that either (a new term starts from the
 * applied log time, never from stamps of the old term that might not have committed).
 * Failovers lose time — the new leader starts from the last log time it applied — so
 * log time lags real time a little after each; the slew wins it back. Lagging is the
 * safe direction: sessions are then kept longer.
 *
 * Only when the leader knows no log time at all (its state machine has applied no command:
 * a new shard) does it take its wall clock as is; log time starts there.
 * @internal
 */

/**
 * How much faster or slower than its own monotonic clock a leader may move log time to
 * converge on its wall clock (a fraction). Default 0.01: log time follows a correct
 * leader's wall clock, a wrong clock can speed it up or slow it down by at most 1%, and
 * the second or so of log time a failover loses is won back within a few minutes. Larger
 * converges faster but lets a wrong clock age sessions faster; 0 ignores wall clocks after
 * a shard's first command.
 */
export const LOG_CLOCK_SLEW = 0.01;

/** What a leader reads when it stamps a batch of proposals. */
export interface LogClockReading {
  /** The leader's current term: a new term starts again from the applied log time. */
  term: number;
  /** The state machine's log time: the largest stamp applied so far (0 = none yet). */
  appliedLogTimeMs: number;
  /** This node's wall clock (ms since the epoch). */
  wallClockMs: number;
  /** This node's monotonic clock (ms). */
  monotonicMs: number;
}

/** One replica's proposer side of log time (see the file comment). */
export class LogClock {
  private term = -1;
  /** The log time this leader knows, with a fraction (stamps are whole ms). */
  private knownMs = 0;
  /** Monotonic ms when {@link knownMs} was learned. */
  private knownAtMs = 0;

  /** The log time to stamp into proposals now: never below the applied log time or an earlier stamp of this term. */
  stamp(reading: LogClockReading): number {
    const { term, appliedLogTimeMs, wallClockMs, monotonicMs } = reading;
    if (term !== this.term || appliedLogTimeMs > this.knownMs) {
      this.term = term;
      this.knownMs = appliedLogTimeMs;
      this.knownAtMs = monotonicMs;
    }
    if (this.knownMs === 0) {
      // Nothing known: a new shard's first command starts log time at this wall clock.
      this.knownMs = wallClockMs;
    } else {
      const elapsedMs = Math.max(0, monotonicMs - this.knownAtMs);
      const towardWallMs = wallClockMs - this.knownMs;
      const low = elapsedMs * (1 - LOG_CLOCK_SLEW);
      const high = elapsedMs * (1 + LOG_CLOCK_SLEW);
      this.knownMs += Math.min(high, Math.max(low, towardWallMs));
    }
    this.knownAtMs = monotonicMs;
    return Math.floor(this.knownMs);
  }
}
