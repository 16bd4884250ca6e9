/**
 * Crashes at chosen points inside a flush or inside recovery, on the simulated
 * disk: what the WAL deletes or builds on must already be durable. Each case
 * was found by the random power-loss test (wal-power-loss.test.ts) and fails
 * without its fix.
 */
import { expect } from 'chai';
import { SeededRandom } from '../../../src/raft/index.js';
import { Wal, type DurableStorage, type FileSystem } from '../../../src/raft/storage/index.js';
import { SimDisk } from '../../sim/sim-disk.js';
import { drainMicrotasks, runUntilSettled, SimScheduler } from '../../sim/sim-scheduler.js';
import { allEntries, makeEntries } from './helpers.js';

const CONF = { voters: [1], learners: [] };

/** A process's file system that kills the disk's processes right after the first call `matches` completes. */
function killingAfter(disk: SimDisk, matches: (operation: string, path: string) => boolean): FileSystem {
  const fs = disk.process();
  let armed = true;
  const after = async <T>(operation: string, path: string, call: Promise<T>): Promise<T> => {
    const result = await call;
    if (armed && matches(operation, path)) {
      armed = false;
      disk.kill();
    }
    return result;
  };
  return {
    mkdir: (path) => after('mkdir', path, fs.mkdir(path)),
    readdir: (path) => after('readdir', path, fs.readdir(path)),
    readFile: (path) => after('readFile', path, fs.readFile(path)),
    open: (path, mode) => after('open', path, fs.open(path, mode)),
    rename: (from, to) => after('rename', to, fs.rename(from, to)),
    unlink: (path) => after('unlink', path, fs.unlink(path)),
    syncDirectory: (path) => after('syncDirectory', path, fs.syncDirectory(path)),
  };
}

/** Runs the disk's operations one at a time until `path` holds unsynced data (a batch written, not yet synced). */
async function untilUnsynced(scheduler: SimScheduler, disk: SimDisk, path: string): Promise<void> {
  while (!disk.unsyncedFiles().includes(path)) {
    if (!scheduler.runNext()) throw new Error(`${path} never held unsynced data`);
    await drainMicrotasks();
  }
}

/** Runs every operation queued on the scheduler. */
async function runAll(scheduler: SimScheduler): Promise<void> {
  await drainMicrotasks();
  while (scheduler.runNext()) await drainMicrotasks();
}

