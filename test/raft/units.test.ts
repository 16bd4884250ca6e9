/**
 * The core's small pure parts: quorum arithmetic (property-tested against a
 * naive reference), inflights, progress invariants, the seeded PRNG, logs.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { EntryType, RaftInvariantError, SeededRandom, assertInvariant, type Entry } from '../../src/raft/index.js';
import { Inflights } from '../../src/raft/inflights.js';
import { Progress } from '../../src/raft/progress.js';
import { VoteResult, committedIndex, quorumSize, voteResult } from '../../src/raft/quorum.js';
import { UnstableLog } from '../../src/raft/unstable-log.js';
import { ProgressState } from '../../src/raft/types.js';
import { decodeRoundKey, encodeRoundKey, ReadOnly } from '../../src/raft/read-only.js';

const seed = Number(process.env['SEED'] ?? 20240601);
const entry = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(0) });

describe('raft quorum (Raft §5.3: majority)', () => {
  it('committedIndex is the largest index stored on a majority (vs a naive reference)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 7 }), (matches) => {
        const naive = Math.max(
          ...[0, ...matches].filter((candidate) => matches.filter((m) => m >= candidate).length >= Math.floor(matches.length / 2) + 1),
        );
        return committedIndex([...matches]) === naive;
      }),
      { seed },
    );
    expect(committedIndex([])).to.equal(0);
  });

  it('voteResult: won with a majority of grants, lost when a majority is out of reach (vs a naive reference)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom<boolean | undefined>(true, false, undefined), { minLength: 1, maxLength: 7 }), (votes) => {
        const voters = votes.map((_, i) => i + 1);
        const map = new Map<number, boolean>();
        votes.forEach((vote, i) => vote !== undefined && map.set(i + 1, vote));
        const granted = votes.filter((v) => v === true).length;
        const missing = votes.filter((v) => v === undefined).length;
        const q = quorumSize(voters.length);
        const expected = granted >= q ? VoteResult.Won : granted + missing >= q ? VoteResult.Pending : VoteResult.Lost;
        return voteResult(voters, map) === expected;
      }),
      { seed },
    );
    expect(voteResult([], new Map())).to.equal(VoteResult.Won);
  });
});

describe('raft flow control', () => {
  it('inflights is a bounded ring that frees acknowledged appends', () => {
    const inflights = new Inflights(3);
    inflights.add(1);
    inflights.add(2);
    inflights.add(3);
    expect(inflights.full()).to.equal(true);
    expect(() => inflights.add(4)).to.throw(RaftInvariantError);
    inflights.freeLE(2);
    expect(inflights.count).to.equal(1);
    inflights.add(4);
    inflights.add(5);
    inflights.freeLE(4);
    expect(inflights.count).to.equal(1);
    inflights.reset();
    expect(inflights.count).to.equal(0);
    expect(() => new Inflights(0)).to.throw(RaftInvariantError);
  });

  it('progress keeps match < next and ignores stale rejections', () => {
    const progress = new Progress(5, 6, 4, false);
    progress.becomeReplicate();
    progress.sentEntries(3, 8);
    expect(progress.next).to.equal(9);
    expect(progress.maybeDecreaseTo(4, 0), 'stale: below match').to.equal(false);
    expect(progress.maybeDecreaseTo(7, 6)).to.equal(true);
    expect(progress.next).to.equal(6);
    progress.becomeProbe();
    expect(progress.maybeDecreaseTo(9, 0), 'stale: not the probe we sent').to.equal(false);
    progress.becomeSnapshot(20);
    expect(progress.isPaused()).to.equal(true);
    progress.becomeProbe();
    expect(progress.next).to.equal(21);
    expect(progress.state).to.equal(ProgressState.Probe);
    expect(() => new Progress(5, 5, 4, false)).to.throw(RaftInvariantError).with.property('code', 'INVARIANT');
  });

  it('assertInvariant throws RaftInvariantError with fields', () => {
    expect(() => assertInvariant(false, 'broken', { index: 3 })).to.throw(RaftInvariantError).with.deep.property('fields', { index: 3 });
  });
});

describe('raft unstable log', () => {
  it('stabilizes without shifting, truncates conflicting suffixes, and restores snapshots', () => {
    const log = new UnstableLog(1);
    log.truncateAndAppend([entry(1, 1), entry(2, 1), entry(3, 1)]);
    log.stableTo(1, 1);
    expect(log.offset).to.equal(2);
    expect(log.maybeTerm(1)).to.equal(undefined);
    log.stableTo(2, 9);
    expect(log.offset, 'wrong term: not stabilized').to.equal(2);
    log.truncateAndAppend([entry(3, 2), entry(4, 2)]);
    expect(log.allEntries().map((e) => [e.index, e.term])).to.deep.equal([[2, 1], [3, 2], [4, 2]]);
    log.truncateAndAppend([entry(1, 3)]);
    expect(log.offset).to.equal(1);
    expect(log.maybeLastIndex()).to.equal(1);
    expect(() => log.truncateAndAppend([entry(5, 3)])).to.throw(RaftInvariantError);
    expect(() => log.slice(0, 2)).to.throw(RaftInvariantError);
    log.restore({ metadata: { index: 10, term: 4, confState: { voters: [1], learners: [] } }, data: new Uint8Array(0) });
    expect(log.maybeFirstIndex()).to.equal(11);
    expect(log.maybeLastIndex()).to.equal(10);
    expect(log.maybeTerm(10)).to.equal(4);
    log.stableSnapshotTo(10);
    expect(log.snapshot).to.equal(undefined);
  });

  it('compacts its buffer after many stabilized entries', () => {
    const log = new UnstableLog(1);
    for (let i = 1; i <= 3000; i++) log.push(entry(i, 1));
    log.stableTo(2000, 1);
    expect(log.length).to.equal(1000);
    expect(log.entryAt(2001)?.index).to.equal(2001);
    log.stableTo(3000, 1);
    expect(log.length).to.equal(0);
  });
});

describe('raft read-only bookkeeping', () => {
  it('round keys survive the heartbeat context codec; advancing a round completes the earlier ones', () => {
    for (const key of [1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) expect(decodeRoundKey(encodeRoundKey(key))).to.equal(key);
    expect(decodeRoundKey(new Uint8Array(3))).to.equal(undefined);
    const readOnly = new ReadOnly();
    readOnly.start(1, 5, [], 1);
    readOnly.start(2, 6, [], 1);
    expect(readOnly.recordAck(2, 9)).to.equal(undefined);
    expect(readOnly.advance(9)).to.deep.equal([]);
    expect(readOnly.advance(2).map((round) => round.key)).to.deep.equal([1, 2]);
    expect(readOnly.pendingRounds).to.equal(0);
  });
});

describe('SeededRandom', () => {
  it('is deterministic per seed and stays in range', () => {
    const a = new SeededRandom(7);
    const b = new SeededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const value = a.nextInt(10);
      expect(value).to.equal(b.nextInt(10));
      expect(value).to.be.within(0, 9);
    }
    expect(new SeededRandom(1).nextInt(0)).to.equal(0);
  });
});
