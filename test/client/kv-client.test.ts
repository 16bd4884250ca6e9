import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadHasher } from '../../src/common/hash.js';
import { ErrorCode } from '../../src/gen/kvstore/v1/kvstore.js';
import { KVClient, KVError } from '../../src/index.js';
import { errorResult, FakeManager, FakeNode, FakeStore, nodeError, opKey, shardOf, type Op } from './fake-servers.js';
import { rejection } from '../support/rejection.js';

const SHARDS = 8;


function keyOf(op: Op): string {
  return opKey(op);
}

describe('client/KVClient against fake servers', function () {
  this.timeout(20_000);
  let manager: FakeManager;
  let store: FakeStore;
  let nodeA: FakeNode;
  let nodeB: FakeNode;
  let clients: KVClient[];

  const client = (options: Partial<ConstructorParameters<typeof KVClient>[0]> = {}): KVClient => {
    const created = new KVClient({ manager: manager.address, timeoutMs: 3000, ...options });
    clients.push(created);
    return created;
  };

  before(async () => {
    await loadHasher();
  });

  beforeEach(async () => {
    clients = [];
    store = new FakeStore();
    manager = new FakeManager();
    nodeA = new FakeNode('a', store);
    nodeB = new FakeNode('b', store);
    await Promise.all([manager.start(), nodeA.start(), nodeB.start()]);
    manager.setMap(SHARDS, [{ id: 'a', address: nodeA.address }, { id: 'b', address: nodeB.address }], () => 'a');
  });

  afterEach(async () => {
    for (const created of clients) await created.finalize();
    manager.stop();
    await Promise.all([nodeA.stop(), nodeB.stop()]);
  });

  it('puts, gets, deletes, and reads entries and bytes', async () => {
    const kv = client();
    await kv.init();
    await kv.put('cart:42', '{"items":[]}');
    expect(await kv.get('cart:42')).to.equal('{"items":[]}');
    const entry = await kv.getEntry('cart:42');
    expect(entry?.value).to.equal('{"items":[]}');
    expect(entry?.version).to.be.greaterThan(0);
    const binary = Uint8Array.from([0, 255, 1, 128, 10]);
    await kv.put('bin', binary);
    expect(await kv.getBytes('bin')).to.deep.equal(binary);
    expect(await kv.delete('cart:42')).to.equal(true);
    expect(await kv.delete('cart:42')).to.equal(false);
    expect(await kv.get('cart:42')).to.equal(null);
  });

  it('getMany / putMany / deleteMany: one Batch message per node, per-key results in order, each key exactly once', async () => {
    manager.setMap(SHARDS, [{ id: 'a', address: nodeA.address }, { id: 'b', address: nodeB.address }], (shard) => (shard % 2 === 0 ? 'a' : 'b'));
    const kv = client();
    await kv.init();
    const keys = Array.from({ length: 30 }, (_unused, i) => `many-${i}`);
    const put = await kv.putMany(keys.map((key, i) => [key, `v${i}`] as const));
    expect(put.map((result) => result.ok)).to.deep.equal(keys.map(() => true));
    expect(nodeA.batchSizes.length + nodeB.batchSizes.length, 'one Batch message per node').to.equal(2);
    expect(nodeA.batchSizes.reduce((sum, size) => sum + size, 0) + nodeB.batchSizes.reduce((sum, size) => sum + size, 0)).to.equal(30);
    expect(store.applied).to.equal(30);

    const got = await kv.getMany([...keys.slice(0, 3), 'never-written']);
    expect(got.map((result) => (result.ok ? result.entry?.value ?? null : 'error'))).to.deep.equal(['v0', 'v1', 'v2', null]);
    expect(got.map((result) => result.key)).to.deep.equal([...keys.slice(0, 3), 'never-written']);

    // A key whose node refuses fails alone; the others succeed.
    const refusedKey = keys.slice(1).find((key) => shardOf(key, SHARDS) % 2 === 1) ?? '';
    nodeB.hook = (op) => (keyOf(op) === refusedKey ? errorResult(op, nodeError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'refused for the test')) : undefined);
    const deleted = await kv.deleteMany([keys[0] ?? '', refusedKey, 'never-written']);
    expect(deleted[0]).to.deep.equal({ key: keys[0], ok: true, existed: true });
    expect(deleted[1]?.ok).to.equal(false);
    if (deleted[1]?.ok === false) expect(deleted[1].error.code).to.equal('INVALID_ARGUMENT');
    expect(deleted[2]).to.deep.equal({ key: 'never-written', ok: true, existed: false });
  });

  it('getMany / putMany / deleteMany refuse bad input whole, sending nothing', async () => {
    const kv = client();
    await kv.init();
    const tooLong = 'k'.repeat(21);
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['empty', () => kv.getMany([]), /at least one key/],
      ['too many', () => kv.getMany(Array.from({ length: 1025 }, (_unused, i) => `k${i}`)), /at most 1024 keys, got 1025/],
      ['a bad key', () => kv.getMany(['ok', tooLong]), /20 bytes/],
      ['a duplicate', () => kv.putMany([['a', '1'], ['a', '2']]), /"a" appears twice/],
      ['a big value', () => kv.putMany([['a', '1'], ['b', 'x'.repeat(1025)]]), /1024/],
      ['a duplicate delete', () => kv.deleteMany(['a', 'a']), /appears twice/],
    ];
    for (const [name, call, message] of cases) {
      const error = await rejection(call());
      expect(error, name).to.be.instanceOf(KVError);
      expect(error.code, name).to.equal('INVALID_ARGUMENT');
      expect(error.message, name).to.match(message);
    }
    expect(nodeA.received.length + nodeB.received.length, 'nothing sent').to.equal(0);
  });

  it('routes every key to its shard leader', async () => {
    manager.setMap(SHARDS, [{ id: 'a', address: nodeA.address }, { id: 'b', address: nodeB.address }], (shard) => (shard % 2 === 0 ? 'a' : 'b'));
    const kv = client();
    const keys = Array.from({ length: 40 }, (_unused, i) => `key-${i}`);
    await Promise.all(keys.map((key) => kv.put(key, 'v')));
    for (const op of nodeA.received) expect(shardOf(keyOf(op), SHARDS) % 2).to.equal(0);
    for (const op of nodeB.received) expect(shardOf(keyOf(op), SHARDS) % 2).to.equal(1);
    expect(nodeA.received.length + nodeB.received.length).to.equal(40);
  });

  it('follows a NOT_LEADER hint and remembers it', async () => {
    nodeA.hook = (op) => errorResult(op, nodeError(ErrorCode.ERROR_CODE_NOT_LEADER, 'not leader', { leaderNodeId: 'b', leaderAddress: nodeB.address }));
    const kv = client();
    await kv.put('k', 'v1');
    expect(nodeA.received).to.have.length(1);
    expect(nodeB.received).to.have.length(1);
    await kv.put('k', 'v2');
    expect(nodeA.received).to.have.length(1); // went straight to b
    expect(await kv.get('k')).to.equal('v2');
  });

  it('refreshes the map on WRONG_SHARD', async () => {
    nodeA.hook = (op) => errorResult(op, nodeError(ErrorCode.ERROR_CODE_WRONG_SHARD, 'wrong shard', { epoch: 2 }));
    const kv = client();
    await kv.init();
    const callsBefore = manager.mapCalls;
    manager.setMap(SHARDS, [{ id: 'b', address: nodeB.address }], () => 'b', 2);
    await kv.put('k', 'v');
    expect(manager.mapCalls).to.be.greaterThan(callsBefore);
    expect(nodeB.received).to.have.length(1);
    expect(nodeB.received[0]?.value.epoch).to.equal(2);
  });

  it('goes around an unreachable leader', async () => {
    await nodeA.stop();
    const kv = client();
    await kv.put('k', 'v');
    expect(await kv.get('k')).to.equal('v');
    expect(nodeB.received.length).to.be.greaterThanOrEqual(2);
  });

  /** Node A answers the first put it gets with `decision` (a broken stream), every later one normally. */
  function breakFirstPut(decision: 'break' | 'apply-then-break'): void {
    let broken = false;
    nodeA.hook = (op) => {
      if (op.$case !== 'put' || broken) return undefined;
      broken = true;
      return decision;
    };
  }

  it('retries a write whose stream broke with the same (clientId, seq), applying it once', async () => {
    breakFirstPut('apply-then-break');
    const kv = client();
    await kv.put('k', 'v');
    const puts = [...nodeA.received, ...nodeB.received].filter((op) => op.$case === 'put');
    expect(puts.length).to.be.greaterThanOrEqual(2);
    const sessions = puts.map((op) => (op.$case === 'put' ? `${op.value.session?.clientId}/${op.value.session?.seq}` : ''));
    expect(new Set(sessions).size).to.equal(1);
    expect(store.applied).to.equal(1);
    await kv.put('k2', 'v');
    const next = [...nodeA.received, ...nodeB.received].find((op) => op.$case === 'put' && keyOf(op) === 'k2');
    const seqOf = (op: Op | undefined): number | undefined => (op?.$case === 'put' ? op.value.session?.seq : undefined);
    expect(seqOf(next)).to.equal((seqOf(puts[0]) ?? 0) + 1);
  });

  it('sends a Uint8Array value as it was when put was called, on every attempt', async () => {
    breakFirstPut('break');
    const kv = client();
    const value = Uint8Array.from([1, 2, 3]);
    const put = kv.put('k', value);
    value.fill(9); // the caller reuses its array while the put (and its retry) is under way
    await put;
    const sent = [...nodeA.received, ...nodeB.received].flatMap((op) => (op.$case === 'put' ? [[...op.value.value]] : []));
    expect(sent.length).to.be.greaterThanOrEqual(2);
    for (const bytes of sent) expect(bytes).to.deep.equal([1, 2, 3]);
    expect(await kv.getBytes('k')).to.deep.equal(Buffer.from([1, 2, 3]));
  });

  it('retries UNAVAILABLE and node TIMEOUT answers until one succeeds', async () => {
    let failures = 0;
    nodeA.hook = (op) => {
      if (failures < 2) {
        failures++;
        return errorResult(op, nodeError(failures === 1 ? ErrorCode.ERROR_CODE_TIMEOUT : ErrorCode.ERROR_CODE_UNAVAILABLE, 'busy'));
      }
      return undefined;
    };
    const kv = client();
    await kv.put('k', 'v');
    expect(await kv.get('k')).to.equal('v');
    expect(store.applied).to.equal(1);
  });

  it('backs off and retries RESOURCE_EXHAUSTED on the same node, which is the leader', async () => {
    let refusals = 0;
    nodeA.hook = (op) => {
      if (refusals < 3) {
        refusals++;
        return errorResult(op, nodeError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, 'this node has 16384 requests in flight'));
      }
      return undefined;
    };
    const kv = client();
    const started = Date.now();
    await kv.put('k', 'v');
    expect(nodeA.received.filter((op) => op.$case === 'put'), 'three refused, the fourth applied, all on a').to.have.length(4);
    expect(nodeB.received, 'a refusal is not a reason to go elsewhere').to.have.length(0);
    expect(store.applied).to.equal(1);
    // Backoff 10 ms doubling with equal jitter: at least 5 + 10 + 20 ms before the fourth attempt.
    expect(Date.now() - started).to.be.at.least(35);
  });

  it('gives up with a retryable RESOURCE_EXHAUSTED at the deadline when the node keeps refusing', async () => {
    nodeA.hook = (op) => errorResult(op, nodeError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, 'this node has 16384 requests in flight'));
    const kv = client();
    await kv.init();
    const write = await rejection(kv.put('k', 'v', { timeoutMs: 300 }));
    expect(write.code).to.equal('RESOURCE_EXHAUSTED');
    expect(write.retryable).to.equal(true);
    expect(write.outcomeUnknown, 'every attempt was refused, so it was not applied').to.equal(false);
    expect(write.message).to.contain('16384 requests in flight');
    expect(store.applied).to.equal(0);
    const limited = await rejection(client({ maxRetries: 2 }).get('k'));
    expect(limited.code).to.equal('RESOURCE_EXHAUSTED');
  });

  it('never retries INVALID_ARGUMENT or CONFLICT', async () => {
    nodeA.hook = (op) => (op.$case === 'put' ? errorResult(op, nodeError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'value is 2000 bytes: the limit is 1024 bytes')) : undefined);
    const kv = client();
    const invalid = await rejection(kv.put('k', 'v'));
    expect(invalid.code).to.equal('INVALID_ARGUMENT');
    expect(invalid.retryable).to.equal(false);
    expect(invalid.message).to.contain('1024');
    expect(nodeA.received.filter((op) => op.$case === 'put')).to.have.length(1);

    const version = await kv.cas('c', 0, 'first');
    expect(version).to.be.greaterThan(0);
    const conflict = await rejection(kv.cas('c', 0, 'second'));
    expect(conflict.code).to.equal('CONFLICT');
    expect(conflict.retryable).to.equal(false);
    expect(conflict.currentVersion).to.equal(version);
    expect(nodeA.received.filter((op) => op.$case === 'cas')).to.have.length(2);
    expect(await kv.cas('c', version, 'third')).to.be.greaterThan(version);
  });

  it('checks limits before sending, naming the limit', async () => {
    const kv = client();
    await kv.init();
    const cases: [string, string | Uint8Array, string][] = [
      ['k'.repeat(21), 'v', '20'],
      ['é'.repeat(11), 'v', '20'], // 22 bytes
      ['語'.repeat(7), 'v', '20'], // 7 characters, 21 bytes
      ['', 'v', '1–20'],
      ['k', 'v'.repeat(1025), '1024'],
      ['k', new Uint8Array(1025), '1024'],
    ];
    for (const [key, value, limit] of cases) {
      const error = await rejection(kv.put(key, value));
      expect(error.code).to.equal('INVALID_ARGUMENT');
      expect(error.message).to.contain(limit);
    }
    expect((await rejection(kv.get('k'.repeat(21)))).code).to.equal('INVALID_ARGUMENT');
    expect((await rejection(kv.cas('k', -1, 'v'))).code).to.equal('INVALID_ARGUMENT');
    expect(nodeA.received).to.have.length(0);
    await kv.put('語'.repeat(6), 'v'.repeat(1024)); // 18 bytes, 1024 bytes: fine
    expect(await kv.get('語'.repeat(6))).to.equal('v'.repeat(1024));
  });

  it('rejects with CLOSED after finalize, including calls in flight', async () => {
    nodeA.hook = (op) => (op.$case === 'get' ? 'hang' : undefined);
    const kv = client();
    await kv.put('k', 'v');
    const inFlight = kv.get('k');
    await new Promise((resolve) => setImmediate(resolve));
    await kv.finalize();
    expect((await rejection(inFlight)).code).to.equal('CLOSED');
    expect((await rejection(kv.get('k'))).code).to.equal('CLOSED');
    expect((await rejection(kv.put('k', 'v'))).code).to.equal('CLOSED');
  });

  it('honours a signal and the timeout with TIMEOUT; a write says its outcome is unknown', async () => {
    // Both replicas hang: an attempt that times out makes the client forget the leader and try the
    // other replica, which (being a fake) would otherwise serve the call as if it led the shard.
    nodeA.hook = () => 'hang';
    nodeB.hook = () => 'hang';
    const kv = client();
    await kv.init();
    const started = Date.now();
    const read = await rejection(kv.get('k', { signal: AbortSignal.timeout(300) }));
    expect(read.code).to.equal('TIMEOUT');
    expect(read.retryable).to.equal(true);
    expect(read.outcomeUnknown).to.equal(false);
    expect(Date.now() - started).to.be.lessThan(2000);
    const write = await rejection(kv.put('k', 'v', { timeoutMs: 300 }));
    expect(write.code).to.equal('TIMEOUT');
    expect(write.outcomeUnknown).to.equal(true);
    expect(write.message).to.match(/may or may not have been applied/);
    const controller = new AbortController();
    const aborted = kv.put('k', 'v', { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const abortError = await rejection(aborted);
    expect(abortError.code).to.equal('TIMEOUT');
    expect(abortError.retryable).to.equal(false);
  });

  it('gives up with UNAVAILABLE after maxRetries', async () => {
    nodeA.hook = (op) => errorResult(op, nodeError(ErrorCode.ERROR_CODE_UNAVAILABLE, 'no quorum'));
    nodeB.hook = nodeA.hook;
    const kv = client({ maxRetries: 2 });
    const error = await rejection(kv.get('k'));
    expect(error.code).to.equal('UNAVAILABLE');
    expect(error.retryable).to.equal(true);
    expect(nodeA.received.length + nodeB.received.length).to.equal(3);
  });

  it('fails init fast with UNAVAILABLE when the manager is unreachable', async () => {
    const address = manager.address;
    manager.stop();
    const kv = new KVClient({ manager: address, timeoutMs: 5000 });
    clients.push(kv);
    const started = Date.now();
    const error = await rejection(kv.init());
    expect(error.code).to.equal('UNAVAILABLE');
    expect(error.message).to.contain(address);
    expect(Date.now() - started).to.be.lessThan(3000);
  });

  it('multiplexes concurrent calls on one Batch stream, coalescing a tick into one message', async () => {
    const kv = client();
    await kv.init();
    await Promise.all(Array.from({ length: 100 }, (_unused, i) => kv.put(`key-${i}`, 'v')));
    expect(nodeA.streamsOpened).to.equal(1);
    expect(nodeA.batchSizes.length).to.be.lessThanOrEqual(2);
    expect(nodeA.batchSizes.reduce((sum, size) => sum + size, 0)).to.equal(100);
  });

  it('does not block fast calls behind a slow one on the same stream', async () => {
    nodeA.hook = (op) => (op.$case === 'get' && keyOf(op) === 'slow' ? 'hang' : undefined);
    const kv = client();
    const slow = kv.get('slow', { timeoutMs: 1500 }).catch((error: unknown) => error);
    await kv.put('fast', '1');
    expect(await kv.get('fast')).to.equal('1');
    expect(await slow).to.be.instanceOf(KVError);
  });

  it('update() is a safe read-modify-write under contention', async () => {
    const kv = client();
    const writers = 8;
    const rounds = 20;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (let i = 0; i < rounds; i++) await kv.update('counter', (current) => String(Number(current ?? '0') + 1));
      }),
    );
    expect(await kv.get('counter')).to.equal(String(writers * rounds));
    expect(await kv.update('fresh', (current) => (current === null ? 'was-absent' : 'was-present'))).to.equal('was-absent');
  });

  it('update() gives up with CONFLICT after maxAttempts', async () => {
    const kv = client();
    await kv.put('k', '0');
    nodeA.hook = (op) => (op.$case === 'cas' ? { $case: 'cas', value: { error: nodeError(ErrorCode.ERROR_CODE_CONFLICT), version: 0, currentVersion: 99 } } : undefined);
    const error = await rejection(kv.update('k', () => 'x', { maxAttempts: 3 }));
    expect(error.code).to.equal('CONFLICT');
    expect(nodeA.received.filter((op) => op.$case === 'cas')).to.have.length(3);
  });

  it('leaves no open handles after finalize: the process exits by itself', async () => {
    const script = fileURLToPath(new URL('./exit-probe.js', import.meta.url));
    const child = spawn(process.execPath, [script, manager.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 10_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, `probe output: ${output}`).to.equal(0);
    expect(output).to.contain('probe done');
  });
});
