/**
 * Client request rate and latency over the last heartbeat interval, for the
 * manager (`ops_per_second`, `p99_latency_ms`) and the metrics endpoint.
 * @internal
 */

/** Latencies kept per interval; beyond it, a uniform reservoir sample keeps the p99 honest. */
const RESERVOIR_SIZE = 20_000;

/** Counts completed requests and samples their latency. */
export class RequestMetrics {
  private count = 0;
  private samples: number[] = [];
  private intervalStartMs = Date.now();
  /** Completed requests since start, by outcome, for the metrics endpoint. */
  readonly totals = { ok: 0, failed: 0 };

  /** Records one completed request that took `latencyMs`. */
  record(latencyMs: number, ok: boolean): void {
    this.count += 1;
    if (ok) this.totals.ok += 1;
    else this.totals.failed += 1;
    if (this.samples.length < RESERVOIR_SIZE) {
      this.samples.push(latencyMs);
    } else {
      const slot = Math.floor(Math.random() * this.count);
      if (slot < RESERVOIR_SIZE) this.samples[slot] = latencyMs;
    }
  }

  /** Rate and p99 since the previous call; starts a new interval. */
  takeInterval(): { opsPerSecond: number; p99LatencyMs: number } {
    const nowMs = Date.now();
    const seconds = Math.max((nowMs - this.intervalStartMs) / 1000, 0.001);
    const opsPerSecond = this.count / seconds;
    let p99LatencyMs = 0;
    if (this.samples.length > 0) {
      this.samples.sort((a, b) => a - b);
      p99LatencyMs = this.samples[Math.min(this.samples.length - 1, Math.floor(this.samples.length * 0.99))] ?? 0;
    }
    this.count = 0;
    this.samples = [];
    this.intervalStartMs = nowMs;
    return { opsPerSecond, p99LatencyMs };
  }
}
