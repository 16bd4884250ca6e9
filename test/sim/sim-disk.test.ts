import { expect } from 'chai';
import fc from 'fast-check';
import { SeededRandom } from '../../src/raft/index.js';
import type { FileHandle } from '../../src/raft/storage/index.js';
import { propertyOptions } from '../raft/storage/helpers.js';
import { PAGE_BYTES, SimDisk, SimFileSystemError, type SimProcess } from './sim-disk.js';
import { drainMicrotasks, runUntilSettled, SimScheduler } from './sim-scheduler.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const filled = (length: number, value: number): Uint8Array => new Uint8Array(length).fill(value);

/** Resolves to 'pending' if `promise` has not settled once the microtask queue is drained. */
async function stateOf(promise: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  let state: 'resolved' | 'rejected' | 'pending' = 'pending';
  void promise.then(() => (state = 'resolved'), () => (state = 'rejected'));
  await drainMicrotasks();
  return state;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (error: unknown) => error);
}

/** A disk with /d created and synced, and a process on it. */
async function freshDisk(seed = 1): Promise<{ disk: SimDisk; fs: SimProcess }> {
  const disk = new SimDisk({ random: new SeededRandom(seed) });
  const fs = disk.process();
  await fs.mkdir('/d');
  return { disk, fs };
}

/** Opens /d/f, durably created (file and directory entry synced). */
async function durableFile(fs: SimProcess, content: Uint8Array = new Uint8Array(0)): Promise<FileHandle> {
  const handle = await fs.open('/d/f', 'truncate');
  handle.writeSync(content, 0, content.length, 0);
  await handle.datasync();
  await fs.syncDirectory('/d');
  return handle;
}

