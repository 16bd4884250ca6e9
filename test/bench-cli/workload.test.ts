/**
 * The bench's `--mix`: a percentage of gets as before, or the named workloads `txn` and `ttl`; their
 * keyspaces, what they refuse (with the flag named, exit 2 through `BadInputError`), and what
 * results.json's settings say about them.
 */
import { expect } from 'chai';
import { benchKeys, checkWorkload, describeOperation, parseMix, WorkloadError, type WorkloadSettings } from '../../src/bench/workload.js';
import { BadInputError } from '../../src/cli/client-util.js';
import { parseBenchFlags } from '../../src/cli/bench-command.js';
import { hashedPart } from '../../src/common/index.js';

const DEFAULT_FLAGS: { clients?: string } & Record<'warmup' | 'mix' | 'concurrency' | 'keys' | 'keyBytes' | 'valueBytes' | 'seed', string> & { leaseReads: boolean } = {
  warmup: '0', mix: '50', concurrency: '512', keys: '10000', keyBytes: '16', valueBytes: '128', seed: '1', leaseReads: true,
};

function flags(overrides: Partial<typeof DEFAULT_FLAGS> & { ttl?: string }): Parameters<typeof parseBenchFlags>[0] {
  return { ...DEFAULT_FLAGS, ...overrides };
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof WorkloadError || error instanceof BadInputError) return error.message;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('bench/workload: --mix', () => {
  it('takes a percentage of gets, txn or ttl', () => {
    expect(parseMix('50')).to.deep.equal({ mixName: 'get-put', getPercent: 50 });
    expect(parseMix('0')).to.deep.equal({ mixName: 'get-put', getPercent: 0 });
    expect(parseMix('100')).to.deep.equal({ mixName: 'get-put', getPercent: 100 });
    expect(parseMix('txn')).to.deep.equal({ mixName: 'txn', getPercent: 0 });
    expect(parseMix('ttl')).to.deep.equal({ mixName: 'ttl', getPercent: 50 });
  });

  it('refuses anything else, naming what it takes', () => {
    for (const bad of ['101', '-1', '50%', '', 'tx', 'txn,ttl', '1.5']) {
      expect(refusal(() => parseMix(bad)), bad).to.equal(
        `--mix wants a percentage of gets (a whole number in 0…100) or a named workload (txn, ttl), got "${bad}"`);
    }
  });

  it('txn: keys in pairs under one hash tag, exactly --key-bytes long', () => {
    const keys = benchKeys({ keys: 6, keyBytes: 8, mixName: 'txn' });
    expect(keys).to.deep.equal(['{g0000}a', '{g0000}b', '{g0001}a', '{g0001}b', '{g0002}a', '{g0002}b']);
    const encoder = new TextEncoder();
    const tags = keys.map((key) => Buffer.from(hashedPart(encoder.encode(key))).toString());
    expect(tags).to.deep.equal(['g0000', 'g0000', 'g0001', 'g0001', 'g0002', 'g0002']);
    const defaults = benchKeys({ keys: 10_000, keyBytes: 16, mixName: 'txn' });
    expect(defaults[9_999]).to.equal('{g000000004999}b');
    expect(defaults.every((key) => key.length === 16)).to.equal(true);
    expect(benchKeys({ keys: 3, keyBytes: 4 }), 'the get/put keyspace unchanged').to.deep.equal(['k000', 'k001', 'k002']);
  });

  it('txn: refuses an odd keyspace and keys too short for their tag', () => {
    const txn = (keys: number, keyBytes: number): WorkloadSettings => ({ keys, keyBytes, valueBytes: 128, getPercent: 0, mixName: 'txn' });
    expect(refusal(() => checkWorkload(txn(9, 16)))).to.match(/--mix txn writes keys in pairs .*--keys must be even and at least 2, got 9/);
    expect(refusal(() => checkWorkload(txn(0, 16)))).to.match(/--keys must be even/);
    expect(refusal(() => checkWorkload(txn(10_000, 7)))).to.equal(
      '--key-bytes 7 is too short for --mix txn with 10000 keys: they need 8 bytes ("{g" + 4 digits + "}" + "a" or "b")');
    expect(() => checkWorkload(txn(10_000, 8))).to.not.throw();
    expect(refusal(() => checkWorkload(txn(10_000, 21)))).to.match(/--key-bytes 21 is over the key limit of 20 bytes/);
  });

  it('ttl: needs a TTL within the protocol\'s limit; --ttl belongs to --mix ttl only', () => {
    const ttl = (ttlMs?: number): WorkloadSettings => ({ keys: 100, keyBytes: 8, valueBytes: 8, getPercent: 50, mixName: 'ttl', ...(ttlMs === undefined ? {} : { ttlMs }) });
    expect(() => checkWorkload(ttl(30_000))).to.not.throw();
    expect(refusal(() => checkWorkload(ttl()))).to.match(/--ttl: --mix ttl needs a TTL/);
    expect(refusal(() => checkWorkload(ttl(400 * 24 * 3600 * 1000)))).to.match(/^--ttl: TTL of 34560000000 ms: .*\(365 days\)$/);
    expect(refusal(() => checkWorkload({ keys: 100, keyBytes: 8, valueBytes: 8, getPercent: 50, ttlMs: 1000 }))).to.match(/--ttl is the TTL of --mix ttl's puts/);
  });

  it('says what one op is', () => {
    expect(describeOperation({ getPercent: 50 })).to.equal('a get or a put (50% gets)');
    expect(describeOperation({ getPercent: 0, mixName: 'txn' })).to.equal('one transaction: if {gN}a exists, put {gN}a and {gN}b (one Raft entry, two keys written)');
    expect(describeOperation({ getPercent: 50, mixName: 'ttl', ttlMs: 30_000 })).to.equal('a get or a put (50% gets), every put with a TTL of 30s');
    expect(describeOperation({ getPercent: 50, mixName: 'ttl', ttlMs: 1_500 })).to.include('TTL of 1500ms');
  });
});

describe('cli/bench-command: --mix and --ttl into the settings', () => {
  const notGiven = (): boolean => false;

  it('a percentage keeps its settings, with the mix named get-put', () => {
    const settings = parseBenchFlags(flags({ mix: '30' }), notGiven);
    expect(settings).to.include({ mix: 30, mixName: 'get-put', ttlMs: null, opDescription: 'a get or a put (30% gets)' });
  });

  it('txn and ttl: the mix name, its percentage of gets, the TTL (10 minutes unless --ttl) and what one op is', () => {
    expect(parseBenchFlags(flags({ mix: 'txn' }), notGiven)).to.include({ mix: 0, mixName: 'txn', ttlMs: null });
    expect(parseBenchFlags(flags({ mix: 'ttl' }), notGiven)).to.include({ mix: 50, mixName: 'ttl', ttlMs: 600_000, opDescription: 'a get or a put (50% gets), every put with a TTL of 10m' });
    const short = parseBenchFlags(flags({ mix: 'ttl', ttl: '500ms' }), notGiven);
    expect(short).to.include({ ttlMs: 500, opDescription: 'a get or a put (50% gets), every put with a TTL of 500ms' });
  });

  it('without --clients, one worker process per 128 requests in flight, at most 4; --clients overrides it', () => {
    const workers = (concurrency: string, clients?: string): number =>
      parseBenchFlags(flags({ concurrency, ...(clients === undefined ? {} : { clients }) }), notGiven).clients;
    expect([1, 64, 128, 129, 256, 384, 512, 4096].map((c) => workers(String(c)))).to.deep.equal([1, 1, 1, 2, 2, 3, 4, 4]);
    expect(workers('64', '4')).to.equal(4);
    expect(() => workers('2', '4')).to.throw(BadInputError, /--concurrency 2 is below --clients 4/);
  });

  it('refuses bad combinations with BadInputError (exit 2)', () => {
    const refused = (overrides: Parameters<typeof flags>[0]): string => {
      try {
        parseBenchFlags(flags(overrides), notGiven);
      } catch (error) {
        expect(error).to.be.instanceOf(BadInputError);
        return (error as Error).message;
      }
      throw new Error('expected a refusal');
    };
    expect(refused({ mix: 'bogus' })).to.match(/--mix wants a percentage of gets .* got "bogus"/);
    expect(refused({ mix: '50', ttl: '5s' })).to.equal('--ttl is the TTL of --mix ttl\'s puts; with --mix 50 drop it');
    expect(refused({ mix: 'ttl', ttl: 'soon' })).to.match(/--ttl wants a duration/);
    expect(refused({ mix: 'txn', keys: '101' })).to.match(/--keys must be even/);
    expect(refused({ mix: 'txn', keyBytes: '7' })).to.match(/--key-bytes 7 is too short for --mix txn/);
  });
});
