/**
 * Issue 18 against a real local cluster: transactions on hash-tagged keys (both branches, reads,
 * versions), atomicity under concurrent transfers, exactly-once on a replayed (clientId, seq),
 * keys of two shards and broken limits refused with nothing changed, and `kvstore txn`.
 */
import { expect } from 'chai';
import { credentials } from '@grpc/grpc-js';
import { KvServiceClient, type TxnRequest, type TxnResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { useTestCluster } from '../support/cluster.js';
import { rejection } from '../support/rejection.js';

describe('integration: transactions (issue 18)', function () {
  this.timeout(180_000);
  const suite = useTestCluster({ nodes: 3, replicas: 3, shards: 8 });

  it('runs the success branch when every compare holds and the failure branch otherwise', async () => {
    await suite.kv.put('{u1}cart', 'apple');
    const cart = await suite.kv.getEntry('{u1}cart');
    const done = await suite.kv.txn({
      compare: [{ key: '{u1}cart', version: cart?.version ?? -1 }, { key: '{u1}order:1', exists: false }, { key: '{u1}cart', value: 'apple' }],
      success: [{ put: { key: '{u1}order:1', value: 'apple' } }, { delete: { key: '{u1}cart' } }, { get: { key: '{u1}order:1' } }],
      failure: [{ get: { key: '{u1}cart' } }],
    });
    expect(done.succeeded).to.equal(true);
    const [put, removed, read] = done.results;
    expect(put).to.deep.include({ op: 'put', key: '{u1}order:1' });
    expect(removed).to.deep.equal({ op: 'delete', key: '{u1}cart', existed: true });
    expect(read?.op === 'get' && read.entry?.value).to.equal('apple');
    expect(read?.op === 'get' && put?.op === 'put' && read.entry?.version === put.version).to.equal(true);
    expect(await suite.kv.get('{u1}cart')).to.equal(null);

    const again = await suite.kv.txn({
      compare: [{ key: '{u1}order:1', exists: false }],
      success: [{ put: { key: '{u1}order:1', value: 'twice' } }],
      failure: [{ get: { key: '{u1}order:1' } }, { get: { key: '{u1}cart' } }],
    });
    expect(again.succeeded).to.equal(false);
    expect(again.results.map((r) => (r.op === 'get' ? r.entry?.value ?? null : r.op))).to.deep.equal(['apple', null]);
    expect(await suite.kv.get('{u1}order:1')).to.equal('apple');
  });

  it('is atomic: concurrent transfers between two tagged keys keep their sum', async () => {
    await suite.kv.putMany([['{acct}a', '100'], ['{acct}b', '100']]);
    const transfer = async (from: string, to: string): Promise<void> => {
      for (;;) {
        const read = await suite.kv.txn({ success: [{ get: { key: from } }, { get: { key: to } }] });
        const [a, b] = read.results.map((r) => (r.op === 'get' ? r.entry : null));
        if (a == null || b == null) throw new Error('accounts missing');
        const moved = await suite.kv.txn({
          compare: [{ key: from, version: a.version }, { key: to, version: b.version }],
          success: [{ put: { key: from, value: String(Number(a.value) - 1) } }, { put: { key: to, value: String(Number(b.value) + 1) } }],
        });
        if (moved.succeeded) return;
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_unused, i) => (async () => {
      for (let n = 0; n < 10; n++) await (i % 2 === 0 ? transfer('{acct}a', '{acct}b') : transfer('{acct}b', '{acct}a'));
    })()));
    const [a, b] = await suite.kv.getMany(['{acct}a', '{acct}b']);
    const value = (r: typeof a): number => Number(r?.ok === true ? r.entry?.value : NaN);
    expect(value(a) + value(b)).to.equal(200);
    expect(value(a)).to.equal(100); // 30 each way
  });

  it('applies a replayed (clientId, seq) once and answers it with the first result', async () => {
    const status = await suite.cluster.status();
    const request: TxnRequest = {
      compares: [{ key: Buffer.from('{s}n'), target: { $case: 'exists', value: false } }],
      success: [{ op: { $case: 'put', value: { key: Buffer.from('{s}n'), value: Buffer.from('1'), ttlMs: 0 } } }],
      failure: [{ op: { $case: 'get', value: { key: Buffer.from('{s}n') } } }],
      session: { clientId: 'txn-replay', seq: 1 },
      epoch: 0,
    };
    const send = (address: string): Promise<TxnResponse> => {
      const raw = new KvServiceClient(address, credentials.createInsecure());
      return new Promise<TxnResponse>((resolve, reject) => raw.txn(request, (error, reply) => {
        raw.close();
        if (error === null) resolve(reply);
        else reject(error);
      }));
    };
    let first: TxnResponse | undefined;
    let leader = '';
    for (const node of status.nodes) {
      const answer = await send(node.address);
      if (answer.error === undefined) {
        first = answer;
        leader = node.address;
        break;
      }
    }
    expect(first?.succeeded, 'some node led the shard').to.equal(true);
    const replay = await send(leader);
    expect(replay).to.deep.equal(first);
    const third = await suite.kv.txn({ compare: [{ key: '{s}n', exists: false }], success: [], failure: [{ get: { key: '{s}n' } }] });
    expect(third.succeeded, 'the key exists: the put applied').to.equal(false);
  });

  it('refuses keys of two shards and broken limits with INVALID_ARGUMENT, changing nothing', async () => {
    const shards = (await suite.cluster.status()).shardCount;
    expect(shards).to.equal(8);
    const spanning = await rejection(suite.kv.txn({ success: [{ put: { key: 'plain-a', value: 'x' } }, { put: { key: 'plain-b', value: 'x' } }, { put: { key: 'plain-c', value: 'x' } }, { put: { key: 'plain-d', value: 'x' } }] }));
    expect(spanning.code).to.equal('INVALID_ARGUMENT');
    expect(spanning.message).to.match(/spans shards \d+ \(key "plain-a"\) and \d+ .*hash tag/);
    expect((await suite.kv.getMany(['plain-a', 'plain-b'])).map((r) => r.ok && r.entry)).to.deep.equal([null, null]);
    const tooMany = await rejection(suite.kv.txn({ success: Array.from({ length: 65 }, (_unused, i) => ({ put: { key: `{t}${i}`, value: 'x' } })) }));
    expect(tooMany.message).to.equal('transaction has 65 success operations: the limit is 64');
    expect((await rejection(suite.kv.txn({ success: [{ put: { key: '{t', value: 'x' } }] }))).message).to.match(/unbalanced brace/);
    expect((await rejection(suite.kv.txn({ compare: [{ key: '{t}a', version: 1, exists: true }] }))).message)
      .to.equal('compare 1 needs exactly one of value, version or exists, got version and exists');
    expect(await suite.kv.get('{t}0')).to.equal(null);
  });

  it('kvstore txn: a document on stdin or --file, JSON out, exit 0 / 4 / 2', async () => {
    const doc = { compare: [{ key: '{c}k', exists: false }], success: [{ put: { key: '{c}k', value: 'v1' } }, { get: { key: '{c}k' } }], failure: [{ get: { key: '{c}k' } }] };
    const first = await suite.cluster.cli(['txn'], { input: JSON.stringify(doc) });
    expect(first.code, first.stderr).to.equal(0);
    const parsed = JSON.parse(first.stdout) as { succeeded: boolean; results: Record<string, { key: string; value?: string; version: number }>[] };
    expect(parsed.succeeded).to.equal(true);
    expect(parsed.results[1]?.get).to.deep.include({ key: '{c}k', value: 'v1' });
    const second = await suite.cluster.cli(['txn'], { input: JSON.stringify(doc) });
    expect(second.code).to.equal(4);
    expect(JSON.parse(second.stdout)).to.deep.include({ succeeded: false });
    const spanning = await suite.cluster.cli(['txn'], { input: JSON.stringify({ success: [{ put: { key: 'x1', value: '1' } }, { put: { key: 'x2', value: '1' } }, { put: { key: 'x3', value: '1' } }, { put: { key: 'x4', value: '1' } }] }) });
    expect(spanning.code).to.equal(2);
    expect(spanning.stderr).to.match(/spans shards/);
    const typo = await suite.cluster.cli(['txn'], { input: '{"compares":[]}' });
    expect(typo.code).to.equal(2);
    expect(typo.stderr).to.contain('unknown field "compares"');
    const notJson = await suite.cluster.cli(['txn'], { input: '{' });
    expect(notJson.code).to.equal(2);
    const missing = await suite.cluster.cli(['txn', '--file', '/nonexistent/txn.json']);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.contain('ENOENT');
  });
});
