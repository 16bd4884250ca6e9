/**
 * The one error type of the client library. Callers branch on `code` and
 * `retryable`, never on message text (STYLE.md §4).
 */

/**
 * Why a call failed:
 * - `INVALID_ARGUMENT`: the request broke a limit (the message names it). Fix the input; never retry.
 * - `UNAVAILABLE`: no node could serve the shard before retries ran out (manager or nodes unreachable,
 *   no leader). Retry later.
 * - `TIMEOUT`: the deadline passed or the signal aborted. For a write the outcome is unknown: it may or
 *   may not have been applied.
 * - `CONFLICT`: a compare-and-set found another version (`currentVersion` says which).
 * - `CLOSED`: the client was finalized.
 * - `RESOURCE_EXHAUSTED`: the node kept refusing the request at its admission bounds (too many
 *   requests or bytes in flight on the node, the connection or the shard) until the deadline;
 *   the client already backed off and retried. Retry later, with fewer requests in flight. A
 *   refused attempt was not applied; `outcomeUnknown` says whether an earlier attempt may have been.
 * - `UNAUTHENTICATED`: the cluster refused this client's credentials (no or wrong token, no client
 *   certificate signed by its CA), or TLS is on at one end only or the server's certificate is not
 *   the cluster's. The message says which. Never retried: fix the `tls`/`token` options.
 */
export type KVErrorCode = 'INVALID_ARGUMENT' | 'UNAVAILABLE' | 'TIMEOUT' | 'CONFLICT' | 'CLOSED' | 'RESOURCE_EXHAUSTED' | 'UNAUTHENTICATED';

/** Every code, for validation and documentation. */
export const KV_ERROR_CODES: readonly KVErrorCode[] = ['INVALID_ARGUMENT', 'UNAVAILABLE', 'TIMEOUT', 'CONFLICT', 'CLOSED', 'RESOURCE_EXHAUSTED', 'UNAUTHENTICATED'];

/** Extra facts a {@link KVError} may carry. */
export interface KVErrorDetails {
  /** Whether calling again later may succeed; defaults by code (UNAVAILABLE, TIMEOUT and RESOURCE_EXHAUSTED are retryable). */
  retryable?: boolean;
  /** For CONFLICT: the key's current version, 0 when it is absent. */
  currentVersion?: number;
  /** For TIMEOUT of a write: true, because the write may or may not have been applied. */
  outcomeUnknown?: boolean;
  /** The underlying error (a gRPC status, an abort reason). */
  cause?: unknown;
}

/**
 * A failed client call. `code` says what happened and `retryable` whether the same call may succeed later.
 * A TIMEOUT of a write has `outcomeUnknown` set: the write may have been applied — the client's
 * session makes its own retries exactly-once, but a fresh call is a new write.
 */
export class KVError extends Error {
  /** What went wrong; see {@link KVErrorCode}. */
  readonly code: KVErrorCode;
  /** Whether the same call may succeed if made again later. */
  readonly retryable: boolean;
  /** For CONFLICT: the key's current version (0 = absent), when the node said. */
  readonly currentVersion: number | undefined;
  /** For a write that timed out: its outcome is unknown. */
  readonly outcomeUnknown: boolean;

  constructor(code: KVErrorCode, message: string, details: KVErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'KVError';
    this.code = code;
    this.retryable = details.retryable ?? (code === 'UNAVAILABLE' || code === 'TIMEOUT' || code === 'RESOURCE_EXHAUSTED');
    this.currentVersion = details.currentVersion;
    this.outcomeUnknown = details.outcomeUnknown ?? false;
  }
}

/** True when `error` is a {@link KVError}, optionally of one code. */
export function isKVError(error: unknown, code?: KVErrorCode): error is KVError {
  return error instanceof KVError && (code === undefined || error.code === code);
}
