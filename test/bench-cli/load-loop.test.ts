import { expect } from 'chai';
import { chooseOperation, COMPARE_FAILED, preloadKeys, runClosedLoop, type ClosedLoopResult, type LoadPlan, type LoadTarget } from '../../src/bench/load-loop.js';
import { benchKeys } from '../../src/bench/workload.js';
import { SeededRandom } from '../../src/common/index.js';

describe('bench/load-loop: preloadKeys', () => {
  it('stops writing once its signal aborts, so a worker whose parent is gone does not run on', async () => {
    const stop = new AbortController();
    let puts = 0;
    // A cluster that refuses every write: without the signal this retries every key three times.
    const target: LoadTarget = {
      get: () => Promise.resolve(null),
      put: async () => {
        puts += 1;
        if (puts === 10) stop.abort();
        await Promise.resolve();
        throw new Error('UNAVAILABLE');
      },
    };
    const keys = Array.from({ length: 1_000 }, (_unused, i) => `k${i}`);
    const failed = await preloadKeys(target, keys, Buffer.from('v'), 4, 3, stop.signal);
    expect(puts, 'no put starts after the abort').to.be.at.most(10 + 4);
    expect(failed).to.be.at.most(14);
  });

  it('writes every key, retrying a failed put, when not stopped', async () => {
    const written = new Set<string>();
    let failures = 0;
    const target: LoadTarget = {
      get: () => Promise.resolve(null),
      put: (key) => {
        if (failures < 2) {
          failures += 1;
          return Promise.reject(new Error('UNAVAILABLE'));
        }
        written.add(key);
        return Promise.resolve();
      },
    };
    expect(await preloadKeys(target, ['a', 'b', 'c'], Buffer.from('v'), 2)).to.equal(0);
    expect([...written].sort()).to.deep.equal(['a', 'b', 'c']);
  });
});

/** A target that records every call, in order, and answers at once (a transaction's compare holds unless told otherwise). */
function recordingTarget(compareHolds = true): { target: LoadTarget; calls: string[] } {
  const calls: string[] = [];
  const target: LoadTarget = {
    get: (key) => {
      calls.push(`get ${key}`);
      return Promise.resolve(null);
    },
    put: (key) => {
      calls.push(`put ${key}`);
      return Promise.resolve();
    },
    putExpiring: (key, _value, ttlMs) => {
      calls.push(`put ${key} ttl ${ttlMs}`);
      return Promise.resolve();
    },
    writePair: (first, second) => {
      calls.push(`txn ${first} ${second}`);
      return Promise.resolve(compareHolds);
    },
  };
  return { target, calls };
}

function runMix(target: LoadTarget, plan: Partial<LoadPlan> & Pick<LoadPlan, 'keys'>, seed = 42): Promise<ClosedLoopResult> {
  return runClosedLoop(target, { concurrency: 1, getPercent: 50, value: Buffer.from('v'), ops: 200, random: new SeededRandom(seed), ...plan });
}

describe('bench/load-loop: the txn and ttl mixes', () => {
  const pairKeys = benchKeys({ keys: 20, keyBytes: 8, mixName: 'txn' });
  const plainKeys = benchKeys({ keys: 20, keyBytes: 8 });

  it('txn: every operation is one transaction on the two keys of one hash tag, the same ones for the same seed', async () => {
    const first = recordingTarget();
    const result = await runMix(first.target, { keys: pairKeys, mixName: 'txn', getPercent: 0 });
    expect(result).to.include({ ops: 200, txns: 200, gets: 0, puts: 0, errors: 0 });
    expect(result.txn.totalCount).to.equal(200);
    expect(result.put.totalCount).to.equal(0);
    for (const call of first.calls) {
      const match = /^txn \{(g\d{4})\}a \{(g\d{4})\}b$/.exec(call);
      expect(match, call).to.not.equal(null);
      expect(match?.[1], `${call}: both keys under one tag`).to.equal(match?.[2]);
    }
    expect(new Set(first.calls).size, 'the pairs are spread over the keyspace').to.be.greaterThan(5);
    const again = recordingTarget();
    await runMix(again.target, { keys: pairKeys, mixName: 'txn', getPercent: 0 });
    expect(again.calls, 'replayed from the seed').to.deep.equal(first.calls);
    const otherSeed = recordingTarget();
    await runMix(otherSeed.target, { keys: pairKeys, mixName: 'txn', getPercent: 0 }, 43);
    expect(otherSeed.calls).to.not.deep.equal(first.calls);
  });

  it('txn: a compare that did not hold wrote nothing and counts as a COMPARE_FAILED error, not an op', async () => {
    const { target } = recordingTarget(false);
    const result = await runMix(target, { keys: pairKeys, mixName: 'txn', ops: 10 });
    expect(result).to.include({ ops: 0, txns: 0, errors: 10 });
    expect(result.errorsByKind).to.deep.equal({ [COMPARE_FAILED]: 10 });
  });

  it('ttl: the gets and puts of the same seed\'s get/put mix, every put with the TTL', async () => {
    const ttl = recordingTarget();
    const result = await runMix(ttl.target, { keys: plainKeys, mixName: 'ttl', ttlMs: 30_000 });
    expect(result.ops).to.equal(200);
    expect(result.gets + result.puts).to.equal(200);
    expect(result.gets, 'about half gets').to.be.within(70, 130);
    const puts = ttl.calls.filter((call) => call.startsWith('put '));
    expect(puts).to.have.length(result.puts);
    expect(puts.every((call) => call.endsWith(' ttl 30000')), 'every put carries the TTL').to.equal(true);
    const plain = recordingTarget();
    await runMix(plain.target, { keys: plainKeys });
    expect(ttl.calls.map((call) => call.replace(/ ttl \d+$/, '')), 'same keys and kinds as --mix 50 with that seed').to.deep.equal(plain.calls);
    expect(plain.calls.some((call) => call.includes(' ttl ')), '--mix 50 puts carry no TTL').to.equal(false);
  });

  it('chooseOperation draws one number per transaction and two per get or put', () => {
    const random = new SeededRandom(5);
    const reference = new SeededRandom(5);
    const txn = chooseOperation({ keys: pairKeys, getPercent: 0, mixName: 'txn', random });
    const pair = reference.nextInt(10);
    expect(txn).to.deep.equal({ kind: 'txn', first: pairKeys[2 * pair], second: pairKeys[2 * pair + 1] });
    const put = chooseOperation({ keys: plainKeys, getPercent: 0, mixName: 'ttl', ttlMs: 500, random });
    expect(put).to.deep.equal({ kind: 'put', key: plainKeys[reference.nextInt(20)], ttlMs: 500 });
    reference.nextInt(100);
    expect(random.nextUint32()).to.equal(reference.nextUint32());
  });

  it('refuses a named mix the target cannot run', async () => {
    const plainTarget: LoadTarget = { get: () => Promise.resolve(null), put: () => Promise.resolve() };
    let refused: unknown;
    try {
      await runMix(plainTarget, { keys: pairKeys, mixName: 'txn' });
    } catch (error) {
      refused = error;
    }
    expect(String(refused)).to.match(/--mix txn needs a target with writePair/);
  });
});
