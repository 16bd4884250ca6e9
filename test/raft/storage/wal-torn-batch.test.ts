/**
 * Scripted power cuts that tear the last batch of the WAL, each of which made
 * a node unrestartable before its fix.
 */
import { expect } from 'chai';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawNode, SeededRandom } from '../../../src/raft/index.js';
import { Wal } from '../../../src/raft/storage/index.js';
import { RecordEncoder } from '../../../src/raft/storage/wal-codec.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

const SEGMENT = '0000000000000001.log';

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
});
