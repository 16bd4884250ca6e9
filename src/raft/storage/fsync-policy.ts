/**
 * Where the WAL's turn fsync runs: inline, on the calling thread, or on the I/O thread pool.
 *
 * An fsync through the thread pool (`FileHandle.datasync`) costs two thread wake-ups:
 * one to hand the call to a pool thread and one to bring its completion back to the
 * event loop. On a disk that syncs in microseconds (tmpfs, a drive with power-loss
 * protection) those wake-ups are most of the cost, and on a machine whose cores are all
 * busy each one may wait for a core (docs/benchmarks.md has the measurements).
 *
 * The price of an inline fsync is that nothing else runs while it lasts: no heartbeats,
 * no lease reads on arrival, no messages read. That is cheap while fsyncs are short, and
 * it is how etcd's Raft loop waits for its own fsync. A disk that stalls would hold the
 * whole node, though, so the WAL fsyncs inline only while the disk keeps proving fast:
 *
 * - it starts on the thread pool;
 * - it tries one fsync inline (a *probe*) once the last {@link QUIET_POOL_SYNCS} thread-pool
 *   fsyncs each came back within {@link QUIET_POOL_SYNC_MS}, the last of them less than
 *   {@link QUIET_POOL_FRESH_MS} ago (so not into a stall its thread-pool fsyncs have seen),
 *   and a backoff has passed since it last left inline fsyncs;
 * - every inline fsync is timed. The WAL stays inline while, over the last {@link INLINE_WINDOW},
 *   the median is at most {@link INLINE_FSYNC_MAX_MS}, the mean at most
 *   {@link INLINE_FSYNC_MAX_MEAN_MS}, and none reaches {@link INLINE_STALL_MS}. The median,
 *   because a busy machine takes the core away from a thread in the middle of an fsync now and
 *   then: one fsync in many then measures a few milliseconds, which says nothing of the disk.
 *   The mean bounds what a slow minority may cost: at most about 1 ms a turn on average. (The
 *   median counts from {@link MEDIAN_MIN_SAMPLES} samples on; a probe itself must be fast.)
 * - a stall (one inline fsync of {@link INLINE_STALL_MS} or more), or a median or mean over its
 *   bound, sends the WAL back to the thread pool at once. The backoff before the next probe doubles
 *   each time (1 s up to 5 min; back to 1 s after five minutes inline). So a slow disk pays a
 *   few blocked fsyncs per backoff at most. A stall holds the whole node for as long as the
 *   one inline fsync that meets it lasts (a node idle when its disk froze meets it at its next
 *   write); the fsyncs after it, until the disk is quiet again, run on the thread pool, where
 *   the node's light turns keep its leaderships (`turn-loop.ts`).
 *
 * A thread-pool fsync's own time is not known (its round trip adds the wake-ups and the
 * loop's delays), so it only bounds the disk's: a round trip of 2 ms says the fsync took no
 * more. Which way a flush syncs changes nothing on disk and nothing in what the WAL
 * promises: its bytes are durable when `sync()` resolves.
 */

import type { RaftLogger } from '../types.js';
import type { FileHandle } from './file-system.js';

/** Highest median (ms) of the recent inline fsyncs that keeps them inline. */
export const INLINE_FSYNC_MAX_MS = 0.25;
/** Highest mean (ms) of the recent inline fsyncs that keeps them inline. */
export const INLINE_FSYNC_MAX_MEAN_MS = 1;
/** Inline fsyncs whose median and mean decide. */
export const INLINE_WINDOW = 16;
/** Samples the median needs to count (before, the probe's own bound and the mean decide). */
export const MEDIAN_MIN_SAMPLES = 4;
/** An inline fsync this long (ms) is a stall: back to the thread pool at once. */
export const INLINE_STALL_MS = 20;
/** The first backoff after leaving inline fsyncs (ms). */
export const INLINE_FSYNC_FIRST_BACKOFF_MS = 1_000;
/** The longest backoff between probes (ms); also how long inline resets the backoff. */
export const INLINE_FSYNC_MAX_BACKOFF_MS = 5 * 60_000;
/** A thread-pool fsync whose round trip took at most this (ms) says the disk is not stalling. */
export const QUIET_POOL_SYNC_MS = 2;
/** Thread-pool fsyncs in a row within {@link QUIET_POOL_SYNC_MS} before a probe. */
export const QUIET_POOL_SYNCS = 8;
/** A probe needs the last quiet thread-pool fsync to have ended at most this long ago (ms). */
export const QUIET_POOL_FRESH_MS = 1_000;

/** A change of where the WAL's fsyncs run, for the WAL's log. */
export interface FsyncModeChange {
  inline: boolean;
  /** The inline fsync that decided it (ms). */
  fsyncMs: number;
  /** The median of the recent inline fsyncs (ms). */
  medianMs: number;
  /** When back on the thread pool: how long until the next probe (ms). */
  nextProbeInMs?: number;
}

