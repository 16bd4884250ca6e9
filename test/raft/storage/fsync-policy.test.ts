/**
 * Where the WAL's turn fsync runs (`fsync-policy.ts`): inline while the disk proves fast,
 * on the thread pool after a slow one, probing again after a doubling backoff.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  INLINE_FSYNC_FIRST_BACKOFF_MS,
  INLINE_FSYNC_MAX_BACKOFF_MS,
  INLINE_FSYNC_MAX_MEAN_MS,
  INLINE_FSYNC_MAX_MS,
  INLINE_STALL_MS,
  INLINE_WINDOW,
  InlineFsyncPolicy,
  median,
  MEDIAN_MIN_SAMPLES,
  QUIET_POOL_FRESH_MS,
  QUIET_POOL_SYNC_MS,
  QUIET_POOL_SYNCS,
} from '../../../src/raft/storage/fsync-policy.js';
import { Wal, type RaftLogger } from '../../../src/raft/index.js';
import { SeededRandom } from '../../../src/raft/index.js';
import { SimDisk } from '../../sim/sim-disk.js';
import { WalWorkload } from './wal-workload.js';

describe('raft/storage/fsync-policy', () => {
  it('takes the median of up to a window of fsync times in a reused scratch array, as a sort would', () => {
    const seed = Number(process.env['SEED'] ?? 20261206); // fast-check names it in any failure
    const scratch = new Float64Array(INLINE_WINDOW);
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 1, maxLength: INLINE_WINDOW }), (values) => {
        const sorted = [...values].sort((a, b) => a - b);
        const middle = sorted.length >> 1;
        const expected = sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
        return median(values, scratch) === expected;
      }),
      { seed, numRuns: 500 },
    );
  });

  const quietPool = (policy: InlineFsyncPolicy, nowMs = 0): void => {
    for (let i = 0; i < QUIET_POOL_SYNCS; i++) policy.tookOnPool(QUIET_POOL_SYNC_MS, nowMs);
  };

  it('probes once the thread pool is quiet, stays inline while the median is fast, and leaves at a stall', () => {
    const policy = new InlineFsyncPolicy();
    expect(policy.isInline).to.equal(false);
    for (let i = 0; i < QUIET_POOL_SYNCS - 1; i++) policy.tookOnPool(1, 0);
    expect(policy.inlineAt(0), 'one quiet pool fsync short').to.equal(false);
    policy.tookOnPool(QUIET_POOL_SYNC_MS + 1, 0);
    policy.tookOnPool(1, 0);
    expect(policy.inlineAt(0), 'a slow one starts the count again').to.equal(false);
    quietPool(policy);
    expect(policy.inlineAt(QUIET_POOL_FRESH_MS + 1), 'quiet, but too long ago').to.equal(false);
    expect(policy.inlineAt(0), 'the probe').to.equal(true);
    expect(policy.tookInline(0.01, 0)).to.deep.equal({ inline: true, fsyncMs: 0.01, medianMs: 0.01 });
    expect(policy.isInline).to.equal(true);
    for (let i = 0; i < INLINE_WINDOW - 2; i++) expect(policy.tookInline(0.05, i)).to.equal(undefined);
    // One fsync a busy machine stretched (the thread lost its core): median and mean stay fast.
    expect(policy.tookInline(8, 9)).to.equal(undefined);
    expect(policy.isInline).to.equal(true);
    expect(policy.tookInline(INLINE_STALL_MS, 10)).to.deep.equal({
      inline: false, fsyncMs: INLINE_STALL_MS, medianMs: 0.05, nextProbeInMs: INLINE_FSYNC_FIRST_BACKOFF_MS,
    });
    expect(policy.isInline).to.equal(false);
    quietPool(policy, 10 + INLINE_FSYNC_FIRST_BACKOFF_MS - 1);
    expect(policy.inlineAt(10 + INLINE_FSYNC_FIRST_BACKOFF_MS - 1), 'before the backoff ends').to.equal(false);
    expect(policy.inlineAt(10 + INLINE_FSYNC_FIRST_BACKOFF_MS), 'the probe').to.equal(true);
    expect(policy.stats).to.deep.equal({ inline: INLINE_WINDOW + 1, left: 1 });
  });

  it('leaves once the median of the last fsyncs passes the bound, without any stall', () => {
    const policy = new InlineFsyncPolicy();
    quietPool(policy);
    policy.tookInline(0.1, 0);
    for (let i = 1; i < INLINE_WINDOW; i++) expect(policy.tookInline(0.1, i)).to.equal(undefined);
    let left: number | undefined;
    for (let i = 0; i < INLINE_WINDOW && left === undefined; i++) if (policy.tookInline(1, 100 + i)?.inline === false) left = i + 1;
    expect(left, 'slow fsyncs until the median moved').to.equal(INLINE_WINDOW / 2);
    expect(policy.isInline).to.equal(false);
    expect(INLINE_FSYNC_MAX_MS).to.be.below(1);
  });

  it('leaves when a slow minority pushes the mean over its bound, below any stall', () => {
    const policy = new InlineFsyncPolicy();
    quietPool(policy);
    for (let i = 0; i < INLINE_WINDOW; i++) policy.tookInline(0.05, i);
    expect(policy.tookInline(10, 20), 'one 10 ms fsync: mean 0.67 ms').to.equal(undefined);
    expect(policy.tookInline(10, 21)).to.include({ inline: false, fsyncMs: 10 });
    expect(INLINE_FSYNC_MAX_MEAN_MS).to.equal(1);
  });

  it('judges the median only from four samples on: one slow fsync right after the probe does not decide', () => {
    const policy = new InlineFsyncPolicy();
    quietPool(policy);
    expect(policy.tookInline(0.3, 0), 'a probe over the bound').to.include({ inline: false });
    quietPool(policy, INLINE_FSYNC_FIRST_BACKOFF_MS);
    expect(policy.tookInline(0.05, INLINE_FSYNC_FIRST_BACKOFF_MS)).to.include({ inline: true });
    expect(policy.tookInline(0.46, INLINE_FSYNC_FIRST_BACKOFF_MS + 1), 'median of two would be 0.255').to.equal(undefined);
    expect(policy.tookInline(0.46, INLINE_FSYNC_FIRST_BACKOFF_MS + 2)).to.equal(undefined);
    expect(policy.tookInline(0.46, INLINE_FSYNC_FIRST_BACKOFF_MS + 3), 'four samples: the median counts').to.include({ inline: false });
    expect(MEDIAN_MIN_SAMPLES).to.equal(4);
  });

  it('doubles the backoff after every slow probe, up to its cap, and a fast probe goes inline again', () => {
    const policy = new InlineFsyncPolicy();
    let nowMs = 0;
    const backoffs: number[] = [];
    for (let i = 0; i < 12; i++) {
      quietPool(policy, nowMs);
      expect(policy.inlineAt(nowMs)).to.equal(true);
      const change = policy.tookInline(1, nowMs);
      backoffs.push(change?.nextProbeInMs ?? -1);
      quietPool(policy, nowMs + 1);
      expect(policy.inlineAt(nowMs + 1), 'on the thread pool until the probe').to.equal(false);
      nowMs += change?.nextProbeInMs ?? 0;
    }
    expect(backoffs.slice(0, 4)).to.deep.equal([1_000, 2_000, 4_000, 8_000]);
    expect(backoffs.at(-1)).to.equal(INLINE_FSYNC_MAX_BACKOFF_MS);
    expect(Math.max(...backoffs)).to.equal(INLINE_FSYNC_MAX_BACKOFF_MS);
    quietPool(policy, nowMs);
    expect(policy.tookInline(0.1, nowMs)).to.deep.equal({ inline: true, fsyncMs: 0.1, medianMs: 0.1 });
    // Just under five minutes inline, then a stall: the backoff stays at its cap.
    const stallAt = nowMs + INLINE_FSYNC_MAX_BACKOFF_MS - 1;
    expect(policy.tookInline(INLINE_STALL_MS, stallAt)?.nextProbeInMs).to.equal(INLINE_FSYNC_MAX_BACKOFF_MS);
    // Five minutes inline, then a stall: the backoff starts again from its first value.
    nowMs = stallAt + INLINE_FSYNC_MAX_BACKOFF_MS;
    quietPool(policy, nowMs);
    expect(policy.tookInline(0.1, nowMs)).to.include({ inline: true });
    expect(policy.tookInline(INLINE_STALL_MS, nowMs + INLINE_FSYNC_MAX_BACKOFF_MS)?.nextProbeInMs).to.equal(INLINE_FSYNC_FIRST_BACKOFF_MS);
  });

  it('on a disk that offers it, the WAL fsyncs inline while fast and goes back to the pool when one is slow', async () => {
    // A clock that an inline fsync moves by its latency, as a blocked thread sees time pass.
    let nowMs = 0;
    let latencyMs = 0.05;
    const disk = new SimDisk({ random: new SeededRandom(5), inlineSyncs: true, syncLatencyMs: () => latencyMs });
    disk.stallProcess = (stallMs) => {
      nowMs += stallMs;
    };
    const events: string[] = [];
    const logger: RaftLogger = { debug: (event) => events.push(event), info: (event) => events.push(event), warn() {}, error() {} };
    const wal = await Wal.open('/node', logger, { fs: disk.process(), random: new SeededRandom(6), clock: () => nowMs });
    const workload = new WalWorkload(new SeededRandom(7));
    workload.recover(wal);
    let durableOnReturn = 0;
    // WAL segments holding unsynced bytes (snapshot files are written in the background).
    const unsyncedSegments = (): string[] => disk.unsyncedFiles().filter((path) => path.startsWith('/node/wal/'));
    const flush = async (): Promise<void> => {
      workload.step();
      workload.step();
      const inline = wal.fsyncPolicy.isInline;
      const sync = wal.sync();
      // Inline, the bytes are durable before sync() even returns (unless the flush first writes
      // a leader's snapshot file); on the thread pool, only once it settles.
      if (inline && unsyncedSegments().length === 0) durableOnReturn += 1;
      await sync;
      expect(unsyncedSegments()).to.deep.equal([]);
    };
    for (let i = 0; i < 40 && !wal.fsyncPolicy.isInline; i++) await flush();
    expect(wal.fsyncPolicy.isInline, 'inline after quiet thread-pool fsyncs and a probe').to.equal(true);
    expect(events).to.include('wal fsyncs inline: the disk syncs fast');
    for (let i = 0; i < 8; i++) await flush();
    expect(wal.fsyncPolicy.isInline).to.equal(true);
    latencyMs = 50; // the disk stalls
    await flush();
    expect(wal.fsyncPolicy.isInline).to.equal(false);
    expect(events).to.include('wal fsyncs on the thread pool again: inline fsyncs got slow');
    const inlineSoFar = wal.fsyncPolicy.stats.inline;
    for (let i = 0; i < 5; i++) await flush();
    expect(wal.fsyncPolicy.stats.inline, 'no inline fsync during the backoff').to.equal(inlineSoFar);
    nowMs += INLINE_FSYNC_FIRST_BACKOFF_MS;
    for (let i = 0; i < 40; i++) await flush();
    expect(wal.fsyncPolicy.stats.inline, 'one probe after it (slow: the next waits twice as long)').to.equal(inlineSoFar + 1);
    expect(events).to.include('wal fsync probe slow: staying on the thread pool');
    latencyMs = 0.05;
    nowMs += 2 * INLINE_FSYNC_FIRST_BACKOFF_MS;
    for (let i = 0; i < 40 && !wal.fsyncPolicy.isInline; i++) await flush();
    expect(wal.fsyncPolicy.isInline, 'fast again: inline').to.equal(true);
    expect(durableOnReturn, 'inline flushes durable before sync() returned').to.be.greaterThan(3);
    await wal.close();
  });
});
