/**
 * `kvstore driver` against real clusters: safe mode (update()) loses nothing, both on a given cluster
 * and on the local cluster it starts itself (which it must stop: no process is left behind); unsafe
 * mode (plain get + put) on 2 hot carts with 8 shoppers loses updates, and the test says so plainly if
 * it ever fails to. `--checkout` (issue 18): shoppers check carts out into orders in one transaction
 * and the driver proves every item added is in a cart or in exactly one order, on hot carts and while
 * the node leading a cart's shard is killed and restarted. `--cart-ttl 1s`: every cart write carries a
 * TTL and a quarter of the carts is left alone at a time, so some expire; the checks account for them
 * (`expired carts: E`), with and without --checkout.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHasher, shardForKey } from '../../src/common/index.js';
import { runCli, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
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
    expect(result.stdout, 'no checkout line without --checkout').to.not.match(/^checkout:/m);
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

  it('--checkout: carts become orders in one transaction; every item is in a cart or exactly one order', async () => {
    const result = await runCli(['driver', '--manager', cluster?.managerAddress ?? '', '--checkout', '--checkout-percent', '20', '--shoppers', '8', '--carts', '3', '--ops', '300', '--seed', SEED], { timeoutMs: 120_000 });
    expect(result.code, `${result.stdout}\n${result.stderr}`).to.equal(0);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    const orders = checkoutOrders(result.stdout);
    expect(orders, result.stdout).to.be.greaterThan(0);
    expect(result.stdout).to.match(new RegExp(`Checkout mode .* 300 cart changes \\(${orders} of them checkouts\\) on 3 carts`, 's'));
    // The first checkout run on this cluster, so its orders are numbered from 1, and at most 300 numbers were taken: every order
    // the cluster holds is this run's — as many as reported, each the items of a cart. (The next test's run numbers after them.)
    const keys = [0, 1, 2].flatMap((cart) => Array.from({ length: 300 }, (_, i) => `{u${cart}}order:${i + 1}`));
    const found = ((await cluster?.client().getMany(keys)) ?? []).flatMap((read) => {
      if (!read.ok) throw read.error;
      return read.entry === null ? [] : [read.entry.value];
    });
    expect(found).to.have.length(orders);
    for (const value of found) expect(value).to.match(/^\{"items":\{"[a-z]+":\[\d+(,\d+)*\]/);
  });

  it('--checkout while the node leading a cart\'s shard is killed and restarted: 0 lost, 0 duplicated', async () => {
    const test = cluster;
    if (test === undefined) throw new Error('no cluster');
    await loadHasher();
    const carts = 4;
    const running = runCli(['driver', '--manager', test.managerAddress, '--checkout', '--shoppers', '8', '--carts', String(carts), '--duration', '12', '--seed', SEED], { timeoutMs: 150_000 });
    const client = test.client();
    const firstOrders = Array.from({ length: carts }, (_, cart) => `{u${cart}}order:1`);
    await waitFor('the driver to check a cart out', async () => (await client.getMany(firstOrders)).some((result) => result.ok && result.entry !== null), 60_000);
    const shard = shardForKey(Buffer.from('{u0}cart'), test.shards);
    const victim = (await test.status()).shards.find((entry) => entry.shard === shard)?.leader ?? 'n1';
    await test.killNode(victim);
    await waitFor(`every shard to elect a leader other than ${victim}`, async () => (await test.status()).shards.every((entry) => entry.leader !== null && entry.leader !== victim), 30_000);
    test.restartNode(victim);
    await test.waitForLeaders(30_000);
    const result = await running;
    expect(result.code, `${result.stdout}\n${result.stderr}`).to.equal(0);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    expect(checkoutOrders(result.stdout), result.stdout).to.be.greaterThan(0);
  });

  it('--cart-ttl 1s: abandoned carts expire, and every cart\'s last life matches the ledgers', async () => {
    const result = await runCli(['driver', '--manager', cluster?.managerAddress ?? '', '--cart-ttl', '1s', '--shoppers', '4', '--carts', '8', '--duration', '5', '--seed', SEED], { timeoutMs: 60_000 });
    expect(result.code, `${result.stdout}\n${result.stderr}`).to.equal(0);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    expect(expiredCarts(result.stdout), result.stdout).to.be.greaterThan(0);
    expect(result.stdout).to.match(/Safe mode \(read, change, then a transaction that compares the version and puts the cart with its TTL; .* Carts expire 1 s after their last write, .* a cart expired \d+ times, taking -?\d+ item units with it\. Every cart matches/s);
    expect(result.stdout, 'no cart vanished before its TTL allowed').to.not.match(/^vanished carts:/m);
    expect(result.stdout, 'no checkout line without --checkout').to.not.match(/^checkout:/m);
  });

  it('--checkout --cart-ttl 1s: every item is in a cart, in exactly one order, or expired with its cart', async () => {
    const result = await runCli(['driver', '--manager', cluster?.managerAddress ?? '', '--checkout', '--checkout-percent', '20', '--cart-ttl', '1s', '--shoppers', '4', '--carts', '8', '--duration', '5', '--seed', SEED], { timeoutMs: 60_000 });
    expect(result.code, `${result.stdout}\n${result.stderr}`).to.equal(0);
    expect(lostUpdates(result.stdout), result.stdout).to.equal(0);
    expect(expiredCarts(result.stdout), result.stdout).to.be.greaterThan(0);
    expect(checkoutOrders(result.stdout), result.stdout).to.be.greaterThan(0);
    expect(result.stdout, 'the checkout line counts the items that expired with their cart').to.match(/^checkout: \d+ orders, 0 lost, 0 duplicated, \d+ expired with their cart$/m);
    expect(result.stdout).to.not.match(/^vanished carts:/m);
  });

  it('refuses bad flags with exit 2 and one line', async () => {
    const both = await runCli(['driver', '--ops', '10', '--duration', '5']);
    expect(both.code).to.equal(2);
    expect(both.stderr.trim().split('\n')).to.have.length(1);
    const tooMany = await runCli(['driver', '--shoppers', '65']);
    expect(tooMany.code).to.equal(2);
    expect(tooMany.stderr).to.match(/--shoppers/);
    for (const [args, flag] of [
      [['--checkout-percent', '20'], /--checkout-percent needs --checkout/],
      [['--checkout', '--unsafe'], /--checkout or --unsafe/],
      [['--checkout', '--checkout-percent', '0'], /--checkout-percent/],
      [['--cart-ttl', '0'], /--cart-ttl wants a duration/],
      [['--cart-ttl', 'soon'], /--cart-ttl wants a duration/],
      [['--cart-ttl', '400d'], /--cart-ttl wants at most 365 days/],
    ] as const) {
      const refused = await runCli(['driver', ...args]);
      expect(refused.code, args.join(' ')).to.equal(2);
      expect(refused.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(refused.stderr).to.match(flag);
    }
  });
});

/**
 * The N of `checkout: N orders, 0 lost, 0 duplicated` (with `--cart-ttl` followed by `, X expired
 * with their cart`); fails the test when the line is missing or reports a lost or duplicated item.
 */
function checkoutOrders(stdout: string): number {
  const match = /^checkout: (\d+) orders, (\d+) lost, (\d+) duplicated(?:, \d+ expired with their cart)?$/m.exec(stdout);
  if (match === null) expect.fail(`no "checkout: N orders, L lost, D duplicated" line in: ${stdout}`);
  expect(`${match[2]} lost, ${match[3]} duplicated`, stdout).to.equal('0 lost, 0 duplicated');
  return Number(match[1]);
}

/** The E of `expired carts: E`; fails the test when the line is missing. */
function expiredCarts(stdout: string): number {
  const match = /^expired carts: (\d+)$/m.exec(stdout);
  if (match === null) expect.fail(`no "expired carts: E" line in: ${stdout}`);
  return Number(match[1]);
}
