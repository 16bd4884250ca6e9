/**
 * Where the WAL's turn fsync runs (`fsync-policy.ts`): inline while the disk proves fast,
 * on the thread pool after a slow one, probing again after a doubling backoff.
 */
import { expect } from 'chai';
import {
  INLINE_FSYNC_FIRST_BACKOFF_MS,
  INLINE_FSYNC_MAX_BACKOFF_MS,
  INLINE_FSYNC_MAX_MS,
  InlineFsyncPolicy,
} from '../../../src/raft/storage/fsync-policy.js';
import { Wal, type RaftLogger } from '../../../src/raft/index.js';
import { SeededRandom } from '../../../src/raft/index.js';
import { SimDisk } from '../../sim/sim-disk.js';
import { WalWorkload } from './wal-workload.js';

describe('raft/storage/fsync-policy', () => {
  it('probes at once, stays inline while fsyncs are fast, and leaves at the first slow one', () => {
    const policy = new InlineFsyncPolicy();
    expect(policy.isInline).to.equal(false);
    expect(policy.inlineAt(0), 'the first flush probes').to.equal(true);
    expect(policy.tookInline(0.01, 0)).to.deep.equal({ inline: true, fsyncMs: 0.01 });
    expect(policy.isInline).to.equal(true);
    expect(policy.tookInline(INLINE_FSYNC_MAX_MS, 1), 'at the bound: still fast, nothing new').to.equal(undefined);
    expect(policy.inlineAt(2)).to.equal(true);
    expect(policy.tookInline(3, 10)).to.deep.equal({ inline: false, fsyncMs: 3, nextProbeInMs: INLINE_FSYNC_FIRST_BACKOFF_MS });
    expect(policy.isInline).to.equal(false);
    expect(policy.inlineAt(10 + INLINE_FSYNC_FIRST_BACKOFF_MS - 1), 'before the backoff ends').to.equal(false);
    expect(policy.inlineAt(10 + INLINE_FSYNC_FIRST_BACKOFF_MS), 'the probe').to.equal(true);
    expect(policy.stats).to.deep.equal({ inline: 3, slow: 1 });
  });

  it('doubles the backoff after every slow probe, up to its cap, and a fast probe goes inline again', () => {
    const policy = new InlineFsyncPolicy();
    let nowMs = 0;
    const backoffs: number[] = [];
    for (let i = 0; i < 12; i++) {
      expect(policy.inlineAt(nowMs)).to.equal(true);
      const change = policy.tookInline(1, nowMs);
      backoffs.push(change?.nextProbeInMs ?? -1);
      expect(policy.inlineAt(nowMs + 1), 'on the thread pool until the probe').to.equal(false);
      nowMs += change?.nextProbeInMs ?? 0;
    }
    expect(backoffs.slice(0, 4)).to.deep.equal([1_000, 2_000, 4_000, 8_000]);
    expect(backoffs.at(-1)).to.equal(INLINE_FSYNC_MAX_BACKOFF_MS);
    expect(Math.max(...backoffs)).to.equal(INLINE_FSYNC_MAX_BACKOFF_MS);
    expect(policy.tookInline(0.1, nowMs)).to.deep.equal({ inline: true, fsyncMs: 0.1 });
    expect(policy.isInline).to.equal(true);
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
    const flush = async (): Promise<void> => {
      workload.step();
      workload.step();
      const before = disk.unsyncedFiles().length;
      const sync = wal.sync();
      // Inline, the bytes are durable before sync() even returns; on the pool only after it settles.
      if (wal.fsyncPolicy.isInline && before > 0) expect(disk.unsyncedFiles()).to.deep.equal([]);
      await sync;
      expect(disk.unsyncedFiles()).to.deep.equal([]);
    };
    for (let i = 0; i < 5; i++) await flush();
    expect(wal.fsyncPolicy.isInline).to.equal(true);
    expect(events).to.include('wal fsyncs inline: the disk syncs fast');
    latencyMs = 5; // the disk turns slow
    await flush();
    expect(wal.fsyncPolicy.isInline).to.equal(false);
    expect(events).to.include('wal fsyncs on the thread pool again: an inline fsync was slow');
    const inlineSoFar = wal.fsyncPolicy.stats.inline;
    for (let i = 0; i < 5; i++) await flush();
    expect(wal.fsyncPolicy.stats.inline, 'no inline fsync during the backoff').to.equal(inlineSoFar);
    nowMs += INLINE_FSYNC_FIRST_BACKOFF_MS;
    for (let i = 0; i < 5; i++) await flush();
    expect(wal.fsyncPolicy.stats.inline, 'one probe after it (slow: the next waits twice as long)').to.equal(inlineSoFar + 1);
    expect(events).to.include('wal fsync probe slow: staying on the thread pool');
    latencyMs = 0.05;
    nowMs += 2 * INLINE_FSYNC_FIRST_BACKOFF_MS;
    for (let i = 0; i < 3; i++) await flush();
    expect(wal.fsyncPolicy.isInline, 'fast again: inline').to.equal(true);
    await wal.close();
  });
});
