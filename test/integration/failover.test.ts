/**
 * Issue 4 test 2 and issue 5 "leader killed mid-stream": kill -9 the node leading the most shards
 * while 16 callers write; every call resolves or rejects retryably, every acknowledged write is
 * readable, none applied twice; every shard takes writes again and gets back to K live replicas.
 * Once in plaintext, once with mutual TLS (issue 17: the failover test passes on a TLS cluster).
 */
import { expect } from 'chai';
import { KVError } from '../../src/client/index.js';
import { printTailOnFailure, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { fullyReplicated, keysPerShard, pool } from './helpers.js';

// Plaintext, and with mutual TLS between every process and a client certificate (issue 17).
for (const tls of [false, true]) describe(`integration: failover after kill -9 of the busiest leader${tls ? ' (TLS)' : ''}`, function () {
  this.timeout(180_000);
  let cluster: TestCluster | undefined;

  before(async () => {
    cluster = await TestCluster.start({ nodes: 4, replicas: 3, shards: 16, downAfterSeconds: 3, tls });
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it('keeps every acknowledged write, applies none twice, and re-replicates', async () => {
    const kv = cluster!.client({ timeoutMs: 10_000 });
    await kv.init();
    const status = await waitFor('a fully replicated cluster', async () => {
      const current = await cluster!.status();
      return fullyReplicated(current) ? current : undefined;
    }, 30_000);
    const leaderCounts = new Map<string, number>();
    for (const shard of status.shards) if (shard.leader !== null) leaderCounts.set(shard.leader, (leaderCounts.get(shard.leader) ?? 0) + 1);
    const victim = [...leaderCounts.entries()].sort((a, b) => b[1] - a[1])[0]![0];

    const total = 1000;
    const acknowledged = new Map<string, number>(); // key → version returned by cas
    const failures: KVError[] = [];
    const writes = pool(total, 16, async (i) => {
      const key = `fo-${i}`;
      try {
        acknowledged.set(key, await kv.cas(key, 0, `value-${i}`)); // a second apply would be a CONFLICT
      } catch (error) {
        if (!(error instanceof KVError)) throw error;
        failures.push(error);
      }
    });
    await waitFor('200 acknowledged writes before the kill', () => acknowledged.size >= 200 || undefined, 30_000, 5);
    await cluster!.killNode(victim, 'SIGKILL');
    const acknowledgedAtKill = acknowledged.size;
    await writes;
    expect(acknowledgedAtKill).to.be.lessThan(total); // the kill landed mid-stream
    // The survivors say they cannot reach it (issue 19: unreachable peers are visible in status).
    await waitFor('a survivor to report the killed node unreachable', async () =>
      (await cluster!.status()).nodes.some((node) => node.id !== victim && node.peersUnreachable.includes(victim)), 20_000, 250);

    for (const failure of failures) {
      expect(failure.code, failure.message).to.not.equal('CONFLICT');
      expect(failure.retryable, `${failure.code}: ${failure.message}`).to.equal(true);
    }
    expect(acknowledged.size + failures.length).to.equal(total);
    expect(acknowledged.size).to.be.greaterThan(total / 2);

    // every shard accepts writes again
    const probeKeys = await keysPerShard('probe', 16);
    await waitFor('every shard to accept writes', async () => {
      await Promise.all(probeKeys.map((key) => kv.put(key, 'after-kill', { timeoutMs: 2000 })));
      return true;
    }, 30_000);

    // every acknowledged write is readable, at the version its cas returned
    await pool(total, 32, async (i) => {
      const key = `fo-${i}`;
      const version = acknowledged.get(key);
      const entry = await kv.getEntry(key);
      if (version !== undefined) {
        expect(entry?.value, key).to.equal(`value-${i}`);
        expect(entry?.version, key).to.equal(version);
      } else if (entry !== null) {
        expect(entry.value, key).to.equal(`value-${i}`); // a timed-out write may have applied, once
      }
    });

    // within the down timeout plus catch-up, every shard is back to 3 live replicas
    await waitFor('3 live replicas per shard without the killed node', async () => fullyReplicated(await cluster!.status(), [victim]), 90_000, 500);
    for (const key of probeKeys) expect(await kv.get(key)).to.equal('after-kill');
  });
});