describe('sim/sim-disk', () => {
  it('behaves as a file system: create, write, read, rename, unlink, list, errors with codes', async () => {
    const { fs } = await freshDisk();
    const handle = await fs.open('/d/a', 'truncate');
    expect(handle.writeSync(bytes(1, 2, 3, 4), 1, 2, 5)).to.equal(2);
    expect(await fs.readFile('/d/a')).to.deep.equal(bytes(0, 0, 0, 0, 0, 2, 3));
    await handle.truncate(6);
    await fs.rename('/d/a', '/d/b');
    await fs.mkdir('/d/sub/deeper');
    expect(await fs.readdir('/d')).to.deep.equal(['b', 'sub']);
    expect(await fs.readFile('/d/b')).to.deep.equal(bytes(0, 0, 0, 0, 0, 2));
    await (await fs.open('/d/b', 'truncate')).close();
    expect(await fs.readFile('/d/b')).to.deep.equal(new Uint8Array(0));
    await fs.unlink('/d/b');
    for (const [promise, code] of [
      [fs.readFile('/d/b'), 'ENOENT'],
      [fs.open('/d/b', 'existing'), 'ENOENT'],
      [fs.open('/nowhere/x', 'truncate'), 'ENOENT'],
      [fs.unlink('/d/b'), 'ENOENT'],
      [fs.readdir('/d/none'), 'ENOENT'],
      [fs.syncDirectory('/d/none'), 'ENOENT'],
      [fs.readFile('/d/sub'), 'EISDIR'],
    ] as const) {
      expect(await rejection(promise)).to.be.instanceOf(SimFileSystemError).with.property('code', code);
    }
    expect(fs.readIfExists('/d/none')).to.equal(undefined);
    fs.writeAtomic('/d/state.json', '{"a":1}');
    expect(fs.readIfExists('/d/state.json')).to.equal('{"a":1}');
  });

  it('kill keeps written data visible to the next process, still unsynced', async () => {
    const { disk, fs } = await freshDisk();
    const handle = await durableFile(fs, bytes(1, 2));
    handle.writeSync(bytes(3, 4), 0, 2, 2);
    const created = await fs.open('/d/new', 'truncate');
    created.writeSync(bytes(9), 0, 1, 0);
    disk.kill();
    const next = disk.process();
    expect(await next.readFile('/d/f')).to.deep.equal(bytes(1, 2, 3, 4));
    expect(await next.readFile('/d/new')).to.deep.equal(bytes(9));
    expect(disk.fileState('/d/f')).to.deep.equal({ length: 4, durableLength: 2, dirtyPages: [0] });
    expect(disk.unsyncedFiles()).to.deep.equal(['/d/f', '/d/new']);
    expect(disk.pendingDirectoryOperations()).to.equal(1);
    // A later power loss can still drop what the killed process never synced.
    disk.powerLoss({ directoryOperationsKept: 0, file: () => ({ kind: 'prefix', length: 0 }) });
    const after = disk.process();
    expect(await after.readFile('/d/f')).to.deep.equal(bytes(1, 2));
    expect(await after.readdir('/d')).to.deep.equal(['f']);
  });

  it('never settles the pending operations of a killed process, and refuses its new calls', async () => {
    const scheduler = new SimScheduler();
    const disk = new SimDisk({ random: new SeededRandom(2), scheduler: scheduler.schedule });
    const fs = disk.process();
    const mkdir = fs.mkdir('/d');
    while (scheduler.runNext()) await drainMicrotasks();
    await mkdir;
    const opening = fs.open('/d/f', 'truncate');
    scheduler.runNext();
    const handle = await opening;
    handle.writeSync(bytes(7), 0, 1, 0);
    const pending = [handle.datasync(), fs.syncDirectory('/d'), fs.readdir('/d'), handle.close()];
    disk.kill();
    while (scheduler.runNext()) await drainMicrotasks();
    for (const promise of pending) expect(await stateOf(promise)).to.equal('pending');
    expect(fs.alive).to.equal(false);
    expect(() => handle.writeSync(bytes(1), 0, 1, 0)).to.throw(SimFileSystemError).with.property('code', 'ESIMKILLED');
    expect(() => fs.readIfExists('/d/f')).to.throw(SimFileSystemError).with.property('code', 'ESIMKILLED');
    expect(await rejection(fs.readFile('/d/f'))).to.have.property('code', 'ESIMKILLED');
    expect(await rejection(handle.datasync())).to.have.property('code', 'ESIMKILLED');
    // Nothing became durable: the directory sync never ran, so the file's creation is lost.
    disk.powerLoss({ directoryOperationsKept: 0 });
    expect(disk.read('/d/f')).to.equal(undefined);
  });

  it('does the same without a scheduler: operations complete in a microtask, unless the process died first', async () => {
    const { disk, fs } = await freshDisk();
    const handle = await durableFile(fs);
    handle.writeSync(bytes(5), 0, 1, 0);
    const sync = handle.datasync();
    disk.powerLoss({ file: () => ({ kind: 'prefix', length: 0 }) });
    expect(await stateOf(sync)).to.equal('pending');
    expect(disk.read('/d/f')).to.deep.equal(new Uint8Array(0));
  });

  it('completes operations on virtual time after their latency; a slow fsync can take seconds', async () => {
    const scheduler = new SimScheduler();
    const disk = new SimDisk({ random: new SeededRandom(3), scheduler: scheduler.schedule, operationLatencyMs: () => 1 });
    const fs = disk.process();
    disk.syncLatencyMs = () => 2500;
    const done: string[] = [];
    void fs.mkdir('/d').then(() => done.push(`mkdir ${scheduler.now}`));
    void fs.syncDirectory('/').then(() => done.push(`sync ${scheduler.now}`));
    while (scheduler.runNext()) await drainMicrotasks();
    expect(done).to.deep.equal(['mkdir 1', 'sync 2500']);
  });

  it('makes durable, at a datasync, only what was written before it was called', async () => {
    const scheduler = new SimScheduler();
    const disk = new SimDisk({ random: new SeededRandom(4), scheduler: scheduler.schedule });
    const fs = disk.process();
    const setUp = (async (): Promise<FileHandle> => {
      await fs.mkdir('/d');
      return durableFile(fs);
    })();
    const handle = await runUntilSettled(scheduler, setUp);
    handle.writeSync(filled(10, 1), 0, 10, 0);
    const sync = handle.datasync();
    handle.writeSync(filled(10, 2), 0, 10, 10);
    while (scheduler.runNext()) await drainMicrotasks();
    await sync;
    expect(disk.fileState('/d/f')).to.deep.equal({ length: 20, durableLength: 10, dirtyPages: [0] });
    disk.powerLoss({ file: () => ({ kind: 'prefix', length: 0 }) });
    expect(disk.read('/d/f')).to.deep.equal(filled(10, 1));
  });

  it('keeps a prefix of the unsynced directory operations, in order, on power loss', async () => {
    const names = (): string[] => ['a', 'b', 'c', 'd', 'e'].filter((name) => disk.read(`/d/${name}`) !== undefined);
    // Operations: create a, create b, rename b → c, unlink a, create d; e was created and synced before.
    const expected = [['e'], ['a', 'e'], ['a', 'b', 'e'], ['a', 'c', 'e'], ['c', 'e'], ['c', 'd', 'e']];
    let disk = new SimDisk({ random: new SeededRandom(5) });
    for (let kept = 0; kept <= 5; kept++) {
      disk = new SimDisk({ random: new SeededRandom(5) });
      const fs = disk.process();
      await fs.mkdir('/d');
      await (await fs.open('/d/e', 'truncate')).close();
      await fs.syncDirectory('/d');
      await (await fs.open('/d/a', 'truncate')).close();
      await (await fs.open('/d/b', 'truncate')).close();
      await fs.rename('/d/b', '/d/c');
      await fs.unlink('/d/a');
      await (await fs.open('/d/d', 'truncate')).close();
      expect(disk.pendingDirectoryOperations()).to.equal(5);
      disk.powerLoss({ directoryOperationsKept: kept });
      expect(names(), `${kept} operations kept`).to.deep.equal(expected[kept]);
      expect(await disk.process().readdir('/d')).to.deep.equal(expected[kept]);
    }
    // A directory sync makes its operations durable whatever the power loss keeps.
    const fs = disk.process();
    await (await fs.open('/d/x', 'truncate')).close();
    await fs.syncDirectory('/d');
    await fs.unlink('/d/x');
    disk.powerLoss({ directoryOperationsKept: 0 });
    expect(disk.read('/d/x')).to.deep.equal(new Uint8Array(0));
  });

  it('never touches synced data on power loss; unsynced bytes come back written or zero', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.array(fc.record({ length: fc.integer({ min: 1, max: 3 * PAGE_BYTES }), sync: fc.constantFrom('none', 'await', 'pending') }), { minLength: 1, maxLength: 12 }),
        async (seed, writes) => {
          const { disk, fs } = await freshDisk(seed);
          const handle = await durableFile(fs);
          const written = new Uint8Array(writes.reduce((sum, { length }) => sum + length, 0));
          let writtenLength = 0;
          let syncedLength = 0;
          for (const [index, { length, sync }] of writes.entries()) {
            const chunk = filled(length, 1 + (index % 255));
            handle.writeSync(chunk, 0, length, writtenLength);
            written.set(chunk, writtenLength);
            writtenLength += length;
            if (sync === 'await') {
              await handle.datasync();
              syncedLength = writtenLength;
            } else if (sync === 'pending') {
              void handle.datasync().catch(() => undefined);
            }
          }
          disk.powerLoss();
          const after = disk.read('/d/f') ?? new Uint8Array(0);
          expect(after.length).to.be.within(syncedLength, writtenLength);
          expect(Buffer.compare(after.subarray(0, syncedLength), written.subarray(0, syncedLength))).to.equal(0);
          for (let position = syncedLength; position < after.length; position++) {
            if (after[position] !== 0 && after[position] !== written[position]) expect.fail(`byte ${position} is ${after[position]}`);
          }
          expect(disk.fileState('/d/f')).to.deep.equal({ length: after.length, durableLength: after.length, dirtyPages: [] });
        },
      ),
      propertyOptions(150),
    );
  });

  it('loses pages independently: a zeroed first page, later pages kept', async () => {
    const { disk, fs } = await freshDisk();
    const handle = await durableFile(fs, filled(100, 9));
    handle.writeSync(filled(3 * PAGE_BYTES, 7), 0, 3 * PAGE_BYTES, 100);
    disk.powerLoss({ file: () => ({ kind: 'pages', fate: (page) => (page === 0 ? 'zeroed' : 'kept') }) });
    const after = disk.read('/d/f') as Uint8Array;
    expect(after.length).to.equal(100 + 3 * PAGE_BYTES);
    expect(after.subarray(0, 100)).to.deep.equal(filled(100, 9)); // the synced part of page 0
    expect(after.subarray(100, PAGE_BYTES)).to.deep.equal(new Uint8Array(PAGE_BYTES - 100));
    expect(after.subarray(PAGE_BYTES)).to.deep.equal(filled(2 * PAGE_BYTES + 100, 7));
  });

  it('tears a page at sector granularity; lost pages at the end shorten the file', async () => {
    const { disk, fs } = await freshDisk();
    const handle = await durableFile(fs);
    handle.writeSync(filled(2 * PAGE_BYTES, 7), 0, 2 * PAGE_BYTES, 0);
    disk.powerLoss({ file: () => ({ kind: 'torn', page: 0, sectorKept: (sector) => sector % 2 === 0 }) });
    const torn = disk.read('/d/f') as Uint8Array;
    expect(torn.length).to.equal(2 * PAGE_BYTES);
    for (let sector = 0; sector < 8; sector++) {
      expect(torn.subarray(sector * 512, sector * 512 + 512)).to.deep.equal(filled(512, sector % 2 === 0 ? 7 : 0));
    }
    expect(torn.subarray(PAGE_BYTES)).to.deep.equal(new Uint8Array(PAGE_BYTES));

    const again = disk.process();
    const reopened = await again.open('/d/f', 'existing');
    reopened.writeSync(filled(2 * PAGE_BYTES, 8), 0, 2 * PAGE_BYTES, 2 * PAGE_BYTES);
    disk.powerLoss({ file: () => ({ kind: 'pages', fate: (page) => (page === 3 ? 'lost' : 'kept') }) });
    expect(disk.read('/d/f')?.length).to.equal(3 * PAGE_BYTES);
  });

  it('writes small state files atomically and durably', async () => {
    const { disk, fs } = await freshDisk();
    fs.writeAtomic('/d/node.json', 'one');
    fs.writeAtomic('/d/node.json', 'two');
    disk.powerLoss({ directoryOperationsKept: 0 });
    expect(disk.process().readIfExists('/d/node.json')).to.equal('two');
  });

  it('corrupts only synced data, on disk and in the page cache', async () => {
    const { disk, fs } = await freshDisk();
    const handle = await durableFile(fs, filled(PAGE_BYTES, 1));
    handle.writeSync(bytes(4), 0, 1, PAGE_BYTES);
    disk.corrupt('/d/f', 1, 0xff);
    const expected = Uint8Array.from([...filled(PAGE_BYTES, 1), 4]);
    expected[1] = 1 ^ 0xff;
    expect(disk.read('/d/f')).to.deep.equal(expected);
    disk.powerLoss({ file: () => ({ kind: 'prefix', length: 0 }) });
    expect(disk.read('/d/f')).to.deep.equal(expected.subarray(0, PAGE_BYTES));
    expect(() => disk.corrupt('/d/f', PAGE_BYTES)).to.throw(RangeError);
  });

  it('replays a power loss exactly from its seed', async () => {
    const outcome = async (seed: number): Promise<Uint8Array | undefined> => {
      const { disk, fs } = await freshDisk(seed);
      const handle = await durableFile(fs, filled(1000, 1));
      for (let i = 0; i < 5; i++) handle.writeSync(filled(3000, 2 + i), 0, 3000, 1000 + i * 3000);
      disk.powerLoss();
      return disk.read('/d/f');
    };
    for (let seed = 1; seed <= 20; seed++) expect(await outcome(seed)).to.deep.equal(await outcome(seed));
  });
});