/** Decides, flush by flush, whether the WAL fsyncs inline (see the file comment). */
export class InlineFsyncPolicy {
  private inline = false;
  private inlineSinceMs = 0;
  private probeAtMs = Number.NEGATIVE_INFINITY;
  private backoffMs = INLINE_FSYNC_FIRST_BACKOFF_MS;
  /** Thread-pool fsyncs in a row that came back within {@link QUIET_POOL_SYNC_MS}, the last at {@link lastQuietMs}. */
  private quietPoolSyncs = 0;
  private lastQuietMs = Number.NEGATIVE_INFINITY;
  /** The last inline fsyncs (ms), a ring of {@link INLINE_WINDOW}; emptied on leaving. */
  private readonly window: number[] = [];
  private next = 0;
  /** Scratch for the median: sorted in place, so timing an fsync allocates nothing. */
  private readonly sorted = new Float64Array(INLINE_WINDOW);
  /** Inline fsyncs, and the times one sent the WAL to the thread pool (leaving, or a failed probe), since start. */
  readonly stats = { inline: 0, left: 0 };

  /** True while fsyncs run inline. */
  get isInline(): boolean {
    return this.inline;
  }

  /** Whether the flush starting at `nowMs` (monotonic) fsyncs inline: the mode says so, or a probe is due. */
  inlineAt(nowMs: number): boolean {
    if (this.inline) return true;
    return nowMs >= this.probeAtMs && this.quietPoolSyncs >= QUIET_POOL_SYNCS && nowMs - this.lastQuietMs <= QUIET_POOL_FRESH_MS;
  }

  /** Records a thread-pool fsync whose round trip (call to completion) took `roundTripMs`, ending at `nowMs`. */
  tookOnPool(roundTripMs: number, nowMs: number): void {
    if (roundTripMs > QUIET_POOL_SYNC_MS) {
      this.quietPoolSyncs = 0;
      return;
    }
    this.quietPoolSyncs += 1;
    this.lastQuietMs = nowMs;
  }

  /**
   * Records an inline fsync that took `fsyncMs` and ended at `nowMs`. Returns what it
   * decided when that is news: the WAL turned inline, or it is on the thread pool after
   * this one (it left inline fsyncs, or a probe failed).
   */
  tookInline(fsyncMs: number, nowMs: number): FsyncModeChange | undefined {
    this.stats.inline += 1;
    const wasInline = this.inline;
    if (this.window.length < INLINE_WINDOW) this.window.push(fsyncMs);
    else this.window[this.next] = fsyncMs;
    this.next = (this.next + 1) % INLINE_WINDOW;
    const medianMs = median(this.window, this.sorted);
    let sumMs = 0;
    for (const ms of this.window) sumMs += ms;
    const meanMs = sumMs / this.window.length;
    const medianFast = wasInline ? this.window.length < MEDIAN_MIN_SAMPLES || medianMs <= INLINE_FSYNC_MAX_MS : fsyncMs <= INLINE_FSYNC_MAX_MS;
    if (fsyncMs < INLINE_STALL_MS && medianFast && meanMs <= INLINE_FSYNC_MAX_MEAN_MS) {
      if (wasInline) return undefined;
      this.inline = true;
      this.inlineSinceMs = nowMs;
      return { inline: true, fsyncMs, medianMs };
    }
    this.inline = false;
    this.stats.left += 1;
    this.window.length = 0;
    this.next = 0;
    this.quietPoolSyncs = 0;
    if (wasInline && nowMs - this.inlineSinceMs >= INLINE_FSYNC_MAX_BACKOFF_MS) this.backoffMs = INLINE_FSYNC_FIRST_BACKOFF_MS;
    this.probeAtMs = nowMs + this.backoffMs;
    const change: FsyncModeChange = { inline: false, fsyncMs, medianMs, nextProbeInMs: this.backoffMs };
    this.backoffMs = Math.min(this.backoffMs * 2, INLINE_FSYNC_MAX_BACKOFF_MS);
    return change;
  }
}

/** The median of `values` (at most `scratch.length` of them), sorted by insertion into `scratch`. @internal */
export function median(values: readonly number[], scratch: Float64Array): number {
  const count = values.length;
  for (let i = 0; i < count; i++) {
    const value = values[i] as number;
    let j = i;
    for (; j > 0 && (scratch[j - 1] as number) > value; j--) scratch[j] = scratch[j - 1] as number;
    scratch[j] = value;
  }
  const middle = count >> 1;
  return count % 2 === 1 ? (scratch[middle] as number) : ((scratch[middle - 1] as number) + (scratch[middle] as number)) / 2;
}

/**
 * Makes what was written to the WAL segment `handle` durable: inline while `policy` says so,
 * timed on `clock`, else on the thread pool (timed too, as a bound). Either way the bytes
 * are durable once the result settles; inline, they are when this returns, nothing else
 * having run. Logs the policy's changes of mode.
 */
export function fsyncSegment(handle: FileHandle, policy: InlineFsyncPolicy, clock: () => number, logger: RaftLogger): Promise<void> | undefined {
  const startMs = clock();
  if (handle.datasyncSync === undefined) return handle.datasync();
  if (!policy.inlineAt(startMs)) {
    return handle.datasync().then(() => {
      const endMs = clock();
      policy.tookOnPool(endMs - startMs, endMs);
    });
  }
  const wasInline = policy.isInline;
  handle.datasyncSync();
  const endMs = clock();
  const change = policy.tookInline(endMs - startMs, endMs);
  if (change === undefined) return undefined;
  const fields = { fsyncMs: round3(change.fsyncMs), medianMs: round3(change.medianMs), nextProbeInMs: change.nextProbeInMs };
  if (change.inline) logger.info('wal fsyncs inline: the disk syncs fast', fields);
  else if (wasInline) logger.info('wal fsyncs on the thread pool again: inline fsyncs got slow', fields);
  else logger.debug('wal fsync probe slow: staying on the thread pool', fields);
  return undefined;
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
