/**
 * The WAL stays bounded whatever the mix of hot and cold groups (issue 15): once its
 * segments pass the purge threshold, it names the groups that pin the oldest ones; when
 * they snapshot, the segments go. On the simulated disk, so the bytes counted are the
 * bytes on disk.
 */
import { expect } from 'chai';
import { SeededRandom } from '../../../src/raft/index.js';
import { Wal, type DurableStorage } from '../../../src/raft/storage/index.js';
import { SimDisk } from '../../sim/sim-disk.js';
import { makeEntries } from './helpers.js';

const SEGMENT_BYTES = 8 * 1024;
const PURGE_BYTES = 3 * SEGMENT_BYTES;
const VALUE = new Uint8Array(1000).fill(7);

/** Bytes of every file under `dir` on the disk. */
function bytesUnder(disk: SimDisk, files: readonly string[]): number {
  return files.reduce((sum, path) => sum + (disk.read(path)?.length ?? 0), 0);
}

/** Snapshots `storage` at its last index, unless it already has one there (a replica snapshots at its applied index). */
function snapshot(storage: DurableStorage, id: number): void {
  const current = storage.snapshot();
  if (current.ok && current.value.metadata.index >= storage.lastIndex()) return;
  storage.createSnapshot(storage.lastIndex(), { voters: [1], learners: [] }, new Uint8Array([id + 1]));
}

/** One hot group writing `writes` 1,000-byte entries and 63 cold groups that wrote once; `purge` snapshots the pinning groups. */
async function run(writes: number, purge: boolean): Promise<{ peakWalBytes: number; finalWalBytes: number; segments: number; written: number }> {
  const disk = new SimDisk({ random: new SeededRandom(1) });
  const fs = disk.process();
  const wal = await Wal.open('/data', undefined, { fs, segmentBytes: SEGMENT_BYTES, purgeBytes: PURGE_BYTES, random: new SeededRandom(2) });
  const groups = new Map<number, DurableStorage>();
  for (let id = 0; id < 64; id++) {
    const storage = wal.openGroup(id, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 1, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 1 });
    groups.set(id, storage);
  }
  await wal.sync();
  const hot = groups.get(0) as DurableStorage;
  let peakWalBytes = 0;
  for (let index = 2; index <= writes + 1; index++) {
    hot.append([{ index, term: 1, type: 0, data: VALUE }]);
    hot.setHardState({ term: 1, vote: 1, commit: index });
    // The hot group snapshots every 20 entries, as a replica does every N applied.
    if (index % 20 === 0) snapshot(hot, 0);
    if (purge) for (const id of wal.groupsPinningLog()) snapshot(groups.get(id) as DurableStorage, id);
    // A host's turn syncs without waiting for snapshot files; their markers follow within a few
    // turns. syncAll settles them here, so that the WAL's files can be counted.
    await wal.syncAll();
    expect(wal.bytes(), 'bytes() counts the segment files').to.equal(bytesUnder(disk, (await fs.readdir('/data/wal')).map((name) => `/data/wal/${name}`)));
    peakWalBytes = Math.max(peakWalBytes, wal.bytes());
  }
  const result = { peakWalBytes, finalWalBytes: wal.bytes(), segments: wal.segments().length, written: writes * VALUE.length };
  await wal.close();
  return result;
}

describe('raft/storage/wal purge: bounded by the threshold, not by the coldest group', () => {
  it('without purging, one cold group keeps every segment (the bug)', async () => {
    const { finalWalBytes, written } = await run(400, false);
    expect(finalWalBytes).to.be.greaterThan(written);
  });

  for (const writes of [100, 400, 1600]) {
    it(`after ${writes} writes of 1,000 bytes to one hot group beside 63 cold ones, the WAL stays under the threshold plus a segment`, async () => {
      const { peakWalBytes, finalWalBytes } = await run(writes, true);
      // The threshold, the segment being written, and the one batch that crossed it.
      const bound = PURGE_BYTES + SEGMENT_BYTES + 2 * 1024;
      expect(peakWalBytes, `peak ${peakWalBytes} bytes`).to.be.at.most(bound);
      expect(finalWalBytes).to.be.at.most(bound);
    });
  }
});
