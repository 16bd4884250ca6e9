/**
 * Per-call deadlines and backoff. A deadline is a signal (STYLE.md §5): every wait in a call
 * listens to one `AbortSignal` that fires at the deadline or when the caller's own signal aborts.
 */
import { KVError } from './errors.js';

/** Why a call's signal fired. */
export type DeadlineReason = 'deadline' | 'aborted';

/**
 * One call's deadline: `signal` aborts when `timeoutMs` passes or when the caller's signal aborts.
 * The owner MUST call {@link CallDeadline.dispose} in `finally`, which clears the timer and the listener.
 */
export class CallDeadline {
  /** Aborts at the deadline or with the caller's signal. */
  readonly signal: AbortSignal;
  /** Absolute deadline in `Date.now()` milliseconds. */
  readonly deadlineAtMs: number;
  readonly timeoutMs: number;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private reason: DeadlineReason | undefined;
  private readonly userSignal: AbortSignal | undefined;
  private readonly onUserAbort = (): void => this.fire('aborted');

  constructor(timeoutMs: number, userSignal?: AbortSignal) {
    this.timeoutMs = timeoutMs;
    this.deadlineAtMs = Date.now() + timeoutMs;
    this.signal = this.controller.signal;
    this.userSignal = userSignal;
    this.timer = setTimeout(() => this.fire('deadline'), timeoutMs);
    if (userSignal !== undefined) {
      if (userSignal.aborted) this.fire('aborted');
      else userSignal.addEventListener('abort', this.onUserAbort, { once: true });
    }
  }

  /** Milliseconds left before the deadline, never negative. */
  remainingMs(): number {
    return Math.max(0, this.deadlineAtMs - Date.now());
  }

  /** True once the deadline passed or the caller aborted. */
  get expired(): boolean {
    return this.reason !== undefined;
  }

  /** True once the deadline itself passed (not the caller's signal). */
  get passed(): boolean {
    return this.reason === 'deadline';
  }

  /**
   * The TIMEOUT error for this call. A write's error says its outcome is unknown; an explicit abort
   * (not a deadline) is not retryable, since the caller asked to stop (STYLE.md §4: never retry an abort).
   */
  timeoutError(operation: string, isWrite: boolean, lastError?: unknown): KVError {
    const outcome = isWrite ? '; the write may or may not have been applied' : '';
    const userReason: unknown = this.userSignal?.reason;
    const userTimedOut = userReason instanceof DOMException && userReason.name === 'TimeoutError';
    if (this.reason === 'aborted' && !userTimedOut) {
      return new KVError('TIMEOUT', `${operation} aborted by the caller's signal${outcome}`, {
        retryable: false,
        outcomeUnknown: isWrite,
        cause: userReason,
      });
    }
    const after = this.reason === 'aborted' ? "the caller's signal timed out" : `no answer within ${this.timeoutMs} ms`;
    return new KVError('TIMEOUT', `${operation} timed out: ${after}${outcome}`, {
      retryable: true,
      outcomeUnknown: isWrite,
      cause: lastError,
    });
  }

  /** Clears the timer and the listener on the caller's signal. */
  dispose(): void {
    clearTimeout(this.timer);
    this.userSignal?.removeEventListener('abort', this.onUserAbort);
  }

  private fire(reason: DeadlineReason): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    clearTimeout(this.timer);
    this.controller.abort(reason);
  }
}

export { sleep } from '../common/index.js';

/** Exponential backoff settings. */
export interface BackoffPolicy {
  /** First delay; doubled per attempt. */
  baseDelayMs: number;
  /** Largest delay. */
  maxDelayMs: number;
}

/**
 * The delay before retry number `attempt` (0-based): exponential with "equal jitter", so it is at
 * least half the exponential step (no hot retry loops) and spread over the other half (no herds).
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt, 30));
  return step / 2 + random() * (step / 2);
}
