import { expect } from 'chai';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapshotSpool } from '../../src/node/snapshot-spool.js';
import { removeTempSpools, tempSpool } from './support/temp-spool.js';

describe('node/snapshot-spool', () => {
  after(removeTempSpools);

  it('empties what a crash left in its directory when it opens', async () => {
    const first = await tempSpool();
    await writeFile(join(first.dir, '7.part'), 'half a snapshot');
    await mkdir(join(first.dir, 'stray'));
    const reopened = await SnapshotSpool.open({ dir: first.dir });
    expect(await readdir(reopened.dir)).to.deep.equal([]);
  });

  it('writes chunks to a file, reads them back whole once, and deletes the file', async () => {
    const spool = await tempSpool();
    const reception = spool.begin();
    if (reception === undefined) throw new Error('no slot');
    await reception.append(Buffer.from('snap'));
    await reception.append(Buffer.alloc(0));
    await reception.append(Buffer.from('shot'));
    expect(reception.bytes).to.equal(8);
    expect(await readdir(spool.dir)).to.have.length(1);
    expect((await reception.finish()).toString()).to.equal('snapshot');
    expect(await readdir(spool.dir)).to.deep.equal([]);
    expect(spool.active).to.equal(0);
    await reception.abort(); // after finish: nothing more to give back
    expect(spool.active).to.equal(0);
    let error: unknown;
    await reception.append(Buffer.from('more')).catch((caught: unknown) => { error = caught; });
    expect(String(error)).to.match(/already ended/);
  });

  it('gives out at most maxReceiving slots, and each back exactly once', async () => {
    const spool = await tempSpool({ maxReceiving: 2 });
    const a = spool.begin();
    const b = spool.begin();
    expect(spool.begin()).to.equal(undefined);
    await a?.abort();
    await a?.abort();
    expect(spool.active).to.equal(1);
    const c = spool.begin();
    expect(c).to.not.equal(undefined);
    expect(spool.begin()).to.equal(undefined);
    expect((await b?.finish())?.length, 'a stream with no chunk reads back empty').to.equal(0);
    await c?.abort();
    expect(spool.active).to.equal(0);
  });

  it('refuses a chunk past the per-snapshot limit, writing none of it, and gives the slot back', async () => {
    const spool = await tempSpool({ maxSnapshotBytes: 10 });
    const reception = spool.begin();
    await reception?.append(Buffer.alloc(6));
    let error: unknown;
    await reception?.append(Buffer.alloc(5)).catch((caught: unknown) => { error = caught; });
    expect(String(error)).to.include('snapshot stream past 10 bytes');
    expect(spool.active).to.equal(0);
    expect(await readdir(spool.dir)).to.deep.equal([]);
  });
});
