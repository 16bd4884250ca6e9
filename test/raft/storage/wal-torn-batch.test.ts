/**
 * Scripted power cuts that tear the last batch of the WAL, each of which made
 * a node unrestartable before its fix.
 */
import { expect } from 'chai';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawNode, SeededRandom, type RaftLogger } from '../../../src/raft/index.js';
import { Wal, WalCorruptionError } from '../../../src/raft/storage/index.js';
import { batchHeaderAt, RecordEncoder } from '../../../src/raft/storage/wal-codec.js';
import { EntryType, type Entry } from '../../../src/raft/types.js';
import { PAGE_BYTES, SimDisk } from '../../sim/sim-disk.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

/** A logger that keeps its warnings. */
function recordingLogger(): RaftLogger & { warnings: { event: string; fields: Record<string, unknown> | undefined }[] } {
  const warnings: { event: string; fields: Record<string, unknown> | undefined }[] = [];
  return { warnings, debug() {}, info() {}, warn: (event, fields) => warnings.push({ event, fields }), error() {} };
}

const SEGMENT = '0000000000000001.log';
const SIM_SEGMENT = '/node/wal/0000000000000001.log';

/** Entries `[from, to]` of `term` whose data fill most of a page each, so a batch of them spans pages. */
function pageEntries(from: number, to: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = from; index <= to; index++) entries.push({ index, term, type: EntryType.Normal, data: new Uint8Array(1000).fill(index) });
  return entries;
}

/** A power loss that zeroes the first dirty page of the segment and keeps every other one. */
function zeroFirstDirtyPage(disk: SimDisk): void {
  disk.powerLoss({
    file: (path, { dirtyPages }) => (path === SIM_SEGMENT ? { kind: 'pages', fate: (page) => (page === dirtyPages[0] ? 'zeroed' : 'kept') } : undefined),
  });
}

