/**
 * The linearizability checker on hand-written histories (issue 7): ones it must accept, including
 * overlapping operations and timed-out writes that did or did not apply, and ones it must reject.
 * Spans are [invoked, completed] in ms.
 */
import { expect } from 'chai';
import { checkHistory, checkKey, findLostWrites, FINAL_READ_CLIENT, isClosed, minimizeViolation, type Operation } from '../../src/chaos/index.js';
import { casConflict, casOk, casUnknown, del, delUnknown, get, ids, put, putUnknown, resetIds } from './history-builders.js';

function verdict(history: Operation[]): string {
  return checkHistory(history).verdict;
}

describe('chaos checker: linearizable histories', () => {
  beforeEach(resetIds);

  it('accepts an empty history and a sequential one', () => {
    expect(verdict([])).to.equal('linearizable');
    expect(verdict([get(0, [0, 1], null), put(0, [2, 3], 'a'), get(0, [4, 5], 'a', 7), casOk(0, [6, 7], 7, 'b', 9), get(1, [8, 9], 'b', 9)])).to.equal(
      'linearizable',
    );
  });

  it('accepts overlapping operations in whichever order explains them', () => {
    // Two puts overlap; a read overlapping both may see either; later reads agree on the last one.
    const history = [
      put(0, [0, 10], 'a'),
      put(1, [2, 12], 'b'),
      get(2, [3, 11], 'a', 5),
      get(2, [13, 14], 'b', 6),
      get(0, [15, 16], 'b', 6),
    ];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts a read that sees a write still in progress, and an older value before it', () => {
    const history = [put(0, [0, 1], 'a'), put(1, [2, 20], 'b'), get(2, [3, 4], 'a', 2), get(3, [5, 6], 'b', 3), get(2, [7, 8], 'b', 3)];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts a timed-out write that applied (a later read sees it)', () => {
    const history = [put(0, [0, 1], 'a'), putUnknown(1, [2, 3], 'b'), get(0, [10, 11], 'b', 4)];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts a timed-out write that applied after its client gave up', () => {
    // The read at 5–6 still sees a; the write lands later (its effect may come any time after invocation).
    const history = [put(0, [0, 1], 'a'), putUnknown(1, [2, 3], 'b'), get(0, [5, 6], 'a', 2), get(0, [10, 11], 'b', 4)];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts a timed-out write that never applied', () => {
    const history = [put(0, [0, 1], 'a'), putUnknown(1, [2, 3], 'b'), get(0, [10, 11], 'a', 2), casUnknown(1, [12, 13], 2, 'c'), get(0, [20, 21], 'a', 2)];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts cas chains and conflicts that name the version found', () => {
    const history = [
      put(0, [0, 1], 'a'),
      get(0, [2, 3], 'a', 5),
      casOk(0, [4, 10], 5, 'b', 8),
      casConflict(1, [5, 11], 5, 'c', 8), // concurrent, ordered after the successful cas
      casConflict(2, [12, 13], 0, 'd', 8),
      get(1, [14, 15], 'b', 8),
    ];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('checks keys independently', () => {
    const history = [put(0, [0, 1], 'a', 'x'), put(1, [0, 1], 'b', 'y'), get(0, [2, 3], 'b', 2, 'y'), get(1, [2, 3], 'a', 1, 'x')];
    const result = checkHistory(history);
    expect(result.verdict).to.equal('linearizable');
    expect(result.keys.map((key) => key.key)).to.deep.equal(['x', 'y']);
    expect(result.operationsChecked).to.equal(4);
  });

  it('ignores failed reads', () => {
    const failed: Operation = { id: 99, client: 3, key: 'k', type: 'get', status: 'failed', error: 'TIMEOUT', invokedAtMs: 0, completedAtMs: 50 };
    const history = [put(0, [0, 1], 'a'), failed, get(0, [2, 3], 'a', 2)];
    expect(checkHistory(history)).to.include({ verdict: 'linearizable', operationsChecked: 2 });
  });
});

describe('chaos checker: deletes', () => {
  beforeEach(resetIds);

  it('accepts a delete that empties the key, a cas from version 0 after it, and an unknown delete either way', () => {
    expect(verdict([put(0, [0, 1], 'a'), del(0, [2, 3], true), get(1, [4, 5], null), casOk(1, [6, 7], 0, 'b', 9)])).to.equal('linearizable');
    expect(verdict([put(0, [0, 1], 'a'), delUnknown(0, [2, 3]), get(1, [4, 5], null)])).to.equal('linearizable');
    expect(verdict([put(0, [0, 1], 'a'), delUnknown(0, [2, 3]), get(1, [4, 5], 'a', 2)])).to.equal('linearizable');
  });

  it('accepts a delete that found the key only an unknown write could have created', () => {
    expect(verdict([putUnknown(1, [0, 10], 'a'), del(0, [20, 30], true), get(0, [40, 50], null)])).to.equal('linearizable');
  });

  it('rejects a read of a deleted value, and a delete whose "existed" contradicts the state', () => {
    expect(verdict([put(0, [0, 1], 'a'), del(0, [2, 3], true), get(1, [4, 5], 'a', 2)])).to.equal('violation');
    expect(verdict([put(0, [0, 1], 'a'), del(0, [2, 3], false)])).to.equal('violation');
    expect(verdict([del(0, [0, 1], true)])).to.equal('violation');
  });
});

describe('chaos checker: violations', () => {
  beforeEach(resetIds);

  it('rejects a stale read after a completed write', () => {
    const history = [put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 2), put(1, [4, 5], 'b'), get(2, [6, 7], 'a', 2)];
    const result = checkKey('k', history);
    expect(result.verdict).to.equal('violation');
    expect(result.operationIds).to.deep.equal([3]);
  });

  it('rejects a lost write: acknowledged, then gone, and reports it as lost', () => {
    const history = [put(0, [0, 1], 'a'), put(1, [5, 6], 'b'), get(FINAL_READ_CLIENT, [20, 21], 'a', 2)];
    expect(verdict(history)).to.equal('violation');
    const { lost, unreadKeys } = findLostWrites(history);
    expect(unreadKeys).to.deep.equal([]);
    expect(lost).to.deep.equal([{ key: 'k', operationId: 1, value: 'b', finalValue: 'a' }]);
  });

  it('reports no lost write when the final value is the last or a concurrent one', () => {
    const history = [put(0, [0, 10], 'a'), put(1, [5, 6], 'b'), putUnknown(2, [7, 8], 'c'), get(FINAL_READ_CLIENT, [20, 21], 'a', 9)];
    expect(findLostWrites(history).lost).to.deep.equal([]);
    const absent = [put(0, [0, 1], 'a'), get(FINAL_READ_CLIENT, [20, 21], null)];
    expect(findLostWrites(absent).lost.map((write) => write.value)).to.deep.equal(['a']);
  });

  it('rejects a read of a value never written', () => {
    const history = [put(0, [0, 1], 'a'), get(1, [2, 3], 'zzz', 4)];
    const result = checkKey('k', history);
    expect(result.verdict).to.equal('violation');
    expect(result.reason).to.match(/no operation on this key wrote/);
  });

  it('rejects a cas that succeeded on a wrong version', () => {
    // The key is at b (v8) when the cas expecting a's version v5 claims success.
    const history = [put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 5), put(1, [4, 5], 'b'), get(1, [6, 7], 'b', 8), casOk(2, [8, 9], 5, 'c', 11)];
    expect(verdict(history)).to.equal('violation');
  });

  it('rejects a cas conflict when the version did match', () => {
    const history = [put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 5), casConflict(1, [4, 5], 5, 'c', 7)];
    expect(verdict(history)).to.equal('violation');
  });

  it('rejects one value seen at two versions (a write applied twice)', () => {
    const history = [put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 5), get(0, [4, 5], 'a', 6)];
    expect(checkKey('k', history).reason).to.match(/two versions/);
  });

  it('rejects a timed-out write read before it was invoked', () => {
    const history = [put(0, [0, 1], 'a'), get(1, [2, 3], 'b', 4), putUnknown(2, [5, 6], 'b')];
    expect(verdict(history)).to.equal('violation');
  });

  it('rejects reads that flip back to an older value', () => {
    const history = [put(0, [0, 1], 'a'), put(1, [0, 1], 'b'), get(2, [2, 3], 'a', 1), get(2, [4, 5], 'b', 2), get(2, [6, 7], 'a', 1)];
    expect(verdict(history)).to.equal('violation');
  });

  it('gives up with unknown when the step budget is too small', () => {
    const history = [put(0, [0, 10], 'a'), put(1, [0, 10], 'b'), put(2, [0, 10], 'c'), get(3, [11, 12], 'a', 1)];
    expect(checkKey('k', history, { maxSteps: 2 }).verdict).to.equal('unknown');
  });
});