describe('raft/storage/wal crash ordering', () => {
  it('deletes a snapshot file only once the recovered marker that replaced it is durable', async () => {
    const scheduler = new SimScheduler();
    const disk = new SimDisk({ random: new SeededRandom(11), scheduler: scheduler.schedule });
    const wal = await runUntilSettled(scheduler, Wal.open('/node', undefined, { fs: disk.process() }));
    const storage = wal.openGroup(1, { confState: CONF });
    storage.append(makeEntries(1, 3, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 3 });
    storage.createSnapshot(2, CONF, Uint8Array.of(2));
    await runUntilSettled(scheduler, wal.syncAll());
    // The next snapshot's file is written and synced, then its marker written but not synced: killed.
    storage.createSnapshot(3, CONF, Uint8Array.of(3));
    await untilUnsynced(scheduler, disk, '/node/wal/0000000000000001.log');
    disk.kill();

    // Recovery sees the newer marker in the page cache and deletes 1-1-2.snap as unreferenced;
    // it is killed right after. Then the power goes, taking the unsynced marker with it.
    const recovering = Wal.open('/node', undefined, { fs: killingAfter(disk, (operation, path) => operation === 'unlink' && path.endsWith('.snap')) });
    void recovering.catch(() => undefined);
    await runAll(scheduler);
    disk.powerLoss({ file: (path, { durableLength }) => (path.endsWith('.log') ? { kind: 'prefix', length: durableLength } : undefined) });

    // Before the fix: SNAPSHOT_MISSING for 1-1-2.snap, which the surviving marker names.
    const recovered = await runUntilSettled(scheduler, Wal.open('/node', undefined, { fs: disk.process() }));
    const snapshot = recovered.openGroup(1).snapshot();
    expect(snapshot.ok && snapshot.value.metadata.index).to.be.oneOf([2, 3]);
  });

  it('makes a segment a killed roll renamed into place durable before appending to it', async () => {
    const disk = new SimDisk({ random: new SeededRandom(12) });
    // Killed right after segment 2's rename, before the directory sync that makes it durable.
    const rolling = await Wal.open('/node', undefined, {
      fs: killingAfter(disk, (operation, path) => operation === 'rename' && path.endsWith('0000000000000002.log')),
      segmentBytes: 200,
    });
    const storage = rolling.openGroup(1, { confState: CONF });
    storage.append(makeEntries(1, 8, 1));
    void rolling.sync().catch(() => undefined);
    for (let turn = 0; turn < 100; turn++) await drainMicrotasks();
    expect(disk.read('/node/wal/0000000000000002.log')).to.not.equal(undefined);

    // The next process appends to segment 2 and its sync resolves: acknowledged.
    const next = await Wal.open('/node', undefined, { fs: disk.process() });
    next.openGroup(1).append(makeEntries(9, 9, 2));
    await next.sync();
    // A power loss keeps no directory operation that was not synced. Before the fix segment 2's
    // name was one of them, and entry 9 was lost with it.
    disk.powerLoss({ directoryOperationsKept: 0 });
    const recovered = await Wal.open('/node', undefined, { fs: disk.process() });
    expect(allEntries(recovered.openGroup(1))).to.deep.equal([...makeEntries(1, 8, 1), ...makeEntries(9, 9, 2)]);
  });

  it("deletes a passed snapshot file only after a flush: never the file of a leader's snapshot being made durable under the same name", async () => {
    // Found by review: the file of a replica's own snapshot at (1, 4), passed by a tombstone while
    // it was written, was deleted as soon as it was written. A new incarnation had meanwhile
    // installed a leader's snapshot at (1, 4) — the same name — and taken a newer one: its
    // marker at 4, in the flush in flight, named a file no latest marker named any more.
    let runs = 0;
    for (let seed = 1; seed <= 12; seed++) {
      for (let steps = 0; ; steps++) {
        const scheduler = new SimScheduler();
        const disk = new SimDisk({ random: new SeededRandom(seed * 1000 + steps), scheduler: scheduler.schedule });
        const wal = await runUntilSettled(scheduler, Wal.open('/node', undefined, { fs: disk.process() }));
        const first = wal.openGroup(1, { confState: CONF });
        first.append(makeEntries(1, 6, 1));
        first.setHardState({ term: 1, vote: 1, commit: 6 });
        first.createSnapshot(3, CONF, Uint8Array.of(3));
        await runUntilSettled(scheduler, wal.syncAll());
        first.createSnapshot(4, CONF, Uint8Array.of(4, 1)); // its file is written in the background
        wal.dropGroup(1);
        const second = wal.openGroup(1, { confState: CONF });
        second.applySnapshot({ metadata: { index: 4, term: 1, confState: CONF }, data: Uint8Array.of(4, 2, 2) });
        second.setHardState({ term: 1, vote: 0, commit: 4 });
        let acknowledged = false;
        void wal.sync().then(() => (acknowledged = true), () => undefined);
        second.append(makeEntries(5, 7, 1));
        second.createSnapshot(6, CONF, Uint8Array.of(6, 2));
        let finished = false;
        void wal.syncAll().then(() => (finished = true), () => undefined);
        await drainMicrotasks();
        for (let step = 0; step < steps && scheduler.runNext(); step++) await drainMicrotasks();
        const wasAcknowledged = acknowledged;
        disk.powerLoss();
        runs++;

        const where = `seed ${seed}, power lost after ${steps} disk operations`;
        const recovered = await runUntilSettled(scheduler, Wal.open('/node', undefined, { fs: disk.process() })).catch((error: unknown) => {
          throw new Error(`${where}: ${String(error)}`);
        });
        if (wasAcknowledged) {
          // The leader's snapshot was acknowledged: it, or the newer one, is what recovers.
          const snapshot = recovered.openGroup(1).snapshot();
          expect(snapshot.ok && snapshot.value.metadata.index, where).to.be.oneOf([4, 6]);
          expect(snapshot.ok && snapshot.value.data[1], where).to.equal(2);
        }
        if (finished) break;
      }
    }
    expect(runs).to.be.greaterThan(100);
  });

  const movesOn: [string, (wal: Wal, storage: DurableStorage) => void][] = [
    ['is removed again', (wal) => wal.dropGroup(1)],
    [
      'takes a newer snapshot',
      (_wal, storage) => {
        storage.append(makeEntries(5, 5, 1));
        storage.setHardState({ term: 1, vote: 1, commit: 5 });
        storage.createSnapshot(5, CONF, Uint8Array.of(5));
      },
    ],
  ];
  for (const [what, moveOn] of movesOn) {
    it(`keeps a snapshot file the latest durable marker names while the group ${what} in memory`, async () => {
      const disk = new SimDisk({ random: new SeededRandom(13) });
      const wal = await Wal.open('/node', undefined, { fs: disk.process() });
      const first = wal.openGroup(1, { confState: CONF });
      first.append(makeEntries(1, 4, 1));
      first.setHardState({ term: 1, vote: 1, commit: 4 });
      first.createSnapshot(4, CONF, Uint8Array.of(4));
      await wal.syncAll();
      // The replica is removed and added back, and the new one is sent a snapshot at the same
      // (term, index): the same file name, 1-1-4.snap, which the tombstone lists as obsolete.
      wal.dropGroup(1);
      const second = wal.openGroup(1, { confState: CONF });
      second.applySnapshot({ metadata: { index: 4, term: 1, confState: CONF }, data: Uint8Array.of(4) });
      second.setHardState({ term: 1, vote: 1, commit: 4 });
      const flushing = wal.sync();
      moveOn(wal, second); // in the next batch, while that one is on its way to disk
      await flushing;
      disk.kill();

      // Before the fix the flush deleted 1-1-4.snap, which no marker in memory named, though the
      // durable marker of the second replica does: SNAPSHOT_MISSING.
      const recovered = await Wal.open('/node', undefined, { fs: disk.process() });
      const snapshot = recovered.openGroup(1).snapshot();
      expect(snapshot.ok && snapshot.value.data).to.deep.equal(Uint8Array.of(4));
    });
  }
});
