/**
 * The checker on hand-written histories with transactions (issue 18): a transaction is one
 * operation on the keys it names, so those keys are checked together and a history that shows one
 * of its writes without the other, or an outcome the state cannot give, is rejected; timed-out
 * transactions may have run or not. Spans are [invoked, completed] in ms.
 */
import { expect } from 'chai';
import {
  checkHistory,
  checkKey,
  closeUnder,
  findLostWrites,
  FINAL_READ_CLIENT,
  isClosed,
  minimizeViolation,
  partitionByObject,
  renderViolation,
  type Operation,
} from '../../src/chaos/index.js';
import { casOk, get, ids, put, putUnknown, resetIds, result, step, txn, txnUnknown } from './history-builders.js';

const A = '{g}a';
const B = '{g}b';
const C = '{g}c';
const GROUP = `${A}+${B}`;

function verdict(history: Operation[]): string {
  return checkHistory(history).verdict;
}

/** A transfer: if both versions are as given, put both values; else read both. */
function transfer(versionA: number, versionB: number, valueA: string, valueB: string): Parameters<typeof txn>[2] {
  return {
    compare: [{ key: A, version: versionA }, { key: B, version: versionB }],
    success: [step.put(A, valueA), step.put(B, valueB)],
    failure: [step.get(A), step.get(B)],
  };
}

/** Reads both keys in one transaction. */
const readBoth = { success: [step.get(A), step.get(B)] };

/** a1 and b1 written by one transaction at v5, read back; the start of most histories below. */
function start(): Operation[] {
  return [
    txn(0, [0, 1], readBoth, true, [result.get(A, null), result.get(B, null)]),
    txn(0, [2, 3], transfer(0, 0, 'a1', 'b1'), true, [result.put(A, 5), result.put(B, 5)]),
  ];
}

