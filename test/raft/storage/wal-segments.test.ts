import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Wal, type DurableStorage } from '../../../src/raft/storage/index.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

describe('raft/storage/wal segments', () => {
  let dir: string | undefined;
  const opened: Wal[] = [];
  const openWal = async (): Promise<Wal> => {
    const wal = await Wal.open(dir as string, undefined, { segmentBytes: 1024 });
    opened.push(wal);
    return wal;
  };
  const listDir = async (sub: string): Promise<string[]> => (await readdir(join(dir as string, sub))).sort();
  const segmentFiles = async (): Promise<number[]> => (await listDir('wal')).map((name) => Number(name.slice(0, 16)));

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of opened.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  /** Two groups, 60 entries each, one sync per entry: many 1 KiB segments. */
  async function fill(wal: Wal): Promise<[DurableStorage, DurableStorage]> {
    const one = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    const two = wal.openGroup(2, { confState: { voters: [2], learners: [] } });
    for (let i = 1; i <= 60; i++) {
      one.append(makeEntries(i, i, 1));
      one.setHardState({ term: 1, vote: 1, commit: i });
      two.append(makeEntries(i, i, 2));
      two.setHardState({ term: 2, vote: 2, commit: i });
      await wal.sync();
    }
    return [one, two];
  }

  it('rolls segments and deletes old ones once every group has a snapshot covering them', async () => {
    const wal = await openWal();
    const [one, two] = await fill(wal);
    const rolled = wal.segments();
    expect(rolled.length).to.be.greaterThan(4);
    expect(await segmentFiles()).to.deep.equal(rolled);

    // Group 1 snapshots everything, but group 2 still needs every segment.
    one.createSnapshot(60, { voters: [1], learners: [] }, Uint8Array.of(1));
    one.compact(61);
    await wal.syncAll();
    expect(wal.segments()).to.deep.equal(rolled);

    // Group 2 snapshots through 50: the segments holding only entries ≤ 50 go.
    two.createSnapshot(50, { voters: [2], learners: [] }, Uint8Array.of(2));
    await wal.syncAll();
    const kept = wal.segments();
    expect(kept.length).to.be.lessThan(rolled.length);
    expect(kept[0]).to.be.greaterThan(rolled[0] as number);
    expect(kept[kept.length - 1]).to.equal(rolled[rolled.length - 1]);
    expect(await segmentFiles()).to.deep.equal(kept);
    expect(await listDir('snap')).to.deep.equal(['1-1-60.snap', '2-2-50.snap']);

    // Hard states and snapshot markers lived in deleted segments: the checkpoints restated them.
    const reopened = await openWal();
    const recoveredOne = reopened.openGroup(1);
    expect(recoveredOne.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 60 });
    expect(recoveredOne.firstIndex()).to.equal(61);
    expect(recoveredOne.lastIndex()).to.equal(60);
    const recoveredTwo = reopened.openGroup(2);
    expect(recoveredTwo.initialState()).to.deep.equal({ hardState: { term: 2, vote: 2, commit: 60 }, confState: { voters: [2], learners: [] } });
    expect(allEntries(recoveredTwo)).to.deep.equal(makeEntries(51, 60, 2));
    const snapshot = recoveredTwo.snapshot();
    expect(snapshot.ok && snapshot.value.data).to.deep.equal(Uint8Array.of(2));

    // The reopened WAL keeps collecting: a snapshot through 60 frees all but the current segment.
    recoveredTwo.createSnapshot(60, { voters: [2], learners: [] }, Uint8Array.of(3));
    await reopened.syncAll();
    expect(reopened.segments()).to.deep.equal([kept[kept.length - 1]]);
    expect(await listDir('snap')).to.deep.equal(['1-1-60.snap', '2-2-60.snap']);
  });

  it('lets a dropped group stop holding segments back', async () => {
    const wal = await openWal();
    const [one] = await fill(wal);
    const rolled = wal.segments();
    one.createSnapshot(60, { voters: [1], learners: [] }, new Uint8Array(0));
    wal.dropGroup(2);
    await wal.sync();
    expect(wal.segments()).to.deep.equal([rolled[rolled.length - 1]]);

    const reopened = await openWal();
    expect(reopened.groupIds()).to.deep.equal([1]);
    expect(reopened.openGroup(1).initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 60 });
  });

  it('never deletes segments for a snapshot or tombstone that is not yet durable', async () => {
    const wal = await openWal();
    const [one, two] = await fill(wal);
    const rolled = wal.segments();
    one.createSnapshot(60, { voters: [1], learners: [] }, new Uint8Array(0));
    const pending = wal.sync();
    two.createSnapshot(60, { voters: [2], learners: [] }, new Uint8Array(0)); // in the next batch
    await pending;
    expect(wal.segments()).to.deep.equal(rolled);
    await wal.sync();
    expect(wal.segments()).to.deep.equal([rolled[rolled.length - 1]]);
  });
});
