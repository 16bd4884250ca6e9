/**
 * Log lines that a peer's traffic triggers, rate-limited so a flood cannot fill the log:
 * per window of {@link RateLimitedLogOptions.windowMs}, at most one line per key (a peer and
 * a reason) and at most {@link RateLimitedLogOptions.maxLinesPerWindow} lines in all. What is
 * held back is counted, and the next line written says how many (`suppressed`). The keys
 * kept are at most the lines written, so a flood of made-up peer names costs no memory.
 * Metrics count every event; the log only shows that it happens and why.
 * @internal
 */
import type { Logger } from '../common/index.js';

/** Limits of a {@link RateLimitedLog}. */
export interface RateLimitedLogOptions {
  /** Length of a window (ms). Default 10 s: an operator sees a persistent fault within seconds, not its every repeat. */
  windowMs?: number;
  /** Lines per window over all keys. Default 20. */
  maxLinesPerWindow?: number;
}

/** Writes at most one line per key per window, and a bounded number per window. */
export class RateLimitedLog {
  private readonly windowMs: number;
  private readonly maxLinesPerWindow: number;
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private readonly keys = new Set<string>();
  private linesInWindow = 0;
  private suppressedSinceLine = 0;
  /** Counters for tests: lines written, lines held back. */
  readonly stats = { written: 0, suppressed: 0 };

  /** `nowMs`: a monotonic clock (the runtime's). */
  constructor(
    private readonly logger: Logger,
    private readonly nowMs: () => number,
    options: RateLimitedLogOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 10_000;
    this.maxLinesPerWindow = options.maxLinesPerWindow ?? 20;
  }

  /**
   * Logs `event` with `fields()` at `level` unless `key` was logged this window or the window is
   * full; true if written. The fields are built only for a line that is written: a flood of
   * suppressed ones costs a counter each.
   */
  write(level: 'warn' | 'info', event: string, key: string, fields: () => Record<string, unknown>): boolean {
    const nowMs = this.nowMs();
    if (nowMs - this.windowStartMs >= this.windowMs) {
      this.windowStartMs = nowMs;
      this.keys.clear();
      this.linesInWindow = 0;
    }
    if (this.keys.has(key) || this.linesInWindow >= this.maxLinesPerWindow) {
      this.suppressedSinceLine += 1;
      this.stats.suppressed += 1;
      return false;
    }
    this.keys.add(key);
    this.linesInWindow += 1;
    this.stats.written += 1;
    const suppressed = this.suppressedSinceLine;
    this.suppressedSinceLine = 0;
    const written = fields();
    this.logger[level](event, suppressed > 0 ? { ...written, suppressed } : written);
    return true;
  }
}
