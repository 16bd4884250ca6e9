/**
 * What a replica hands back to the KV service: outcomes as values (STYLE.md §4).
 * @internal
 */
import type { StoredValue, WriteResult } from './kv-state-machine.js';

/** Why a request did not get a result from the state machine. */
export type FailureReason =
  /** This replica is not the leader; the caller may look up the leader hint. */
  | 'NOT_LEADER'
  /** The proposal's log position was taken by another entry (leader change): not applied; retry within the session. */
  | 'DROPPED'
  /** No answer within the deadline: for a write the outcome is unknown. */
  | 'TIMEOUT'
  /** The replica is stopping, was removed, or cannot take proposals now. */
  | 'UNAVAILABLE'
  /** The replica holds as many waiting requests as it admits (`replica-admission.ts`): not applied; back off. */
  | 'REPLICA_REQUESTS_FULL'
  /** The replica holds as many waiting request bytes as it admits: not applied; back off. */
  | 'REPLICA_BYTES_FULL';

/** The outcome of a write. */
export type WriteOutcome = { ok: true; result: WriteResult } | { ok: false; reason: FailureReason };

/** The outcome of a linearizable read: the stored value, or undefined when absent. */
export type ReadOutcome = { ok: true; value: StoredValue | undefined } | { ok: false; reason: FailureReason };

/** Called once with a write's outcome. */
export type WriteCallback = (outcome: WriteOutcome) => void;
/** Called once with a read's outcome. */
export type ReadCallback = (outcome: ReadOutcome) => void;

/** How long the node waits for a proposal to apply or a read to be confirmed (ms). */
export const REQUEST_TIMEOUT_MS = 3_000;
