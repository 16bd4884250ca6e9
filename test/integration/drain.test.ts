/**
 * Issue 19, `kvstore node drain ID` against real processes: every replica and leadership moves off
 * the node while clients keep reading what was written; a drain that would leave shards under K
 * live replicas is refused (exit 4), an unknown node is bad input (exit 2); `--cancel` ends it.
 */
import { expect } from 'chai';
import { runCli, useTestCluster } from '../support/cluster.js';

describe('integration: node drain (issue 19)', function () {
  this.timeout(240_000);
  const suite = useTestCluster({ nodes: 4, replicas: 3, shards: 8 });

  it('moves every replica and leadership off the node; the data stays; status says draining', async () => {
    const keys = Array.from({ length: 40 }, (_unused, i) => `drain-${i}`);
    await suite.kv.putMany(keys.map((key) => [key, `v-${key}`] as const));
    const before = (await suite.cluster.status()).nodes.find((node) => node.id === 'n4');
    expect(before?.replicas, 'n4 holds replicas').to.be.greaterThan(0);
    const drain = await suite.cluster.cli(['node', 'drain', 'n4', '--timeout', '120'], { timeoutMs: 130_000 });
    expect(drain.code, drain.stderr).to.equal(0);
    expect(drain.stderr).to.contain('n4: drained: it holds no replica and no leadership');
    const status = await suite.cluster.status();
    const n4 = status.nodes.find((node) => node.id === 'n4');
    expect(n4).to.deep.include({ replicas: 0, leaders: 0, draining: true });
    expect(status.shards.every((shard) => shard.replicas.length === 3 && !shard.replicas.includes('n4'))).to.equal(true);
    const read = await suite.kv.getMany(keys);
    expect(read.map((result) => (result.ok ? result.entry?.value : 'error'))).to.deep.equal(keys.map((key) => `v-${key}`));
    const table = await suite.cluster.cli(['status']);
    expect(table.stdout).to.match(/n4\s+\S+\s+up \(draining\)/);
  });

  it('refuses a drain that would leave shards under K live replicas (exit 4), an unknown node (exit 2); --cancel ends a drain', async () => {
    const refused = await suite.cluster.cli(['node', 'drain', 'n3']);
    expect(refused.code, refused.stderr).to.equal(4);
    expect(refused.stderr).to.contain('draining n3 would leave shards under 3 live replicas');
    expect((await suite.cluster.status()).nodes.find((node) => node.id === 'n3')?.draining).to.equal(false);
    const unknown = await suite.cluster.cli(['node', 'drain', 'n9']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.contain('no node n9');
    const cancel = await suite.cluster.cli(['node', 'drain', 'n4', '--cancel']);
    expect(cancel.code, cancel.stderr).to.equal(0);
    expect((await suite.cluster.status()).nodes.find((node) => node.id === 'n4')?.draining).to.equal(false);
  });

  it('kvstore node without its required options still says which one is missing', async () => {
    const result = await runCli(['node', '--port', '7999']);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.contain("error: required option '--id <id>' not specified");
  });
});
