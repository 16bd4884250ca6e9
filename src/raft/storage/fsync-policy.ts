/**
 * Where the WAL's turn fsync runs: inline, on the calling thread, or on the I/O thread pool.
 *
 * An fsync through the thread pool (`FileHandle.datasync`) costs two thread wake-ups:
 * one to hand the call to a pool thread and one to bring its completion back to the
 * event loop. On a disk that syncs in microseconds (tmpfs, a drive with power-loss
 * protection) those wake-ups are most of the cost, and on a machine whose cores are all
 * busy each one may wait for a core. Measured on the 2-core bench machine with the data
 * on /dev/shm (3 nodes, K=3, 1 KiB values): +20–27% throughput at 64 requests in flight,
 * and a fifth off the put p50 and p99 at one in flight (docs/benchmarks.md).
 *
 * The price of an inline fsync is that nothing else runs while it lasts: no heartbeats,
 * no lease reads on arrival, no messages read. That is cheap while fsyncs are short, and
 * it is how etcd's Raft loop waits for its own fsync. A disk that stalls would hold the
 * whole node, though, so the WAL fsyncs inline only while the disk keeps proving fast:
 *
 * - it starts on the thread pool;
 * - it tries one fsync inline (a *probe*) once the last {@link QUIET_POOL_SYNCS} thread-pool
 *   fsyncs each came back within {@link QUIET_POOL_SYNC_MS} (so never into a stall that is
 *   going on), and a backoff has passed since the last slow one;
 * - every inline fsync is timed; while each takes at most {@link INLINE_FSYNC_MAX_MS}, the
 *   next is inline too;
 * - one that takes longer sends the WAL back to the thread pool at once, and the backoff
 *   before the next probe doubles (1 s up to 5 min). So a slow disk pays one blocked fsync
 *   per backoff at most, and a stall holds the whole node only when it begins during an
 *   inline fsync: the rest of it, and the stalls after it until the disk is quiet again, find
 *   the WAL on the thread pool, where the node's light turns keep its leaderships
 *   (`turn-loop.ts`).
 *
 * A thread-pool fsync's own time is not known (its round trip adds the wake-ups and the
 * loop's delays), so it only bounds the disk's: a round trip of 2 ms says the fsync took no
 * more. Which way a flush syncs changes nothing on disk and nothing in what the WAL
 * promises: its bytes are durable when `sync()` resolves.
 */

/** Longest inline fsync (ms) that keeps the next one inline. */
export const INLINE_FSYNC_MAX_MS = 0.25;
/** The first backoff after a slow inline fsync (ms). */
export const INLINE_FSYNC_FIRST_BACKOFF_MS = 1_000;
/** The longest backoff between probes (ms). */
export const INLINE_FSYNC_MAX_BACKOFF_MS = 5 * 60_000;
/** A thread-pool fsync whose round trip took at most this (ms) says the disk is not stalling. */
export const QUIET_POOL_SYNC_MS = 2;
/** Thread-pool fsyncs in a row within {@link QUIET_POOL_SYNC_MS} before a probe. */
export const QUIET_POOL_SYNCS = 8;

/** A change of where the WAL's fsyncs run, for the WAL's log. */
export interface FsyncModeChange {
  inline: boolean;
  /** The inline fsync that decided it (ms). */
  fsyncMs: number;
  /** When back on the thread pool: how long until the next probe (ms). */
  nextProbeInMs?: number;
}

/** Decides, flush by flush, whether the WAL fsyncs inline (see the file comment). */
export class InlineFsyncPolicy {
  private inline = false;
  private probeAtMs = Number.NEGATIVE_INFINITY;
  private backoffMs = INLINE_FSYNC_FIRST_BACKOFF_MS;
  /** Thread-pool fsyncs in a row that came back within {@link QUIET_POOL_SYNC_MS}. */
  private quietPoolSyncs = 0;
  /** Inline fsyncs and probes that came back slow, since start (tests, the WAL's log). */
  readonly stats = { inline: 0, slow: 0 };

  constructor(private readonly maxInlineMs = INLINE_FSYNC_MAX_MS) {}

  /** True while fsyncs run inline. */
  get isInline(): boolean {
    return this.inline;
  }

  /** Whether the flush starting at `nowMs` (monotonic) fsyncs inline: the mode says so, or a probe is due. */
  inlineAt(nowMs: number): boolean {
    return this.inline || (nowMs >= this.probeAtMs && this.quietPoolSyncs >= QUIET_POOL_SYNCS);
  }

  /** Records a thread-pool fsync whose round trip (call to completion) took `roundTripMs`. */
  tookOnPool(roundTripMs: number): void {
    this.quietPoolSyncs = roundTripMs <= QUIET_POOL_SYNC_MS ? this.quietPoolSyncs + 1 : 0;
  }

  /**
   * Records an inline fsync that took `fsyncMs` and ended at `nowMs`. Returns what it
   * decided when that is news: the WAL turned inline, or an fsync came back slow (the WAL
   * is on the thread pool after it, whether it was inline or probing).
   */
  tookInline(fsyncMs: number, nowMs: number): FsyncModeChange | undefined {
    this.stats.inline += 1;
    const wasInline = this.inline;
    if (fsyncMs <= this.maxInlineMs) {
      this.inline = true;
      return wasInline ? undefined : { inline: true, fsyncMs };
    }
    this.stats.slow += 1;
    this.inline = false;
    this.quietPoolSyncs = 0;
    this.probeAtMs = nowMs + this.backoffMs;
    const change: FsyncModeChange = { inline: false, fsyncMs, nextProbeInMs: this.backoffMs };
    this.backoffMs = Math.min(this.backoffMs * 2, INLINE_FSYNC_MAX_BACKOFF_MS);
    return change;
  }
}
