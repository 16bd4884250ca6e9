/**
 * `kvstore driver` against real clusters: safe mode (update()) loses nothing, both on a given cluster
 * and on the local cluster it starts itself (which it must stop: no process is left behind); unsafe
 * mode (plain get + put) on 2 hot carts with 8 shoppers loses updates, and the test says so plainly if
 * it ever fails to.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, TestCluster } from '../support/cluster.js';
import { killProcessesUsing, lostUpdates } from './helpers.js';

const SEED = process.env['SEED'] ?? String(Date.now() % 100_000);

describe('kvstore driver', function () {
  this.timeout(240_000);
  let cluster: TestCluster | undefined;
  let privateTmp = '';

  before(async () => {
    privateTmp = mkdtempSync(join(tmpdir(), 'kvstore-driver-test-'));
    cluster = await TestCluster.start({ nodes: 3, replicas: 3, shards: 8 });
  });
  after(async () => {
    await cluster?.stopAll();
    killProcessesUsing(privateTmp);
    rmSync(privateTmp, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`driver test failed with SEED=${SEED}\n`);
  });

  it('safe mode: update() loses no update on hot carts (lost updates: 0, exit 0)', async () => {
    const result = await runCli(['driver', '--manager', cluster?.managerAddress ?? '', '--shoppers', '8', '--carts', '3', '--ops', '240', '--seed', SEED], { timeoutMs: 120_000 });
    expect(result.code, result.stderr).to.equal(0);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    expect(result.stdout).to.match(/Safe mode .* 240 cart changes on 3 carts .* p50 [\d.]+ ms, p99 [\d.]+ ms; \d+ conflicts were retried by update\(\)/s);
  });

  it('unsafe mode: plain get + put on 2 carts with 8 shoppers loses updates', async () => {
    const ops = 400;
    const result = await runCli(['driver', '--manager', cluster?.managerAddress ?? '', '--shoppers', '8', '--carts', '2', '--ops', String(ops), '--unsafe', '--seed', SEED], { timeoutMs: 120_000 });
    expect(result.code, `unsafe mode exits 0 even when it loses updates; stderr: ${result.stderr}`).to.equal(0);
    const lost = lostUpdates(result.stdout);
    expect(lost, `no "lost updates: N" line in: ${result.stdout}`).to.be.a('number');
    if (lost === 0) {
      expect.fail(`unsafe mode lost no update in ${ops} ops by 8 shoppers on 2 carts (SEED=${SEED}): this run could not demonstrate ` +
        `lost updates — the shoppers' get + put never overlapped. Output: ${result.stdout}`);
    }
    expect(lost).to.be.within(1, 2);
    expect(result.stdout).to.match(/Unsafe mode .*differ from the shoppers' ledgers/s);
  });

  it('without --manager: runs on its own local 3-node cluster, loses nothing, and stops the cluster', async () => {
    const result = await runCli(['driver', '--shoppers', '4', '--carts', '5', '--ops', '60', '--seed', SEED], {
      env: { ...process.env, TMPDIR: privateTmp },
      timeoutMs: 150_000,
    });
    const leaked = killProcessesUsing(privateTmp);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.match(/local cluster ready: manager 127\.0\.0\.1:\d+/);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    expect(leaked, 'processes of the local cluster still running after the driver exited').to.deep.equal([]);
  });

  it('refuses bad flags with exit 2 and one line', async () => {
    const both = await runCli(['driver', '--ops', '10', '--duration', '5']);
    expect(both.code).to.equal(2);
    expect(both.stderr.trim().split('\n')).to.have.length(1);
    const tooMany = await runCli(['driver', '--shoppers', '65']);
    expect(tooMany.code).to.equal(2);
    expect(tooMany.stderr).to.match(/--shoppers/);
  });
});
