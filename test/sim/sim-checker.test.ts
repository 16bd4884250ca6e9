/**
 * The simulator checker's log matching across lost processes: an entry only a lost process
 * held, and its disk did not keep, may be written differently; one any log still holds may not.
 */
import { expect } from 'chai';
import { type Entry, EntryType } from '../../src/raft/index.js';
import { SimChecker, SimViolation } from './sim-checker.js';

const SHARD = 0;

/** A normal entry at `index` of `term` whose data is `text`. */
function entry(index: number, term: number, text: string): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(text) };
}

describe('SimChecker log matching', () => {
  it('refuses a second entry at an index and term while the first is held', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /index 72 term 3.*n1 held one/);
    expect(() => checker.onAppend(SHARD, 'n2', [entry(72, 3, 'a')], 2)).to.throw(SimViolation, /previous term 2/);
  });

  it('forgets an entry whose only holder lost its process: a restarted one-voter leader may write that term again', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(71, 3, ''), entry(72, 3, 'a')], 2);
    checker.onProcessLost('n1');
    // Its WAL kept entry 71 but not 72 (the torn tail): it reports what it recovered, then writes anew.
    checker.onAppend(SHARD, 'n1', [entry(71, 3, '')], 2);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).not.to.throw();
    // The new entry is held now: writing yet another one is refused.
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'c')], 3)).to.throw(SimViolation);
  });

  it('keeps an entry another node holds when its writer loses its process', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    checker.onAppend(SHARD, 'n2', [entry(72, 3, 'a')], 3);
    checker.onProcessLost('n1');
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /n2 held one/);
  });

  it('holds a lost process to what its WAL recovered', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    checker.onProcessLost('n1');
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    expect(() => checker.onAppend(SHARD, 'n2', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /n1 held one/);
  });

  it('forgets only the lost node: other shards and nodes keep their records', () => {
    const checker = new SimChecker();
    checker.onAppend(1, 'n2', [entry(5, 1, 'x')], 1);
    checker.onAppend(SHARD, 'n1', [entry(5, 1, 'y')], 1);
    checker.onProcessLost('n1');
    expect(() => checker.onAppend(1, 'n3', [entry(5, 1, 'z')], 1)).to.throw(SimViolation, /shard 1/);
    expect(() => checker.onAppend(SHARD, 'n3', [entry(5, 1, 'z')], 1)).not.to.throw();
  });
});
