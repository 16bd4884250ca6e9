/**
 * Issue 4, tests 1 and 7: a 7-node cluster serves put/get/del through the client and the CLI with
 * balanced placement; bad input is one clear line, a non-zero exit, and writes nothing.
 */
import { expect } from 'chai';
import { printTailOnFailure, runCli, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { balanced, fullyReplicated, loadPerNode, pool } from './helpers.js';

describe('integration: 7 nodes, K=3', function () {
  this.timeout(180_000);
  let cluster: TestCluster | undefined;

  before(async () => {
    cluster = await TestCluster.start({ nodes: 7, replicas: 3, shards: 16 });
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it('places 3 replicas per shard on distinct nodes, balanced across nodes (test 1)', async () => {
    const status = await waitFor('balanced placement', async () => {
      const current = await cluster!.status();
      return fullyReplicated(current) && balanced(current, 2) ? current : undefined;
    }, 30_000);
    const { replicas, leaders } = loadPerNode(status);
    expect(replicas.size).to.equal(7);
    for (const count of replicas.values()) expect(Math.abs(count - (16 * 3) / 7)).to.be.at.most(1);
    for (const count of leaders.values()) expect(Math.abs(count - 16 / 7)).to.be.at.most(2);
  });

  it('puts, gets and deletes 1,000 keys through the client (test 1)', async () => {
    const kv = cluster!.client();
    await kv.init();
    const keys = Array.from({ length: 1000 }, (_unused, i) => `key-${i}`);
    await pool(keys.length, 64, async (i) => kv.put(keys[i]!, `value-${i}`));
    await pool(keys.length, 64, async (i) => {
      expect(await kv.get(keys[i]!)).to.equal(`value-${i}`);
    });
    await pool(500, 64, async (i) => {
      expect(await kv.delete(keys[i]!)).to.equal(true);
    });
    await pool(keys.length, 64, async (i) => {
      expect(await kv.get(keys[i]!)).to.equal(i < 500 ? null : `value-${i}`);
    });
  });

  it('puts, gets and deletes through the CLI, agreeing with the client (test 1)', async () => {
    const kv = cluster!.client();
    for (let i = 0; i < 3; i++) {
      const put = await cluster!.cli(['put', `cli-${i}`, `cli-value-${i}`]);
      expect(put.code, put.stderr).to.equal(0);
      expect(await kv.get(`cli-${i}`)).to.equal(`cli-value-${i}`);
      await kv.put(`cli-${i}`, `client-value-${i}`);
      const get = await cluster!.cli(['get', `cli-${i}`]);
      expect(get.code, get.stderr).to.equal(0);
      expect(get.stdout).to.equal(`client-value-${i}\n`);
      expect((await cluster!.cli(['del', `cli-${i}`])).code).to.equal(0);
      const miss = await cluster!.cli(['get', `cli-${i}`]);
      expect(miss.code).to.equal(1);
      expect(miss.stderr.trim()).to.equal('not found');
    }
  });

  it('refuses bad input with one clear line and a non-zero exit, writing nothing (test 7)', async () => {
    const oneLine = (text: string): void => {
      expect(text.trim().split('\n')).to.have.length(1);
    };
    const longKey = await cluster!.cli(['put', 'k'.repeat(21), 'v']);
    expect(longKey.code).to.equal(2);
    expect(longKey.stderr).to.match(/20 bytes/);
    oneLine(longKey.stderr);
    const utf8Key = await cluster!.cli(['put', '語'.repeat(7), 'v']); // 7 characters, 21 bytes
    expect(utf8Key.code).to.equal(2);
    oneLine(utf8Key.stderr);
    const bigValue = await cluster!.cli(['put', 'bad-1', 'v'.repeat(1025)]);
    expect(bigValue.code).to.equal(2);
    expect(bigValue.stderr).to.match(/1024/);
    oneLine(bigValue.stderr);
    const emptyKey = await cluster!.cli(['put', '', 'v']);
    expect(emptyKey.code).to.equal(2);
    oneLine(emptyKey.stderr);
    const unknownFlag = await cluster!.cli(['put', 'bad-2', 'v', '--frobnicate']);
    expect(unknownFlag.code).to.equal(2);
    oneLine(unknownFlag.stderr);
    const missingArgument = await cluster!.cli(['put', 'bad-3']);
    expect(missingArgument.code).to.equal(2);
    oneLine(missingArgument.stderr);
    const unreachable = await runCli(['put', 'bad-4', 'v', '--manager', '127.0.0.1:1']);
    expect(unreachable.code).to.equal(3);
    oneLine(unreachable.stderr);
    const badManager = await runCli(['get', 'k', '--manager', 'nonsense']);
    expect(badManager.code).to.equal(2);
    oneLine(badManager.stderr);
    for (const key of ['bad-1', 'bad-2', 'bad-3', 'bad-4']) expect((await cluster!.cli(['get', key])).code).to.equal(1);
  });

  it('status prints the documented JSON and a table', async () => {
    const json = await cluster!.cli(['status', '--json']);
    expect(json.code).to.equal(0);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(parsed).to.include.keys('manager', 'shardCount', 'replicationFactor', 'nodes', 'shards');
    expect(parsed['shardCount']).to.equal(16);
    const table = await cluster!.cli(['status']);
    expect(table.code).to.equal(0);
    expect(table.stdout).to.match(/NODE\s+ADDRESS\s+HEALTH\s+REPLICAS\s+LEADERS\s+KEYS/);
    const wait = await cluster!.cli(['status', '--wait', '--timeout', '10']);
    expect(wait.code).to.equal(0);
  });
});
