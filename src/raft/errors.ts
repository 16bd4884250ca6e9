/**
 * Errors the Raft core throws. Expected outcomes (not leader, conf change
 * pending, …) are values, never exceptions; these are for bugs only.
 */

/** Codes of {@link RaftInvariantError}; branch on these, never on message text. */
export type RaftErrorCode = 'INVARIANT' | 'READY_NOT_ADVANCED' | 'STORAGE';

/**
 * A broken protocol invariant or a misuse of the API. The core cannot continue
 * safely: the host must log the fields and stop the replica (STYLE.md §4).
 */
export class RaftInvariantError extends Error {
  /** What kind of breakage this is. */
  readonly code: RaftErrorCode;
  /** Structured context (indexes, terms); never user values. */
  readonly fields: Record<string, unknown>;

  constructor(message: string, fields: Record<string, unknown> = {}, code: RaftErrorCode = 'INVARIANT') {
    super(message);
    this.name = 'RaftInvariantError';
    this.code = code;
    this.fields = fields;
  }
}

/**
 * Throws {@link RaftInvariantError} when `condition` is false. Used instead of
 * clamping values so that a broken invariant is loud (STYLE.md §3).
 */
export function assertInvariant(
  condition: boolean,
  message: string,
  fields?: Record<string, unknown>,
): asserts condition {
  if (!condition) throw new RaftInvariantError(message, fields ?? {});
}
