/**
 * Issue 4 test 6: a node joining a running cluster receives replicas and leaders until the cluster
 * is balanced again (replicas per node ±1 of S·K/N, leaders ±2 of S/N); data stays readable.
 */
import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { printTailOnFailure, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { balanced, fullyReplicated, loadPerNode, pool } from './helpers.js';

describe('integration: a node joins', function () {
  this.timeout(180_000);
  let cluster: TestCluster | undefined;

  before(async () => {
    cluster = await TestCluster.start({ nodes: 3, replicas: 3, shards: 12 });
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it('rebalances replicas and leaders onto the new node', async () => {
    const kv = cluster!.client({ timeoutMs: 10_000 });
    await pool(300, 32, async (i) => kv.put(`join-${i}`, `v-${i}`));
    const added = await cluster!.addNode();
    const status = await waitFor('replicas and leaders to rebalance onto the new node', async () => {
      const current = await cluster!.status();
      return current.nodes.length === 4 && fullyReplicated(current) && balanced(current, 2) ? current : undefined;
    }, 120_000, 500);
    const { replicas, leaders } = loadPerNode(status);
    expect(replicas.get(added)).to.be.within(8, 10); // 12·3/4 = 9
    expect(leaders.get(added)).to.be.at.least(1); // 12/4 = 3, ±2
    await pool(300, 32, async (i) => {
      expect(await kv.get(`join-${i}`)).to.equal(`v-${i}`);
    });
    // Its replicas came as snapshots, each spooled to disk as it arrived, then read back and deleted.
    const dataDir = join(cluster!.dir, added);
    expect((await readdir(join(dataDir, 'snap'))).filter((name) => name.endsWith('.snap')).length).to.be.at.least(8);
    expect(await readdir(join(dataDir, 'snap-recv')), 'no spool file left once every snapshot is installed').to.deep.equal([]);
  });
});
