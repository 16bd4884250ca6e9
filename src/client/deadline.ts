/**
 * Per-call deadlines and backoff. A deadline is a signal (STYLE.md §5): every wait in a call
 * listens to one `AbortSignal` that fires at the deadline or when the caller's own signal aborts.
 */
import { KVError } from './errors.js';

/** Why a call's signal fired. */
export type DeadlineReason = 'deadline' | 'aborted';

/**
 * One call's deadline: it passes `timeoutMs` after the call began, or when the caller's signal
 * aborts. Cheap when nothing waits: a call that is answered in time makes no timer, controller or
 * listener (the node connection checks deadlines with one timer of its own, `node-connection.ts`).
 * {@link signal} — for the waits that need one (backoff, a forced map refresh) — is made on first
 * use. The owner MUST call {@link CallDeadline.dispose} in `finally`.
 */
export class CallDeadline {
  /** Absolute deadline in `performance.now()` milliseconds: monotonic, so a wall-clock step moves no deadline. */
  readonly deadlineAtMs: number;
  readonly timeoutMs: number;
  /** The caller's own signal, if any (the node connection listens to it while a request is out). */
  readonly userSignal: AbortSignal | undefined;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reason: DeadlineReason | undefined;
  private readonly onUserAbort = (): void => this.fire('aborted');

  constructor(timeoutMs: number, userSignal?: AbortSignal) {
    this.timeoutMs = timeoutMs;
    this.deadlineAtMs = performance.now() + timeoutMs;
    this.userSignal = userSignal;
    if (userSignal?.aborted === true) this.reason = 'aborted';
  }

  /** Aborts at the deadline or with the caller's signal (made on first use). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.expired) {
        this.controller.abort(this.reason);
      } else {
        this.timer = setTimeout(() => this.fire('deadline'), this.remainingMs());
        this.userSignal?.addEventListener('abort', this.onUserAbort, { once: true });
      }
    }
    return this.controller.signal;
  }

  /** Milliseconds left before the deadline, never negative. */
  remainingMs(): number {
    return Math.max(0, this.deadlineAtMs - performance.now());
  }

  /** True once the deadline passed or the caller aborted. */
  get expired(): boolean {
    if (this.reason !== undefined) return true;
    if (this.userSignal?.aborted === true) this.fire('aborted');
    else if (performance.now() >= this.deadlineAtMs) this.fire('deadline');
    return this.reason !== undefined;
  }

  /** True once the deadline itself passed (not the caller's signal). */
  get passed(): boolean {
    return this.expired && this.reason === 'deadline';
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

  /** Clears the timer and the listener on the caller's signal, if {@link signal} made them. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.controller !== undefined) this.userSignal?.removeEventListener('abort', this.onUserAbort);
  }

  private fire(reason: DeadlineReason): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.controller?.abort(reason);
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