describe('chaos checker: minimizing a violation', () => {
  beforeEach(resetIds);

  it('shrinks a stale read to the writes and reads that prove it', () => {
    const history: Operation[] = [put(0, [0, 1], 'a')];
    for (let i = 0; i < 20; i++) history.push(get(i % 3, [2 + i * 2, 3 + i * 2], 'a', 2));
    const write = put(1, [50, 51], 'b');
    const stale = get(2, [52, 53], 'a', 2);
    history.push(write, get(0, [54, 55], 'b', 9), stale);
    expect(verdict(history)).to.equal('violation');
    const minimal = minimizeViolation('k', history);
    expect(isClosed(minimal)).to.equal(true);
    expect(checkKey('k', minimal).verdict).to.equal('violation');
    expect(ids(minimal)).to.deep.equal(ids([history[0] as Operation, write, stale]));
  });

  it('never cuts the write a cas conflict found, which would fake a witness', () => {
    // The conflict found v18, b's version, though no read tied v18 to b: cutting b would leave the
    // conflict unexplainable on its own. Only the stale read is a real violation.
    const a = put(0, [0, 1], 'a');
    const readA = get(1, [2, 3], 'a', 14);
    const conflict = casConflict(2, [4, 100], 13, 'c', 18);
    const b = put(3, [5, 6], 'b');
    const stale = get(1, [20, 21], 'a', 14);
    expect(checkKey('k', [a, readA, conflict, b]).verdict).to.equal('linearizable');
    const minimal = minimizeViolation('k', [a, readA, conflict, b, stale]);
    expect(ids(minimal)).to.deep.equal(ids([a, b, stale]));
    expect(isClosed([a, readA, conflict])).to.equal(false);
  });

  it('returns just the read of a value nobody wrote', () => {
    const bogus = get(1, [9, 10], 'nobody', 3);
    const minimal = minimizeViolation('k', [put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 2), bogus]);
    expect(ids(minimal)).to.deep.equal([bogus.id]);
  });
});
