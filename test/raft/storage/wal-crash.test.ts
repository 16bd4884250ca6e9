import { expect } from 'chai';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c, Wal, WalCorruptionError, type DurableStorage } from '../../../src/raft/storage/index.js';
import { batchHeaderAt, RecordEncoder } from '../../../src/raft/storage/wal-codec.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

const SEGMENT = '0000000000000001.log';

/** Expects `promise` to reject with a WalCorruptionError of `code` at `file` + `offset`. */
async function expectCorruption(promise: Promise<unknown>, code: string, file: string, offset: number): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).to.be.instanceOf(WalCorruptionError);
  const corruption = error as WalCorruptionError;
  expect({ code: corruption.code, file: corruption.file, offset: corruption.offset }).to.deep.equal({ code, file, offset });
  expect(corruption.message).to.include(file).and.include(String(offset));
}

describe('raft/storage/wal crash recovery', () => {
  let dir: string | undefined;
  const opened: Wal[] = [];
  const openWal = async (at: string): Promise<Wal> => {
    const wal = await Wal.open(at);
    opened.push(wal);
    return wal;
  };

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of opened.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  /**
   * Writes three synced batches for two groups, then `last` as the final record.
   * Returns the segment's bytes and where the final record starts.
   */
  async function writeLog(last: (storage: DurableStorage) => void): Promise<{ bytes: Buffer; lastStart: number }> {
    const wal = await openWal(join(dir as string, 'source'));
    const one = wal.openGroup(1, { confState: { voters: [1, 2, 3], learners: [] } });
    const two = wal.openGroup(2, { confState: { voters: [1], learners: [] } });
    one.append(makeEntries(1, 3, 1));
    two.append(makeEntries(1, 2, 1));
    await wal.sync();
    one.setHardState({ term: 1, vote: 1, commit: 3 });
    two.append(makeEntries(3, 4, 1));
    await wal.sync();
    const path = join(dir as string, 'source', 'wal', SEGMENT);
    const lastStart = (await stat(path)).size;
    last(one);
    await wal.sync();
    return { bytes: await readFile(path), lastStart };
  }

  /** What recovery must yield when the final record is lost. */
  function expectStateBeforeLast(wal: Wal): void {
    expect(wal.groupIds()).to.deep.equal([1, 2]);
    const one = wal.openGroup(1);
    expect(allEntries(one)).to.deep.equal(makeEntries(1, 3, 1));
    expect(one.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 3 });
    expect(allEntries(wal.openGroup(2))).to.deep.equal(makeEntries(1, 4, 1));
  }

  const lastRecords: [string, (storage: DurableStorage) => void][] = [
    ['entries', (storage) => storage.append(makeEntries(4, 6, 2))],
    ['hard state', (storage) => storage.setHardState({ term: 2, vote: 3, commit: 3 })],
    ['snapshot marker', (storage) => storage.createSnapshot(2, { voters: [1, 2, 3], learners: [] }, new Uint8Array(0))],
  ];
  for (const [kind, last] of lastRecords) {
    it(`cuts a torn ${kind} record at every byte offset and keeps appending`, async () => {
      const { bytes, lastStart } = await writeLog(last);
      expect(bytes.length).to.be.greaterThan(lastStart);
      for (let length = lastStart; length < bytes.length; length++) {
        const crashDir = join(dir as string, `crash-${length}`);
        await mkdir(join(crashDir, 'wal'), { recursive: true });
        const path = join(crashDir, 'wal', SEGMENT);
        await writeFile(path, bytes.subarray(0, length));

        const wal = await openWal(crashDir);
        expect((await stat(path)).size, `file cut at ${lastStart} (torn at ${length})`).to.equal(lastStart);
        expectStateBeforeLast(wal);
        wal.openGroup(3).append(makeEntries(1, 1, 9));
        await wal.sync();
        await wal.close();

        const again = await openWal(crashDir);
        expect(allEntries(again.openGroup(3))).to.deep.equal(makeEntries(1, 1, 9));
        expect(allEntries(again.openGroup(1))).to.deep.equal(makeEntries(1, 3, 1));
        await again.close();
        await rm(crashDir, { recursive: true });
      }
    });
  }

  it('cuts a complete last record whose checksum is wrong (a torn sector), and zeros after the tail', async () => {
    const { bytes, lastStart } = await writeLog((storage) => storage.append(makeEntries(4, 6, 2)));
    const torn = Buffer.from(bytes);
    torn[bytes.length - 2] = (torn[bytes.length - 2] as number) ^ 0xff;
    const crashDir = join(dir as string, 'torn');
    await mkdir(join(crashDir, 'wal'), { recursive: true });
    await writeFile(join(crashDir, 'wal', SEGMENT), Buffer.concat([torn, Buffer.alloc(4096)]));
    expectStateBeforeLast(await openWal(crashDir));
    expect((await stat(join(crashDir, 'wal', SEGMENT))).size).to.equal(lastStart);
  });

  it('refuses a corrupt record in the middle, naming the file and offset', async () => {
    const { bytes, lastStart } = await writeLog((storage) => storage.append(makeEntries(4, 6, 2)));
    const crashDir = join(dir as string, 'corrupt');
    await mkdir(join(crashDir, 'wal'), { recursive: true });
    const path = join(crashDir, 'wal', SEGMENT);

    const flipped = Buffer.from(bytes);
    const target = lastStart - 3; // inside the payload of the record before the last
    flipped[target] = (flipped[target] as number) ^ 0x01;
    await writeFile(path, flipped);
    const damagedStart = await recordStartBefore(bytes, target);
    await expectCorruption(Wal.open(crashDir), 'CRC_MISMATCH', path, damagedStart);

    const badLength = Buffer.from(bytes);
    badLength.writeUInt32LE(0x7fffffff, damagedStart);
    await writeFile(path, badLength);
    await expectCorruption(Wal.open(crashDir), 'BAD_LENGTH', path, damagedStart);
    // Nothing was cut: the damaged file is left as it was for an operator.
    expect((await stat(path)).size).to.equal(bytes.length);
  });

  it('refuses, even at the tail, a checksummed record of an unknown type (never a torn write)', async () => {
    const { bytes } = await writeLog((storage) => storage.append(makeEntries(4, 6, 2)));
    const payload = Buffer.from([99, 1, 0, 0, 0]);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(crc32c(payload), 4);
    const crashDir = join(dir as string, 'future');
    await mkdir(join(crashDir, 'wal'), { recursive: true });
    const path = join(crashDir, 'wal', SEGMENT);
    await writeFile(path, Buffer.concat([bytes, header, payload]));
    await expectCorruption(Wal.open(crashDir), 'BAD_RECORD', path, bytes.length);
  });

  it('refuses damage at the end of a segment that is not the last', async () => {
    const source = join(dir as string, 'rolling');
    const wal = await Wal.open(source, undefined, { segmentBytes: 200 });
    opened.push(wal);
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    for (let i = 1; i <= 6; i++) {
      storage.append(makeEntries(i, i, 1));
      await wal.sync();
    }
    expect(wal.segments().length).to.be.greaterThan(1);
    await wal.close();
    const first = join(source, 'wal', SEGMENT);
    const bytes = await readFile(first);
    await writeFile(first, bytes.subarray(0, bytes.length - 1));
    const lastStart = await recordStartBefore(bytes, bytes.length - 1);
    await expectCorruption(Wal.open(source), 'BAD_LENGTH', first, lastStart);
  });

  it('refuses a snapshot marker whose data file is missing or damaged', async () => {
    const source = join(dir as string, 'snap');
    const wal = await openWal(source);
    const storage = wal.openGroup(3, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 2, 1));
    storage.createSnapshot(2, { voters: [1], learners: [] }, Uint8Array.of(1, 2, 3));
    await wal.syncAll();
    const file = join(source, 'snap', '3-1-2.snap');
    await writeFile(file, Uint8Array.of(1, 2, 4));
    await expectCorruption(Wal.open(source), 'SNAPSHOT_CORRUPT', file, 0);
    await rm(file);
    await expectCorruption(Wal.open(source), 'SNAPSHOT_MISSING', file, 0);
  });
});

