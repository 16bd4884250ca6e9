/**
 * Issue 4 tests 3, 4 and 5: a node killed with -9 and restarted from its data dir catches up; the
 * cluster keeps serving while the manager is down and the restarted manager resumes from its state;
 * a whole-cluster kill -9 and restart keeps every acknowledged write.
 */
import { expect } from 'chai';
import { printTailOnFailure, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { fullyReplicated, pool } from './helpers.js';

describe('integration: restarts from data dirs', function () {
  this.timeout(180_000);
  let cluster: TestCluster | undefined;
  const written = new Map<string, string>();

  async function writeBatch(prefix: string, count: number): Promise<void> {
    const kv = cluster!.client();
    await pool(count, 32, async (i) => {
      const key = `${prefix}-${i}`;
      await kv.put(key, `${prefix}-value-${i}`);
      written.set(key, `${prefix}-value-${i}`);
    });
  }

  async function expectAllReadable(): Promise<void> {
    const kv = cluster!.client({ timeoutMs: 10_000 });
    const keys = [...written.keys()];
    await pool(keys.length, 32, async (i) => {
      const key = keys[i]!;
      expect(await kv.get(key), key).to.equal(written.get(key));
    });
  }

  before(async () => {
    cluster = await TestCluster.start({ nodes: 3, replicas: 3, shards: 8 });
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it('a node killed with -9 and restarted catches up; nothing is lost (test 3)', async () => {
    await writeBatch('before', 200);
    await cluster!.killNode('n1', 'SIGKILL');
    await writeBatch('while-down', 200);
    cluster!.restartNode('n1');
    // With N = K = 3 every node holds every shard, so a caught-up node holds every key.
    await waitFor('n1 to catch up', async () => {
      const status = await cluster!.status();
      const n1 = status.nodes.find((node) => node.id === 'n1');
      return n1?.health === 'up' && n1.keys === written.size && fullyReplicated(status);
    }, 60_000, 500);
    await expectAllReadable();
  });

  it('reads and writes continue with the manager down; a restarted manager resumes (test 5)', async () => {
    const kv = cluster!.client();
    await kv.init();
    const before = await cluster!.status();
    await cluster!.killManager('SIGKILL');
    for (let i = 0; i < 100; i++) {
      await kv.put(`no-manager-${i}`, `v-${i}`);
      written.set(`no-manager-${i}`, `v-${i}`);
    }
    for (let i = 0; i < 100; i++) expect(await kv.get(`no-manager-${i}`)).to.equal(`v-${i}`);
    cluster!.restartManager();
    const after = await waitFor('the restarted manager to see every node up and every leader', async () => {
      const status = await cluster!.status();
      return status.nodes.length === 3 && status.nodes.every((node) => node.health === 'up') && fullyReplicated(status) ? status : undefined;
    }, 60_000, 500);
    expect(after.shardCount).to.equal(before.shardCount);
    for (const shard of after.shards) {
      const earlier = before.shards.find((candidate) => candidate.shard === shard.shard);
      expect(shard.epoch).to.equal(earlier?.epoch);
      expect([...shard.replicas].sort()).to.deep.equal([...(earlier?.replicas ?? [])].sort());
    }
  });

  it('a whole-cluster kill -9 and restart keeps every acknowledged write (test 4)', async () => {
    await writeBatch('before-crash', 200);
    await cluster!.stopAll(); // first a graceful stop (SIGTERM) and restart …
    cluster!.restartAll();
    await cluster!.waitForLeaders(60_000);
    await writeBatch('last', 100);
    await cluster!.crashAll(); // … then a crash of everything at once
    cluster!.restartAll();
    await cluster!.waitForLeaders(60_000);
    await expectAllReadable();
  });
});
