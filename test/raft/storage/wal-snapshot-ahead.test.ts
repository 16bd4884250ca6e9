/**
 * A group's own snapshot has its file written ahead of its marker, in the background: a
 * turn's sync never waits for it, the marker follows once the file is durable, and a newer
 * marker or a tombstone replaces a file still being written.
 */
import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem, Wal, type FileSystem } from '../../../src/raft/storage/index.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

const CONF = { voters: [1], learners: [] };

/** The node's file system, except that opening a snapshot's temp file waits until `release()`. */
function gatedFileSystem(): { fs: FileSystem; release: () => void; opened: () => boolean } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let opened = false;
  const fs: FileSystem = {
    ...nodeFileSystem,
    open: async (path, mode) => {
      if (path.endsWith('.snap.tmp')) {
        opened = true;
        await gate;
      }
      return nodeFileSystem.open(path, mode);
    },
  };
  return { fs, release, opened: () => opened };
}

describe('raft/storage/wal snapshot files ahead of their markers', () => {
  let dir: string | undefined;
  const open: Wal[] = [];
  const openWal = async (fs: FileSystem = nodeFileSystem): Promise<Wal> => {
    const wal = await Wal.open(dir as string, undefined, { fs });
    open.push(wal);
    return wal;
  };
  const snapFiles = async (): Promise<string[]> => (await readdir(join(dir as string, 'snap'))).sort();

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of open.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  it("syncs a turn without waiting for a snapshot's file; the marker follows once the file is durable", async () => {
    const { fs, release, opened } = gatedFileSystem();
    const wal = await openWal(fs);
    const storage = wal.openGroup(1, { confState: CONF });
    storage.append(makeEntries(1, 6, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 6 });
    await wal.sync();
    storage.createSnapshot(4, CONF, Uint8Array.of(4));
    storage.compact(5);
    storage.append(makeEntries(7, 8, 1));
    await wal.sync(); // resolves while the snapshot's file cannot even be opened
    expect(opened()).to.equal(true);
    expect(await snapFiles()).to.deep.equal([]);

    // A crash now recovers the previous snapshot and every entry after it.
    const crashed = (await openWal()).openGroup(1);
    const previous = crashed.snapshot();
    expect(previous.ok && previous.value.metadata.index).to.equal(0);
    expect(allEntries(crashed)).to.deep.equal(makeEntries(1, 8, 1));
    await (open.pop() as Wal).close();

    release();
    await wal.syncAll();
    expect(await snapFiles()).to.deep.equal(['1-1-4.snap']);
    const recovered = (await openWal()).openGroup(1);
    const snapshot = recovered.snapshot();
    expect(snapshot.ok && snapshot.value).to.deep.equal({ metadata: { index: 4, term: 1, confState: CONF }, data: Uint8Array.of(4) });
    expect(allEntries(recovered)).to.deep.equal(makeEntries(5, 8, 1));
  });

  it('does not name a group the purge would ask while its snapshot file is being written', async () => {
    const { fs, release } = gatedFileSystem();
    const wal = await Wal.open(dir as string, undefined, { fs, segmentBytes: 300, purgeBytes: 300 });
    open.push(wal);
    const storage = wal.openGroup(1, { confState: CONF });
    for (let index = 1; index <= 12; index++) {
      storage.append(makeEntries(index, index, 1));
      storage.setHardState({ term: 1, vote: 1, commit: index });
      await wal.sync();
    }
    expect(wal.groupsPinningLog()).to.deep.equal([1]);
    storage.createSnapshot(12, CONF, Uint8Array.of(12));
    expect(wal.groupsPinningLog()).to.deep.equal([]);
    release();
    await wal.syncAll();
    expect(wal.groupsPinningLog()).to.deep.equal([]);
    expect(wal.segments()).to.have.length(1);
  });

  const replacements: [string, (wal: Wal, storage: ReturnType<Wal['openGroup']>) => void, string[]][] = [
    ['a snapshot from the leader', (_wal, storage) => storage.applySnapshot({ metadata: { index: 9, term: 2, confState: CONF }, data: Uint8Array.of(9) }), ['1-2-9.snap']],
    ['a tombstone', (wal) => wal.dropGroup(1), []],
  ];
  for (const [what, replace, files] of replacements) {
    it(`deletes a snapshot file that ${what} passed while it was written, and never appends its marker`, async () => {
      const { fs, release } = gatedFileSystem();
      const wal = await openWal(fs);
      const storage = wal.openGroup(1, { confState: CONF });
      storage.append(makeEntries(1, 6, 1));
      storage.setHardState({ term: 1, vote: 1, commit: 6 });
      storage.createSnapshot(4, CONF, Uint8Array.of(4));
      replace(wal, storage); // while the file of the snapshot at 4 waits to be opened
      release();
      await wal.syncAll();
      expect(await snapFiles()).to.deep.equal(files);

      const reopened = await openWal();
      if (files.length === 0) {
        expect(reopened.groupIds()).to.deep.equal([]);
        return;
      }
      const snapshot = reopened.openGroup(1).snapshot();
      expect(snapshot.ok && snapshot.value.metadata.index).to.equal(9);
    });
  }

  it('writes one file at a time per group, then the newest snapshot taken meanwhile: a fast group still gets its markers in', async () => {
    const { fs, release } = gatedFileSystem();
    const opens: string[] = [];
    const counting: FileSystem = {
      ...fs,
      open: (path, mode) => {
        if (path.endsWith('.snap.tmp')) opens.push(path.slice(path.lastIndexOf('/') + 1));
        return fs.open(path, mode);
      },
    };
    const wal = await openWal(counting);
    const storage = wal.openGroup(1, { confState: CONF });
    storage.append(makeEntries(1, 8, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 8 });
    for (const index of [4, 5, 6, 7]) storage.createSnapshot(index, CONF, Uint8Array.of(index));
    expect(opens).to.deep.equal(['1-1-4.snap.tmp']); // 5 and 6 were replaced before their turn
    release();
    await wal.syncAll();
    expect(opens).to.deep.equal(['1-1-4.snap.tmp', '1-1-7.snap.tmp']);
    expect(await snapFiles()).to.deep.equal(['1-1-7.snap']);
    const snapshot = (await openWal()).openGroup(1).snapshot();
    expect(snapshot.ok && snapshot.value.data).to.deep.equal(Uint8Array.of(7));
  });
});