describe('raft/storage/wal segments written before batch headers', () => {
  let dir: string | undefined;
  const opened: Wal[] = [];
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of opened.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  /** A segment as the earlier version wrote it: records only. Returns its path and bytes. */
  async function writeUnframed(tail: Uint8Array): Promise<{ path: string; bytes: Buffer }> {
    const encoder = new RecordEncoder();
    encoder.snapshot(1, { index: 0, term: 0, confState: { voters: [1], learners: [] }, replacesLog: false, dataLength: 0, dataCrc: 0 });
    encoder.entries(1, makeEntries(1, 3, 1));
    encoder.hardState(1, { term: 1, vote: 1, commit: 3 });
    await mkdir(join(dir as string, 'wal'), { recursive: true });
    const path = join(dir as string, 'wal', SEGMENT);
    const bytes = Buffer.from(encoder.bytes());
    await writeFile(path, Buffer.concat([bytes, tail]));
    return { path, bytes };
  }

  it('reads them with the earlier rule, cuts a torn tail, and carries on in a new segment with headers', async () => {
    const torn = new RecordEncoder();
    torn.entries(1, makeEntries(4, 6, 1));
    const { path, bytes } = await writeUnframed(torn.bytes().subarray(0, 20));
    const wal = await Wal.open(dir as string);
    opened.push(wal);
    expect((await stat(path)).size).to.equal(bytes.length);
    expect(wal.segments()).to.deep.equal([1, 2]);
    const storage = wal.openGroup(1);
    expect(allEntries(storage)).to.deep.equal(makeEntries(1, 3, 1));
    storage.append(makeEntries(4, 4, 2));
    await wal.sync();
    await wal.close();
    const second = await readFile(join(dir as string, 'wal', '0000000000000002.log'));
    expect(batchHeaderAt(second, 0, undefined)).to.not.equal(undefined);

    const again = await Wal.open(dir as string);
    opened.push(again);
    expect(allEntries(again.openGroup(1))).to.deep.equal([...makeEntries(1, 3, 1), ...makeEntries(4, 4, 2)]);
    expect(again.segments()).to.deep.equal([1, 2]);
  });

  it('refuses damage followed by a well-formed record, as before', async () => {
    const later = new RecordEncoder();
    later.hardState(1, { term: 2, vote: 1, commit: 3 });
    const { path, bytes } = await writeUnframed(Buffer.concat([Buffer.alloc(16), later.bytes()]));
    await expectCorruption(Wal.open(dir as string), 'BAD_LENGTH', path, bytes.length);
  });
});

/** The start offset of the record containing byte `position`, found by walking the length prefixes. */
async function recordStartBefore(bytes: Buffer, position: number): Promise<number> {
  let offset = 0;
  for (;;) {
    const end = offset + 8 + bytes.readUInt32LE(offset);
    if (position < end) return Promise.resolve(offset);
    offset = end;
  }
}