describe('raft/storage/wal torn batches', () => {
  let dir: string | undefined;
  const opened: Wal[] = [];

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const wal of opened.splice(0)) await wal.close().catch(() => undefined);
    await removeTempDir(dir);
  });

  it('restarts a group whose snapshot marker survived a tear but whose hard state did not (bug 3)', async () => {
    // A segment without batch headers, as the version before them wrote it. Batch 1 (synced):
    // group 1 with entries 1..10, commit 5. Batch 2, a leader's turn: snapshot marker at 8,
    // entries 11..12, hard state with commit 12 — torn by the power cut just before that hard state.
    const conf = { voters: [1], learners: [] };
    const encoder = new RecordEncoder();
    encoder.snapshot(1, { index: 0, term: 0, confState: conf, replacesLog: false, dataLength: 0, dataCrc: 0 });
    encoder.entries(1, makeEntries(1, 10, 1));
    encoder.hardState(1, { term: 1, vote: 1, commit: 5 });
    encoder.snapshot(1, { index: 8, term: 1, confState: conf, replacesLog: false, dataLength: 0, dataCrc: 0 });
    encoder.entries(1, makeEntries(11, 12, 1));
    await mkdir(join(dir as string, 'wal'));
    await writeFile(join(dir as string, 'wal', SEGMENT), encoder.bytes());

    const wal = await Wal.open(dir as string);
    opened.push(wal);
    const storage = wal.openGroup(1);
    // As the node does at start-up; threw "hard state commit out of the log range" before the fix.
    const node = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    expect(node.status().commit).to.equal(8);
    // The snapshot covers only committed entries: commit is at least its index.
    expect(storage.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 8 });
    expect(storage.firstIndex()).to.equal(9);
    expect(allEntries(storage)).to.deep.equal(makeEntries(9, 12, 1));
  });

  it('cuts an unsynced batch whose first page was zeroed while its later pages reached the disk (bug 4)', async () => {
    const disk = new SimDisk({ random: new SeededRandom(4) });
    const wal = await Wal.open('/node', undefined, { fs: disk.process() });
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 5, 1));
    storage.setHardState({ term: 1, vote: 1, commit: 5 });
    await wal.sync();
    // One batch of 40 records over several pages, written but not yet synced when the power goes.
    for (let index = 6; index <= 45; index++) {
      storage.append([{ index, term: 1, type: 0, data: new Uint8Array(300).fill(index) }]);
    }
    void wal.sync();
    const segment = '/node/wal/0000000000000001.log';
    const state = disk.fileState(segment);
    expect(state !== undefined && state.length - state.durableLength).to.be.greaterThan(3 * PAGE_BYTES);
    // The kernel wrote the batch's later pages back but not its first (which reads as zeros).
    disk.powerLoss({
      file: (path, { durableLength }) =>
        path === segment ? { kind: 'pages', fate: (page) => (page === Math.floor(durableLength / PAGE_BYTES) ? 'zeroed' : 'kept') } : undefined,
    });

    const logger = recordingLogger();
    const recovered = await Wal.open('/node', logger, { fs: disk.process() });
    const again = recovered.openGroup(1);
    expect(allEntries(again)).to.deep.equal(makeEntries(1, 5, 1));
    expect(again.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 5 });
    expect(logger.warnings.map(({ event }) => event)).to.deep.equal(['wal torn tail cut off']);
    // And it carries on: a new batch after the cut survives the next power loss.
    again.append(makeEntries(6, 6, 2));
    await recovered.sync();
    disk.powerLoss();
    const last = (await Wal.open('/node', undefined, { fs: disk.process() })).openGroup(1);
    expect(allEntries(last)).to.deep.equal([...makeEntries(1, 5, 1), ...makeEntries(6, 6, 2)]);
  });

  it('is not fooled by a batch header planted in client data without the segment nonce', async () => {
    const disk = new SimDisk({ random: new SeededRandom(5) });
    const open = async (): Promise<Wal> => Wal.open('/node', undefined, { fs: disk.process(), random: new SeededRandom(6) });
    const wal = await open();
    const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 1, 1));
    await wal.sync();
    // A client's value that is a well-formed batch header, guessing the nonce, claiming batch 99.
    const forged = new RecordEncoder(64, { batchHeader: true }).framedBytes(123456789, 99);
    const nonce = batchHeaderAt(disk.read(SIM_SEGMENT) as Uint8Array, 0, undefined)?.nonce as number;
    const withNonce = new RecordEncoder(64, { batchHeader: true }).framedBytes(nonce, 99);
    const planted = (data: Uint8Array): Entry[] => [...pageEntries(2, 6, 1), { index: 7, term: 1, type: EntryType.Normal, data }];

    // The tear zeroes the batch's first page; the planted value survives in a later one: still a torn tail.
    storage.append(planted(forged));
    void wal.sync();
    zeroFirstDirtyPage(disk);
    const recovered = await open();
    expect(allEntries(recovered.openGroup(1))).to.deep.equal(makeEntries(1, 1, 1));
    await recovered.close();

    // What the nonce protects: a value carrying the segment's own nonce would be believed.
    const again = await open();
    again.openGroup(1).append(planted(withNonce));
    void again.sync();
    zeroFirstDirtyPage(disk);
    const refused: unknown = await open().then(() => undefined, (error: unknown) => error);
    expect(refused).to.be.instanceOf(WalCorruptionError).with.property('file', SIM_SEGMENT);
  });

  it('makes a batch a killed process left unsynced durable before writing the next one', async () => {
    const disk = new SimDisk({ random: new SeededRandom(7) });
    const first = await Wal.open('/node', undefined, { fs: disk.process() });
    const storage = first.openGroup(1, { confState: { voters: [1], learners: [] } });
    storage.append(makeEntries(1, 1, 1));
    await first.sync();
    storage.append(pageEntries(2, 6, 1));
    void first.sync();
    disk.kill(); // batch 2 stays in the page cache, unsynced

    const second = await Wal.open('/node', undefined, { fs: disk.process() });
    const resumed = second.openGroup(1);
    expect(resumed.lastIndex()).to.equal(6);
    resumed.append(pageEntries(7, 11, 1));
    void second.sync();
    // Batch 3's header reaches the disk, its first page does not. Had batch 2 still been unsynced, its
    // first page would be the one zeroed, followed by batch 3's header: refused as corruption.
    zeroFirstDirtyPage(disk);
    const third = await Wal.open('/node', undefined, { fs: disk.process() });
    expect(allEntries(third.openGroup(1))).to.deep.equal([...makeEntries(1, 1, 1), ...pageEntries(2, 6, 1)]);
  });
});
