/**
 * Where the node's refusals of client requests go: every one is counted (the metric), and the
 * log gets at most one warning per window (`rate-limited-log.ts`) saying how many were refused
 * since the last one, by reason. A refusal is the node doing its job under overload, not an
 * error, and a flood of them must not become a flood of log lines.
 * @internal
 */
import type { Logger } from '../common/index.js';
import type { RefusalReason } from './admission.js';
import { RateLimitedLog } from './rate-limited-log.js';

/** How often the refusal warning may be written: at most once per 10 s. */
export const REFUSAL_WARNING_INTERVAL_MS = 10_000;

/** Counts refusals and writes the rate-limited warning. */
export class RefusalLog {
  private readonly sinceWarning = new Map<RefusalReason, number>();
  private readonly log: RateLimitedLog;

  constructor(
    /** Counts `count` refusals for `reason` (the metric). */
    private readonly count: (reason: RefusalReason, count: number) => void,
    logger: Logger,
    /** A monotonic clock (ms). */
    nowMs: () => number = () => performance.now(),
    intervalMs = REFUSAL_WARNING_INTERVAL_MS,
  ) {
    this.log = new RateLimitedLog(logger, nowMs, { windowMs: intervalMs, maxLinesPerWindow: 1 });
  }

  /** Warnings written (tests). */
  get warnings(): number {
    return this.log.stats.written;
  }

  /** Records `count` requests refused for `reason`. */
  refused(reason: RefusalReason, count = 1): void {
    this.count(reason, count);
    this.sinceWarning.set(reason, (this.sinceWarning.get(reason) ?? 0) + count);
    const fields = (): Record<string, unknown> => ({ refused: Object.fromEntries(this.sinceWarning) });
    if (this.log.write('warn', 'client requests refused at admission bounds', 'refused', fields)) this.sinceWarning.clear();
  }
}
