import { expect } from 'chai';
import { preloadKeys, type LoadTarget } from '../../src/bench/load-loop.js';

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
