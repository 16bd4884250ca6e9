/**
 * Issue 18 against a real local cluster: keys that expire. A read at or after the expiry finds
 * nothing, and keeps finding nothing — also on the new leader after the old one is killed; the
 * leaders remove expired keys without any read (counted in /metrics); `kvstore put --ttl` and
 * `get --json` show it; bad TTLs are refused naming the limit.
 */
import { expect } from 'chai';
import { loadHasher, shardForKey } from '../../src/common/index.js';
import { type TestCluster, useTestCluster } from '../support/cluster.js';
import { rejection } from '../support/rejection.js';
import { waitFor } from '../support/wait-for.js';

async function expiredTotal(cluster: TestCluster, id: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.nodeMetricsPort(id)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('kvstore_node_keys_expired_total '));
  return Number(line?.split(' ')[1] ?? 'NaN');
}

describe('integration: keys that expire (issue 18)', function () {
  this.timeout(180_000);
  const suite = useTestCluster({ nodes: 3, replicas: 3, shards: 4 });

  it('reports the expiry, then reads nothing from the moment it passed, for good', async () => {
    await suite.kv.put('short', 'lived', { ttlMs: 800 });
    await suite.kv.put('forever', 'here');
    const entry = await suite.kv.getEntry('short');
    expect(entry?.value).to.equal('lived');
    expect(entry?.expiresInMs).to.be.within(1, 800);
    expect(entry?.expiresAtMs).to.be.greaterThan(Date.now() - 60_000);
    expect((await suite.kv.getEntry('forever'))?.expiresAtMs).to.equal(undefined);
    const expiresAt = performance.now() + (entry?.expiresInMs ?? 0);
    await waitFor('the key to expire', async () => (await suite.kv.get('short')) === null, 10_000, 20);
    expect(performance.now(), 'not before its TTL ran out').to.be.at.least(expiresAt - 50);
    for (let i = 0; i < 20; i++) expect(await suite.kv.get('short'), 'it never comes back').to.equal(null);
    expect(await suite.kv.get('forever')).to.equal('here');
  });

  it('leaders remove expired keys with no read at all, in few log entries, counted in /metrics', async () => {
    const before = await Promise.all(['n1', 'n2', 'n3'].map((id) => expiredTotal(suite.cluster, id)));
    const keys = Array.from({ length: 40 }, (_unused, i) => `batch-${i}`);
    await Promise.all(keys.map((key) => suite.kv.put(key, 'x', { ttlMs: 300 })));
    // Every replica of every shard applies the removals: 40 keys × 3 replicas.
    await waitFor('the keys to be removed', async () => {
      const now = await Promise.all(['n1', 'n2', 'n3'].map((id) => expiredTotal(suite.cluster, id)));
      return now.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0) >= 40 * 3;
    }, 15_000, 100);
    expect((await suite.kv.getMany(keys)).every((result) => result.ok && result.entry === null)).to.equal(true);
  });

  it('an expired key stays expired on the new leader after the old one is killed (kill -9); a live one stays', async () => {
    await suite.kv.put('{f}gone', 'x', { ttlMs: 300 });
    await suite.kv.put('{f}kept', 'y', { ttlMs: 120_000 });
    await waitFor('the key to expire', async () => (await suite.kv.get('{f}gone')) === null, 10_000, 20);
    const status = await suite.cluster.status();
    await loadHasher();
    const shardId = shardForKey(Buffer.from('f'), status.shardCount); // the hash tag decides
    const victim = status.shards.find((s) => s.shard === shardId)?.leader;
    if (victim === undefined || victim === null) throw new Error(`shard ${shardId} has no leader`);
    await suite.cluster.killNode(victim);
    const after = suite.cluster.client({ timeoutMs: 15_000 });
    try {
      expect(await after.get('{f}gone'), 'expired before the failover, expired after it').to.equal(null);
      expect(await after.get('{f}kept')).to.equal('y');
    } finally {
      await after.finalize();
      suite.cluster.restartNode(victim);
      await suite.cluster.waitForLeaders(30_000);
    }
  });

  it('kvstore put --ttl, get --json with the expiry; bad TTLs refused with the limit, nothing written', async () => {
    const put = await suite.cluster.cli(['put', 'cli-ttl', 'v', '--ttl', '30s']);
    expect(put.code, put.stderr).to.equal(0);
    const get = await suite.cluster.cli(['get', 'cli-ttl', '--json']);
    const parsed = JSON.parse(get.stdout) as { value: string; expiresInMs: number; expiresAtMs: number };
    expect(parsed.value).to.equal('v');
    expect(parsed.expiresInMs).to.be.within(25_000, 30_000);
    for (const bad of ['-5s', 'soon', '0s', '400d']) {
      const refused = await suite.cluster.cli(['put', 'cli-ttl-bad', 'v', '--ttl', bad]);
      expect(refused.code, `${bad}: ${refused.stderr}`).to.equal(2);
    }
    expect((await suite.cluster.cli(['put', 'cli-ttl-bad', 'v', '--ttl', '400d'])).stderr).to.contain('365 days');
    expect(await suite.kv.get('cli-ttl-bad')).to.equal(null);
    expect((await rejection(suite.kv.put('k', 'v', { ttlMs: -1 }))).message).to.contain('from 1 to 31536000000 (365 days)');
    expect((await rejection(suite.kv.put('k', 'v', { ttlMs: 0 }))).code).to.equal('INVALID_ARGUMENT');
    const txn = await suite.cluster.cli(['txn'], { input: JSON.stringify({ success: [{ put: { key: '{c}t', value: 'v', ttl: '500ms' } }] }) });
    expect(txn.code, txn.stderr).to.equal(0);
    expect((await suite.kv.getEntry('{c}t'))?.expiresInMs).to.be.within(1, 500);
  });
});
