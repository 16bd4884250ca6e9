/**
 * The checker on hand-written histories with keys that expire (issue 18): a put with a TTL may
 * make its key absent at or after its earliest expiry (invocation + 0.99 × TTL − 50 ms) while its
 * value is current, and never before; once gone, the value never comes back; a later write without
 * a TTL clears the expiry. Lost writes spare an acknowledged put that may have expired.
 * Spans are [invoked, completed] in ms. With a TTL of 1,000 ms put at 0, the earliest expiry is 940.
 */
import { expect } from 'chai';
import {
  checkHistory,
  checkKey,
  closeUnder,
  describeOperation,
  earliestExpiryMs,
  findLostWrites,
  FINAL_READ_CLIENT,
  isClosed,
  minimizeViolation,
  type Operation,
} from '../../src/chaos/index.js';
import { casOk, del, get, ids, put, putTtl, putTtlUnknown, putUnknown, resetIds, result, step, txn } from './history-builders.js';

const A = '{g}a';
const B = '{g}b';

function verdict(history: Operation[]): string {
  return checkHistory(history).verdict;
}

describe('chaos checker: keys that expire', () => {
  beforeEach(resetIds);

  it('puts the earliest expiry at 0.99 of the TTL after the invocation, less 50 ms', () => {
    expect(earliestExpiryMs(0, 1000)).to.equal(940);
    expect(earliestExpiryMs(100, 3000)).to.equal(100 + 2970 - 50);
  });

  it('(a) accepts a value read, then the key read absent after its earliest expiry, and counts the expiry', () => {
    const history = [putTtl(0, [0, 10], 'v', 1000), get(1, [20, 30], 'v', 5), get(1, [1200, 1210], null), get(2, [1300, 1310], null)];
    const check = checkHistory(history);
    expect(check.verdict).to.equal('linearizable');
    expect(check).to.include({ expirations: 1, expiredReads: 2 });
    // A read of absence that returns at the earliest expiry may already see it; the value may also outlive its TTL by any amount.
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), get(1, [900, 940], null)])).to.equal('linearizable');
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), get(1, [5000, 5010], 'v', 5), get(1, [60_000, 60_010], null)])).to.equal('linearizable');
  });

  it('(b) rejects the key read absent before its earliest expiry, with no delete', () => {
    const history = [putTtl(0, [0, 10], 'v', 1000), get(1, [20, 30], 'v', 5), get(1, [500, 510], null)];
    const check = checkKey('k', history);
    expect(check.verdict).to.equal('violation');
    expect(check.operationIds).to.deep.equal([2]);
    expect(check.reason).to.match(/no order .* get #2/);
    resetIds();
    // Just before: the read returned at 939, the earliest expiry is 940.
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), get(1, [900, 939], null)])).to.equal('violation');
    resetIds();
    // A delete explains it.
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), del(2, [400, 450], true), get(1, [500, 510], null)])).to.equal('linearizable');
  });

  it('(c) rejects the value read again after a read found it expired, with no write between ("came back")', () => {
    const history = [putTtl(0, [0, 10], 'v', 1000), get(1, [20, 30], 'v', 5), get(1, [1200, 1210], null), get(2, [1300, 1310], 'v', 5)];
    const check = checkKey('k', history);
    expect(check.verdict).to.equal('violation');
    expect(check.reason).to.match(/came back: "v" was written \(#0\), read as absent \(#2\).*read again \(#3\)/);
    expect(check.operationIds).to.have.members([0, 2, 3]);
    const witness = minimizeViolation('k', history);
    expect(ids(witness)).to.deep.equal([0, 2, 3]);
    expect(isClosed(witness)).to.equal(true);
    // The same with the value known written only through a read (the put timed out), and on another client's read.
    resetIds();
    const viaRead = [putTtlUnknown(0, [0, 3000], 'v', 300), get(1, [20, 30], 'v', 5), get(2, [1200, 1210], null), get(3, [1300, 1310], 'v', 5)];
    expect(checkKey('k', viaRead).reason).to.match(/came back.*certainly happened \(#1\)/);
    // Overlapping reads are not ordered: the absent one may come after.
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), get(1, [1200, 1310], null), get(2, [1250, 1260], 'v', 5)])).to.equal('linearizable');
    // A new write between is fine.
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 1000), get(1, [1200, 1210], null), put(0, [1220, 1230], 'w'), get(2, [1300, 1310], 'w', 9)])).to.equal(
      'linearizable',
    );
  });

  it('(c) rejects a value that came back through the search too (absent seen by a transaction)', () => {
    const history = [
      txn(0, [0, 10], { success: [step.put(A, 'a1', 1000), step.put(B, 'b1')] }, true, [result.put(A, 5), result.put(B, 5)]),
      txn(1, [1200, 1210], { success: [step.get(A), step.get(B)] }, true, [result.get(A, null), result.get(B, 'b1', 5)]),
      get(2, [1300, 1310], 'a1', 5, A),
    ];
    const check = checkHistory(history);
    expect(check.verdict).to.equal('violation');
    expect(check.keys[0]?.reason).to.match(/key \{g\}a came back/);
  });

  it('(d) never expires a TTL value overwritten without a TTL: a later absent read with no delete is rejected', () => {
    for (const overwrite of [(span: [number, number]) => put(1, span, 'w'), (span: [number, number]) => casOk(1, span, 5, 'w', 9)]) {
      resetIds();
      const history = [putTtl(0, [0, 10], 'v', 200), get(2, [15, 18], 'v', 5), overwrite([20, 30]), get(2, [40, 50], 'w', 9), get(2, [5000, 5010], null)];
      expect(verdict(history), describeOperation(history[2] as Operation)).to.equal('violation');
    }
    // Overwritten by another TTL put: that one may expire.
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 200), putTtl(1, [20, 30], 'w', 1000), get(2, [40, 50], 'w', 9), get(2, [5000, 5010], null)])).to.equal(
      'linearizable',
    );
    // Only the current value can expire: v's expiry is due, w's is not.
    resetIds();
    expect(verdict([putTtl(0, [0, 10], 'v', 200), putTtl(1, [20, 30], 'w', 1000), get(2, [40, 50], 'w', 9), get(2, [600, 610], null)])).to.equal(
      'violation',
    );
    // A transaction's put without a TTL clears it as well; its put with one sets it.
    resetIds();
    const cleared = [
      putTtl(0, [0, 10], 'v', 200, A),
      txn(1, [20, 30], { success: [step.put(A, 'a2'), step.put(B, 'b2', 200)] }, true, [result.put(A, 9), result.put(B, 9)]),
      txn(2, [5000, 5010], { success: [step.get(A), step.get(B)] }, true, [result.get(A, null), result.get(B, null)]),
    ];
    expect(verdict(cleared)).to.equal('violation');
    resetIds();
    const set = [
      putTtl(0, [0, 10], 'v', 200, A),
      txn(1, [20, 30], { success: [step.put(A, 'a2'), step.put(B, 'b2', 200)] }, true, [result.put(A, 9), result.put(B, 9)]),
      txn(2, [5000, 5010], { success: [step.get(A), step.get(B)] }, true, [result.get(A, 'a2', 9), result.get(B, null)]),
    ];
    const check = checkHistory(set);
    expect(check.verdict).to.equal('linearizable');
    expect(check).to.include({ expirations: 1, expiredReads: 1 });
  });

  it('lets a timed-out TTL put that nobody read apply and expire, and a cas find the expired key absent', () => {
    // The timed-out put is the only explanation for the absence: it must not be pruned as unobserved.
    const history = [
      put(0, [0, 10], 'p'),
      get(1, [20, 30], 'p', 3),
      putTtlUnknown(2, [40, 50], 'u', 300),
      get(1, [2000, 2010], null),
      casOk(1, [2020, 2030], 0, 'q', 12),
      get(1, [2040, 2050], 'q', 12),
    ];
    expect(verdict(history)).to.equal('linearizable');
    resetIds();
    expect(verdict([put(0, [0, 10], 'p'), get(1, [20, 30], 'p', 3), putUnknown(2, [40, 50], 'u'), get(1, [2000, 2010], null)])).to.equal('violation');
  });

  it('minimizes to closed witnesses: an absence explained by an expiry keeps its TTL put', () => {
    const history = [
      putTtl(0, [0, 10], 'v', 1000),
      get(1, [20, 30], 'v', 5),
      putTtl(2, [50, 60], 'w', 2000),
      get(0, [70, 80], 'w', 8),
      get(0, [300, 310], null),
    ];
    expect(checkKey('k', history).verdict).to.equal('violation');
    const witness = minimizeViolation('k', history);
    expect(isClosed(witness, history)).to.equal(true);
    expect(ids(witness)).to.include.members([2, 4]);
    // An expiry that explains an absence, then a stale read: cutting the TTL put would blame the absence instead.
    resetIds();
    const stale = [
      put(0, [0, 10], 'p'),
      get(1, [20, 30], 'p', 2),
      putTtl(0, [40, 50], 'v', 200),
      get(1, [1000, 1010], null),
      put(0, [2000, 2010], 'x'),
      get(1, [2020, 2030], 'x', 9),
      put(0, [2040, 2050], 'y'),
      get(2, [2060, 2070], 'x', 9),
    ];
    expect(checkKey('k', stale.slice(0, 4)).verdict).to.equal('linearizable');
    const cut = stale.filter((operation) => operation.id !== 2);
    expect(checkKey('k', cut.slice(0, 3)).verdict).to.equal('violation'); // what a careless cut would show
    expect(isClosed(cut, stale)).to.equal(false);
    expect(ids(closeUnder(cut, stale))).to.not.include(3);
    const staleWitness = minimizeViolation('k', stale);
    expect(isClosed(staleWitness, stale)).to.equal(true);
    expect(checkKey('k', staleWitness).verdict).to.equal('violation');
  });

  it('(e) does not count an acknowledged TTL put missing at the end as lost when it may have expired', () => {
    const final = (span: [number, number], value: string | null): Operation => ({ ...get(FINAL_READ_CLIENT, span, value), client: FINAL_READ_CLIENT });
    expect(findLostWrites([putTtl(0, [0, 10], 'v', 1000), final([2000, 2010], null)]).lost).to.deep.equal([]);
    resetIds();
    // The final read came before its earliest expiry: lost.
    expect(findLostWrites([putTtl(0, [0, 10], 'v', 1000), final([500, 510], null)]).lost).to.deep.equal([
      { key: 'k', operationId: 0, value: 'v', finalValue: null },
    ]);
    resetIds();
    // Overwritten by a TTL put that may have expired: neither is lost.
    expect(findLostWrites([put(0, [0, 10], 'p'), putTtl(1, [20, 30], 'v', 200), final([2000, 2010], null)]).lost).to.deep.equal([]);
    resetIds();
    // A TTL put that finished before a put without one began cannot explain that one's absence.
    expect(findLostWrites([putTtl(1, [0, 10], 'v', 200), put(0, [20, 30], 'p'), final([2000, 2010], null)]).lost.map((lost) => lost.value)).to.deep.equal([
      'p',
    ]);
    resetIds();
    // A transaction's TTL put likewise.
    const txnPut = txn(0, [0, 10], { success: [step.put(A, 'a1', 300), step.put(B, 'b1')] }, true, [result.put(A, 5), result.put(B, 5)]);
    const finals = [final([2000, 2010], null), { ...final([2020, 2030], null), key: B }];
    expect(findLostWrites([txnPut, ...finals]).lost).to.deep.equal([{ key: B, operationId: 0, value: 'b1', finalValue: null }]);
  });

  it('records and describes the TTL of puts', () => {
    expect(describeOperation(putTtl(0, [0, 1], 'v', 800))).to.equal('c0 put "v" ttl 800ms ok');
    expect(describeOperation(txn(1, [0, 1], { success: [step.put(A, 'a', 250)] }, true, [result.put(A, 3)]))).to.include('put {g}a="a" ttl 250ms');
  });

  it('stays fast on a long history of TTL puts, expiries and reads, and decides a late violation in it', () => {
    // One key, 3,000 operations: a write every 40; every other write has a TTL of 200 ms, and half of those expire before the next write.
    const history: Operation[] = [];
    let t = 0;
    let current: { value: string; version: number } | null = null;
    let expiresAtMs = Infinity;
    let version = 0;
    for (let i = 0; i < 3000; i++) {
      t += 10;
      if (t >= expiresAtMs) current = null;
      if (i % 40 === 0) {
        const ttl = i % 80 === 0;
        version += 2;
        history.push(ttl ? putTtl(i % 3, [t, t + 15], `v${i}`, 200) : put(i % 3, [t, t + 15], `v${i}`));
        current = { value: `v${i}`, version };
        expiresAtMs = ttl && i % 160 === 0 ? t + 250 : Infinity;
      } else {
        history.push(get(i % 3, [t - 4, t + 6], current?.value ?? null, current?.version ?? 0));
      }
    }
    const started = performance.now();
    const check = checkHistory(history);
    const elapsedMs = performance.now() - started;
    expect(check.verdict).to.equal('linearizable');
    expect(check.expirations).to.equal(19);
    expect(elapsedMs).to.be.lessThan(2000);
    // The last write is a TTL put; an absent read 50 ms after it is too early.
    t += 100;
    history.push(putTtl(0, [t, t + 5], 'late', 1000), get(1, [t + 50, t + 55], null));
    const late = checkHistory(history, { maxSteps: 2_000_000 });
    expect(late.verdict).to.equal('violation');
  });
});
