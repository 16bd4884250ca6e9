import { expect } from 'chai';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem, Wal, WalError, type FileSystem } from '../../../src/raft/storage/index.js';
import { EntryType } from '../../../src/raft/types.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

describe('raft/storage/wal', () => {
  let dir: string | undefined;
  const open: Wal[] = [];
  const openWal = async (options: { segmentBytes?: number } = {}): Promise<Wal> => {
    const wal = await Wal.open(dir as string, undefined, options);
    open.push(wal);
    return wal;
  };

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of open.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  it('starts empty and round-trips entries and hard state', async () => {
    const wal = await openWal();
    expect(wal.groupIds()).to.deep.equal([]);
    const storage = wal.openGroup(5, { confState: { voters: [1, 2, 3], learners: [] } });
    storage.append(makeEntries(1, 10, 1));
    storage.setHardState({ term: 1, vote: 2, commit: 7 });
    await wal.sync();
    await wal.close();

    const reopened = await openWal();
    expect(reopened.groupIds()).to.deep.equal([5]);
    const recovered = reopened.openGroup(5);
    expect(recovered.initialState()).to.deep.equal({
      hardState: { term: 1, vote: 2, commit: 7 },
      confState: { voters: [1, 2, 3], learners: [] },
    });
    expect(recovered.firstIndex()).to.equal(1);
    expect(recovered.lastIndex()).to.equal(10);
    expect(allEntries(recovered)).to.deep.equal(makeEntries(1, 10, 1));
  });

  it('recovers a group created without members (uninitialized replica)', async () => {
    const wal = await openWal();
    wal.openGroup(9);
    await wal.sync();
    const reopened = await openWal();
    expect(reopened.groupIds()).to.deep.equal([9]);
    expect(reopened.openGroup(9).initialState().confState).to.deep.equal({ voters: [], learners: [] });
  });

  it('recovers per group the records of several interleaved groups', async () => {
    const wal = await openWal();
    const groups = [1, 2, 3].map((id) => wal.openGroup(id, { confState: { voters: [id * 10], learners: [] } }));
    for (let round = 0; round < 5; round++) {
      groups.forEach((storage, g) => {
        const from = round * 3 + 1;
        storage.append(makeEntries(from, from + 2, g + 1));
        storage.setHardState({ term: g + 1, vote: 0, commit: from + g - 1 });
      });
      if (round % 2 === 0) await wal.sync();
    }
    await wal.sync();

    const reopened = await openWal();
    expect(reopened.groupIds()).to.deep.equal([1, 2, 3]);
    for (const id of [1, 2, 3]) {
      const storage = reopened.openGroup(id);
      expect(allEntries(storage)).to.deep.equal(makeEntries(1, 15, id));
      expect(storage.initialState()).to.deep.equal({
        hardState: { term: id, vote: 0, commit: 11 + id },
        confState: { voters: [id * 10], learners: [] },
      });
    }
  });

  it('recovers hard state, snapshot (with its data) and the entries after it', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 10, 2));
    const data = new TextEncoder().encode('state machine at 6');
    storage.createSnapshot(6, { voters: [1, 2], learners: [3] }, data);
    storage.compact(7);
    storage.append(makeEntries(11, 12, 3));
    storage.setHardState({ term: 3, vote: 1, commit: 12 });
    await wal.syncAll();
    expect(await readdir(join(dir as string, 'snap'))).to.deep.equal(['1-2-6.snap']);

    const recovered = (await openWal()).openGroup(1);
    const snapshot = recovered.snapshot();
    expect(snapshot.ok && snapshot.value).to.deep.equal({ metadata: { index: 6, term: 2, confState: { voters: [1, 2], learners: [3] } }, data });
    expect(recovered.initialState()).to.deep.equal({ hardState: { term: 3, vote: 1, commit: 12 }, confState: { voters: [1, 2], learners: [3] } });
    expect(recovered.firstIndex()).to.equal(7);
    expect(recovered.term(6)).to.deep.equal({ ok: true, value: 2 });
    expect(allEntries(recovered)).to.deep.equal([...makeEntries(7, 10, 2), ...makeEntries(11, 12, 3)]);
  });

  it('recovers a snapshot from the leader that replaced the whole log', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1, 2, 3], learners: [] } });
    storage.append(makeEntries(1, 30, 1));
    storage.applySnapshot({ metadata: { index: 20, term: 4, confState: { voters: [1, 2, 3], learners: [] } }, data: Uint8Array.of(1, 2, 3) });
    storage.append(makeEntries(21, 22, 4));
    await wal.sync();

    const recovered = (await openWal()).openGroup(1);
    expect(recovered.firstIndex()).to.equal(21);
    expect(recovered.term(20)).to.deep.equal({ ok: true, value: 4 });
    expect(allEntries(recovered)).to.deep.equal(makeEntries(21, 22, 4));
  });

  it('recovers log truncation: later entries at an index overwrite earlier ones', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 10, 1));
    await wal.sync();
    storage.append(makeEntries(6, 8, 2)); // a new leader's log wins from 6 on, 9 and 10 are gone
    storage.append(makeEntries(9, 9, 3));
    await wal.sync();

    const recovered = (await openWal()).openGroup(1);
    expect(allEntries(recovered)).to.deep.equal([...makeEntries(1, 5, 1), ...makeEntries(6, 8, 2), ...makeEntries(9, 9, 3)]);
  });

  it('recovers what was synced when the writer never closed (crash)', async () => {
    const crashed = await openWal();
    const storage = crashed.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 5, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 5 });
    await crashed.sync();

    const reopened = await Wal.open(dir as string);
    const recovered = reopened.openGroup(1);
    expect(allEntries(recovered)).to.deep.equal(makeEntries(1, 5, 1));
    expect(recovered.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 5 });
    // Appending after the restart works and survives the next restart.
    recovered.append(makeEntries(6, 7, 2));
    await reopened.sync();
    await reopened.close();
    const again = (await openWal()).openGroup(1);
    expect(allEntries(again)).to.deep.equal([...makeEntries(1, 5, 1), ...makeEntries(6, 7, 2)]);
  });

  it('forgets a dropped group and deletes its snapshot file; the id may come back', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(4, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 3, 1));
    storage.createSnapshot(2, { voters: [1], learners: [] }, Uint8Array.of(9));
    wal.openGroup(5).append(makeEntries(1, 1, 1));
    await wal.syncAll();
    expect(await readdir(join(dir as string, 'snap'))).to.deep.equal(['4-1-2.snap']);

    wal.dropGroup(4);
    expect(() => storage.append(makeEntries(4, 4, 1))).to.throw(WalError).with.property('code', 'GROUP_DROPPED');
    expect(wal.groupIds()).to.deep.equal([5]);
    await wal.sync();
    expect(await readdir(join(dir as string, 'snap'))).to.deep.equal([]);

    const reborn = wal.openGroup(4, { confState: { voters: [7], learners: [] } });
    reborn.append(makeEntries(1, 1, 5));
    await wal.sync();

    const reopened = await openWal();
    expect(reopened.groupIds()).to.deep.equal([4, 5]);
    const recovered = reopened.openGroup(4);
    expect(recovered.initialState().confState).to.deep.equal({ voters: [7], learners: [] });
    expect(allEntries(recovered)).to.deep.equal(makeEntries(1, 1, 5));
  });

  it('coalesces syncs requested while one is on disk', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 1, 1));
    const first = wal.sync();
    storage.append(makeEntries(2, 2, 1));
    const second = wal.sync();
    storage.append(makeEntries(3, 3, 1));
    const third = wal.sync();
    expect(third).to.equal(second); // one write + fsync for both
    expect(wal.sync()).to.equal(second);
    await Promise.all([first, second, third]);
    await wal.sync(); // nothing buffered: resolves at once
    expect(allEntries((await openWal()).openGroup(1))).to.deep.equal(makeEntries(1, 3, 1));
  });

  it('refuses misuse with typed errors', async () => {
    const wal = await openWal();
    wal.openGroup(1);
    expect(() => wal.openGroup(1)).to.throw(WalError).with.property('code', 'GROUP_ALREADY_OPEN');
    const storage = wal.openGroup(2);
    await wal.close();
    expect(() => storage.setHardState({ term: 1, vote: 0, commit: 0 })).to.throw(WalError).with.property('code', 'CLOSED');
    expect(() => wal.openGroup(3)).to.throw(WalError).with.property('code', 'CLOSED');
  });

  it('fails every later sync once a write failed (an fsync is never retried)', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 2, 1));
    await wal.sync();
    // Make the next snapshot file write fail: snap/ is now a plain file.
    await rm(join(dir as string, 'snap'), { recursive: true });
    await writeFile(join(dir as string, 'snap'), 'not a directory');
    storage.createSnapshot(2, { voters: [1], learners: [] }, Uint8Array.of(1));
    const failed: unknown = await wal.syncAll().then(() => undefined, (error: unknown) => error);
    expect(failed).to.be.instanceOf(WalError).with.property('code', 'IO_FAILED');
    storage.setHardState({ term: 2, vote: 1, commit: 2 });
    const again: unknown = await wal.sync().then(() => undefined, (error: unknown) => error);
    expect(again).to.equal(failed);
  });

  it('keeps entry types and empty data', async () => {
    const wal = await openWal();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    const entries = [
      { index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) },
      { index: 2, term: 1, type: EntryType.ConfChange, data: Uint8Array.of(1, 2) },
    ];
    storage.append(entries);
    await wal.sync();
    expect(allEntries((await openWal()).openGroup(1))).to.deep.equal(entries);
  });

  it('does all its file I/O through the injected file system', async () => {
    // Paths under /kvstore-virtual exist only through this file system: a direct node:fs call would fail.
    const virtual = '/kvstore-virtual';
    const real = (path: string): string => (dir as string) + path.slice(virtual.length);
    const calls = new Set<string>();
    const fs: FileSystem = {
      mkdir: (path) => (calls.add('mkdir'), nodeFileSystem.mkdir(real(path))),
      readdir: (path) => (calls.add('readdir'), nodeFileSystem.readdir(real(path))),
      readFile: (path) => (calls.add('readFile'), nodeFileSystem.readFile(real(path))),
      open: (path, mode) => (calls.add(`open ${mode}`), nodeFileSystem.open(real(path), mode)),
      rename: (from, to) => (calls.add('rename'), nodeFileSystem.rename(real(from), real(to))),
      unlink: (path) => (calls.add('unlink'), nodeFileSystem.unlink(real(path))),
      syncDirectory: (path) => (calls.add('syncDirectory'), nodeFileSystem.syncDirectory(real(path))),
    };
    const wal = await Wal.open(virtual, undefined, { fs, segmentBytes: 300 });
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    for (let index = 1; index <= 8; index++) {
      storage.append(makeEntries(index, index, 1));
      storage.setHardState({ term: 1, vote: 1, commit: index });
      await wal.sync();
    }
    storage.createSnapshot(8, { voters: [1], learners: [] }, Uint8Array.of(8));
    await wal.sync();
    await wal.close();
    const reopened = await Wal.open(virtual, undefined, { fs });
    open.push(reopened);
    expect(allEntries(reopened.openGroup(1))).to.deep.equal([]);
    expect([...calls].sort()).to.deep.equal(['mkdir', 'open existing', 'open truncate', 'readFile', 'readdir', 'rename', 'syncDirectory', 'unlink']);
  });
});