describe('chaos checker: transactions', () => {
  beforeEach(resetIds);

  it('checks the keys a transaction names as one object, and untouched keys on their own', () => {
    const history = [...start(), put(1, [0, 1], 'x', 'plain'), get(1, [2, 3], 'x', 4, 'plain'), put(2, [4, 5], 'c1', C)];
    const objects = partitionByObject(history);
    expect([...objects.keys()].sort()).to.deep.equal([GROUP, C, 'plain'].sort());
    expect(objects.get(GROUP)?.keys).to.deep.equal([A, B]);
    const check = checkHistory(history);
    expect(check.verdict).to.equal('linearizable');
    expect(check.operationsChecked).to.equal(5);
    expect(check.keys.find((key) => key.key === GROUP)).to.include({ operations: 2 }).and.have.property('keys').deep.equal([A, B]);
  });

  it('accepts transfers, a failed one that reads what it found, reads of both keys, and single-key operations between', () => {
    const history = [
      ...start(),
      get(1, [4, 5], 'a1', 5, A),
      txn(1, [6, 8], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]),
      txn(2, [7, 10], transfer(5, 5, 'a3', 'b3'), false, [result.get(A, 'a2', 9), result.get(B, 'b2', 9)]), // lost the race
      casOk(2, [11, 12], 9, 'b4', 12, B),
      txn(0, [13, 14], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b4', 12)]),
    ];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('accepts a read concurrent with a transaction that sees all of it or none of it', () => {
    const writer = txn(1, [4, 20], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]);
    expect(verdict([...start(), writer, txn(2, [5, 6], readBoth, true, [result.get(A, 'a1', 5), result.get(B, 'b1', 5)])])).to.equal('linearizable');
    resetIds();
    const again = txn(1, [4, 20], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]);
    expect(verdict([...start(), again, txn(2, [5, 6], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b2', 9)])])).to.equal('linearizable');
  });

  it('accepts value and exists compares, a get of the branch\'s own put, and a delete it read first', () => {
    const history = [
      ...start(),
      txn(1, [4, 5], { compare: [{ key: A, value: 'a1' }], success: [step.put(B, 'b2'), step.get(B)], failure: [step.get(A)] }, true, [
        result.put(B, 8),
        result.get(B, 'b2', 8),
      ]),
      txn(1, [6, 7], { compare: [{ key: A, version: 5 }], success: [step.get(B), step.delete(B), step.put(A, 'a2')] }, true, [
        result.get(B, 'b2', 8),
        result.delete(B, true),
        result.put(A, 11),
      ]),
      txn(2, [8, 9], { compare: [{ key: B, exists: false }], success: [step.put(B, 'b3')], failure: [step.get(B)] }, true, [result.put(B, 14)]),
      get(0, [10, 11], 'b3', 14, B),
    ];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('rejects a read that sees one write of a transaction without the other', () => {
    // The transaction completed; a later read of both keys sees its a with the old b.
    const torn = [
      ...start(),
      txn(1, [4, 5], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]),
      txn(2, [6, 7], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b1', 5)]),
    ];
    const check = checkKey(GROUP, torn);
    expect(check.verdict).to.equal('violation');
    expect(check.operationIds).to.deep.equal([3]);
    // Concurrency does not excuse it: a read during the transaction sees all of it or none.
    resetIds();
    const during = [
      ...start(),
      txn(1, [4, 20], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]),
      txn(2, [6, 7], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b1', 5)]),
    ];
    expect(verdict(during)).to.equal('violation');
  });

  it('rejects single reads that see a transaction\'s a and then the b from before it', () => {
    const history = [
      ...start(),
      txn(1, [4, 30], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]),
      get(2, [5, 6], 'a2', 9, A),
      get(2, [7, 8], 'b1', 5, B),
    ];
    expect(verdict(history)).to.equal('violation');
  });

  it('rejects a transaction whose outcome contradicts the state', () => {
    // Versions matched, yet it reports failure (and reads the very versions it compared).
    const falseFailure = [...start(), txn(1, [4, 5], transfer(5, 5, 'a2', 'b2'), false, [result.get(A, 'a1', 5), result.get(B, 'b1', 5)])];
    expect(verdict(falseFailure)).to.equal('violation');
    resetIds();
    // a moved on to a2 (v9), yet a transfer expecting a1's v5 reports success.
    const falseSuccess = [
      ...start(),
      put(1, [4, 5], 'a2', A),
      get(1, [6, 7], 'a2', 9, A),
      txn(2, [8, 9], transfer(5, 5, 'a3', 'b3'), true, [result.put(A, 12), result.put(B, 12)]),
    ];
    expect(verdict(falseSuccess)).to.equal('violation');
    resetIds();
    const wrongValue = [...start(), txn(1, [4, 5], { compare: [{ key: B, value: 'b0' }], success: [step.put(A, 'a2')] }, true, [result.put(A, 8)])];
    expect(verdict(wrongValue)).to.equal('violation');
    resetIds();
    const wrongExists = [...start(), txn(1, [4, 5], { compare: [{ key: B, exists: false }], success: [step.put(A, 'a2')] }, true, [result.put(A, 8)])];
    expect(verdict(wrongExists)).to.equal('violation');
    resetIds();
    const wrongExisted = [...start(), txn(1, [4, 5], { success: [step.delete(B)] }, true, [result.delete(B, false)])];
    expect(verdict(wrongExisted)).to.equal('violation');
  });

  it('rejects a transaction get of a value no operation wrote on that key', () => {
    // b1 was written, but on the other key.
    const history = [...start(), txn(1, [4, 5], readBoth, true, [result.get(A, 'b1', 7), result.get(B, 'b1', 5)])];
    const check = checkKey(GROUP, history);
    expect(check.verdict).to.equal('violation');
    expect(check.reason).to.include(`no operation on key ${A} wrote`);
  });

  it('accepts a timed-out transaction that applied (even after its client gave up) or never did', () => {
    const applied = [
      ...start(),
      txnUnknown(1, [4, 5], transfer(5, 5, 'a2', 'b2')),
      txn(2, [6, 7], readBoth, true, [result.get(A, 'a1', 5), result.get(B, 'b1', 5)]),
      txn(2, [10, 11], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b2', 9)]),
    ];
    expect(verdict(applied)).to.equal('linearizable');
    resetIds();
    const never = [...start(), txnUnknown(1, [4, 5], transfer(5, 5, 'a2', 'b2')), get(2, [10, 11], 'b1', 5, B), get(2, [12, 13], 'a1', 5, A)];
    expect(verdict(never)).to.equal('linearizable');
  });

  it('rejects a timed-out transaction seen in part', () => {
    const history = [
      ...start(),
      txnUnknown(1, [4, 5], transfer(5, 5, 'a2', 'b2')),
      txn(2, [10, 11], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b1', 5)]),
    ];
    expect(verdict(history)).to.equal('violation');
  });

  it('lets a timed-out transaction run the branch its compares pick, and either when they name an untied version', () => {
    const conditional = (version: number): Parameters<typeof txn>[2] => ({
      compare: [{ key: A, version }],
      success: [step.put(B, 'bS')],
      failure: [step.put(B, 'bF')],
    });
    // v5 is a1's, which a holds: only the success branch can have run.
    expect(verdict([...start(), txnUnknown(1, [4, 5], conditional(5)), get(2, [6, 7], 'bS', 9, B)])).to.equal('linearizable');
    resetIds();
    expect(verdict([...start(), txnUnknown(1, [4, 5], conditional(5)), get(2, [6, 7], 'bF', 9, B)])).to.equal('violation');
    // v77 was never tied to a value: a's version may or may not be it, so either branch explains the read.
    for (const seen of ['bS', 'bF']) {
      resetIds();
      const history = [...start(), putUnknown(3, [0, 1], 'a0', A), txnUnknown(1, [4, 5], conditional(77)), get(2, [6, 7], seen, 9, B)];
      expect(verdict(history), seen).to.equal('linearizable');
    }
  });

  it('keeps a timed-out write that only a failed compare could have seen', () => {
    // u was never read, but the transaction failing its compare on a1 is explained only by u applying first.
    const history = [
      put(0, [0, 1], 'a1', A),
      putUnknown(1, [2, 3], 'u', A),
      txn(2, [5, 6], { compare: [{ key: A, value: 'a1' }], success: [step.put(B, 'b1')] }, false, []),
      put(0, [7, 8], 'a2', A),
      get(0, [9, 10], 'a2', 12, A),
    ];
    expect(verdict(history)).to.equal('linearizable');
  });

  it('stays fast with many timed-out transactions whose values nobody read', () => {
    // A delete that reports it found c tells presence on c, not on a or b: their writes can still go.
    const history: Operation[] = [
      ...start(),
      put(0, [4, 5], 'c1', C),
      txn(0, [6, 7], { success: [step.get(A), step.delete(C)] }, true, [result.get(A, 'a1', 5), result.delete(C, true)]),
    ];
    for (let i = 0; i < 60; i++) {
      const at = 10 + i * 10;
      history.push(txnUnknown(1 + (i % 3), [at, at + 3], transfer(5, 5, `ua${i}`, `ub${i}`)));
      history.push(txnUnknown(1 + (i % 3), [at + 1, at + 3], { success: [step.put(A, `va${i}`), step.put(B, `vb${i}`)] }));
      history.push(txn(0, [at + 4, at + 5], { success: [step.get(B)] }, true, [result.get(B, 'b1', 5)]));
    }
    const started = performance.now();
    const check = checkHistory(history);
    expect(check.verdict).to.equal('linearizable');
    expect(check.keys.map((key) => key.key)).to.deep.equal([`${A}+${B}+${C}`]);
    expect(check.keys[0]?.steps).to.be.below(5000);
    expect(performance.now() - started).to.be.below(2000);
  });

  it('counts a transaction\'s acknowledged puts as acknowledged writes', () => {
    const history = [
      ...start(),
      put(1, [4, 5], 'a2', A),
      get(FINAL_READ_CLIENT, [20, 21], 'a1', 5, A),
      get(FINAL_READ_CLIENT, [22, 23], 'b1', 5, B),
    ];
    expect(findLostWrites(history).lost).to.deep.equal([{ key: A, operationId: 2, value: 'a2', finalValue: 'a1' }]);
    resetIds();
    const lostTxn = [
      put(1, [0, 1], 'a0', A),
      txn(0, [2, 3], transfer(0, 0, 'a1', 'b1'), true, [result.put(A, 5), result.put(B, 5)]),
      get(FINAL_READ_CLIENT, [20, 21], 'a0', 2, A),
      get(FINAL_READ_CLIENT, [22, 23], null, 0, B),
    ];
    const { lost, unreadKeys } = findLostWrites(lostTxn);
    expect(unreadKeys).to.deep.equal([]);
    expect(lost).to.deep.equal([
      { key: A, operationId: 1, value: 'a1', finalValue: 'a0' },
      { key: B, operationId: 1, value: 'b1', finalValue: null },
    ]);
    expect(verdict(lostTxn)).to.equal('violation');
    resetIds();
    const failedTxn = [
      put(1, [0, 1], 'a0', A),
      txn(0, [2, 3], transfer(7, 0, 'a1', 'b1'), false, [result.get(A, 'a0', 2), result.get(B, null)]),
      get(FINAL_READ_CLIENT, [20, 21], 'a0', 2, A),
      get(FINAL_READ_CLIENT, [22, 23], null, 0, B),
    ];
    expect(findLostWrites(failedTxn).lost).to.deep.equal([]);
  });

  it('minimizes a torn read to a closed witness and renders it with the transactions', () => {
    const history: Operation[] = [...start()];
    for (let i = 0; i < 10; i++) history.push(txn(i % 3, [4 + i * 2, 5 + i * 2], readBoth, true, [result.get(A, 'a1', 5), result.get(B, 'b1', 5)]));
    const writer = txn(1, [30, 31], transfer(5, 5, 'a2', 'b2'), true, [result.put(A, 9), result.put(B, 9)]);
    const tornRead = txn(2, [32, 33], readBoth, true, [result.get(A, 'a2', 9), result.get(B, 'b1', 5)]);
    history.push(writer, tornRead);
    const check = checkKey(GROUP, history);
    expect(check.verdict).to.equal('violation');
    const minimal = minimizeViolation(GROUP, history);
    expect(isClosed(minimal, history)).to.equal(true);
    expect(checkKey(GROUP, minimal).verdict).to.equal('violation');
    expect(ids(minimal)).to.deep.equal(ids([history[1] as Operation, writer, tornRead]));
    const text = renderViolation({ check, minimized: minimal });
    expect(text).to.include(`keys ${GROUP}: NOT linearizable`).and.include('on these keys');
    expect(text).to.include(`txn() ? get ${A}, get ${B} : nothing → succeeded: get "a2" v9, get "b1" v5`);
  });

  it('never keeps a read of an absent key once a delete before it is cut', () => {
    const writeA = put(0, [0, 1], 'a1', A);
    const deleteA = txn(1, [2, 3], { success: [step.get(A), step.delete(A)] }, true, [result.get(A, 'a1', 2), result.delete(A, true)]);
    const readAbsent = get(2, [4, 5], null, 0, A);
    expect(closeUnder([writeA, readAbsent], [writeA, deleteA, readAbsent])).to.deep.equal([writeA]);
    expect(isClosed([writeA, deleteA, readAbsent])).to.equal(true);
  });
});
