/**
 * `kvstore bench` with small numbers on local clusters (one per replication factor): it prints a
 * table per run, writes results.json with the documented fields, and the three charts as SVG and
 * PNG; every process it started is gone when it exits. `--mix txn` runs its transactions.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cluster.js';
import { killProcessesUsing } from './helpers.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

describe('kvstore bench', function () {
  this.timeout(240_000);
  let privateTmp = '';

  before(() => {
    privateTmp = mkdtempSync(join(tmpdir(), 'kvstore-bench-test-'));
  });
  after(() => {
    killProcessesUsing(privateTmp);
    rmSync(privateTmp, { recursive: true, force: true });
  });

  it('writes results.json with the documented fields and the charts', async () => {
    const out = join(privateTmp, 'out');
    const result = await runCli(
      ['bench', '--nodes', '2', '--replicas', '1,2', '--shards', '4', '--ops', '400', '--keys', '200', '--clients', '2',
        '--concurrency', '8', '--mix', '50', '--seed', '7', '--warmup', '1', '--out', out],
      { env: { ...process.env, TMPDIR: privateTmp }, timeoutMs: 200_000 },
    );
    const leaked = killProcessesUsing(privateTmp);
    expect(result.code, result.stderr).to.equal(0);
    expect(leaked, 'processes still running after the bench exited').to.deep.equal([]);
    expect(result.stdout).to.match(/nodes 2 {2}replicas 1 {2}shards 4: [\d,]+ ops\/s/);
    expect(result.stdout).to.match(/nodes 2 {2}replicas 2 {2}shards 4: [\d,]+ ops\/s/);
    expect(result.stdout).to.match(/keys per node/);
    expect(result.stdout.match(/^ {2}cpu per op: nodes \d+\.\d µs, clients \d+\.\d µs, manager \d+\.\d µs$/gm), 'a cpu line per run').to.have.length(2);
    expect(result.stderr).to.match(/then a 1 s warm-up, then 400 ops/);

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(results).to.include.keys('settings', 'machine', 'runs');
    expect(results['settings']).to.include({ nodes: 2, shards: 4, ops: 400, mix: 50, concurrency: 8, clients: 2, keys: 200, seed: 7, leaseReads: true, warmupSeconds: 1 });
    expect(results['machine']).to.have.keys('cpus', 'model', 'node', 'platform', 'memoryGiB');
    const runs = results['runs'] as Record<string, unknown>[];
    expect(runs.map((run) => run['replicas'])).to.deep.equal([1, 2]);
    for (const run of runs) {
      expect(run).to.include({ nodes: 2, shards: 4 });
      expect(run['ops'], 'successful ops').to.equal(400);
      expect(run['errors']).to.equal(0);
      expect(run['opsPerSec']).to.be.a('number').greaterThan(0);
      for (const op of ['get', 'put']) {
        const p = run[op] as Record<string, number>;
        expect(p).to.include.keys('p50', 'p90', 'p99', 'p999');
        expect(p['p50']).to.be.greaterThan(0);
        expect(p['p50']).to.be.at.most(p['p90'] ?? 0);
        expect(p['p99']).to.be.at.most(p['p999'] ?? 0);
      }
      // Both the nodes and the client workers do work for every operation; a reading of 0 means the window or the source is wrong.
      const cpu = run['cpuMicrosPerOp'] as Record<string, unknown>;
      expect(cpu).to.have.keys('nodes', 'manager', 'clients');
      expect(cpu['nodes'], 'node CPU µs per op').to.be.a('number').greaterThan(0);
      expect(cpu['clients'], 'client CPU µs per op').to.be.a('number').greaterThan(0);
      expect(cpu['manager'], 'manager CPU µs per op').to.be.a('number').at.least(0);
      const keysPerNode = run['keysPerNode'] as Record<string, number>;
      expect(Object.keys(keysPerNode)).to.deep.equal(['n1', 'n2']);
      const total = Object.values(keysPerNode).reduce((sum, count) => sum + count, 0);
      expect(total, 'every key counted once per replica').to.equal(200 * (run['replicas'] as number));
    }

    for (const name of ['throughput', 'latency', 'keys-per-node']) {
      const svg = readFileSync(join(out, `${name}.svg`), 'utf8');
      expect(svg, `${name}.svg`).to.match(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(existsSync(join(out, `${name}.png`)), `${name}.png`).to.equal(true);
      expect([...readFileSync(join(out, `${name}.png`)).subarray(0, 4)], `${name}.png is a PNG`).to.deep.equal(PNG_MAGIC);
    }
  });

  it('--tls: runs its local cluster with mutual TLS, the workers presenting the client certificate, and says so in results.json', async () => {
    const out = join(privateTmp, 'out-tls');
    const result = await runCli(
      ['bench', '--tls', '--nodes', '2', '--replicas', '2', '--shards', '4', '--ops', '300', '--keys', '100', '--clients', '2',
        '--concurrency', '8', '--out', out],
      { env: { ...process.env, TMPDIR: privateTmp }, timeoutMs: 200_000 },
    );
    const leaked = killProcessesUsing(privateTmp);
    expect(result.code, result.stderr).to.equal(0);
    expect(leaked, 'processes still running after the bench exited').to.deep.equal([]);
    expect(result.stderr).to.include('4 shards, TLS');
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { settings: Record<string, unknown>; runs: Record<string, unknown>[] };
    expect(results.settings['tls']).to.equal(true);
    expect(results.runs[0]?.['ops']).to.equal(300);
    expect(results.runs[0]?.['errors']).to.equal(0);
    expect(JSON.stringify(results), 'no key material in results.json').to.not.match(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('--mix txn: every op one two-key transaction, named in the table and in results.json', async () => {
    const out = join(privateTmp, 'out-txn');
    const result = await runCli(
      ['bench', '--mix', 'txn', '--nodes', '2', '--replicas', '2', '--shards', '4', '--ops', '300', '--keys', '100', '--clients', '2',
        '--concurrency', '8', '--out', out],
      { env: { ...process.env, TMPDIR: privateTmp }, timeoutMs: 200_000 },
    );
    const leaked = killProcessesUsing(privateTmp);
    expect(result.code, result.stderr).to.equal(0);
    expect(leaked, 'processes still running after the bench exited').to.deep.equal([]);
    expect(result.stdout).to.include('  one op: one transaction: if {gN}a exists, put {gN}a and {gN}b');
    expect(result.stdout).to.match(/^ {2}txn +300 /m);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { settings: Record<string, unknown>; runs: Record<string, unknown>[] };
    expect(results.settings).to.include({ mix: 0, mixName: 'txn', ttlMs: null });
    expect(results.settings['opDescription']).to.match(/^one transaction/);
    const run = results.runs[0] ?? {};
    expect(run).to.include({ ops: 300, txns: 300, gets: 0, puts: 0, errors: 0 });
    expect((run['txn'] as Record<string, number>)['count']).to.equal(300);
    const keysPerNode = run['keysPerNode'] as Record<string, number>;
    expect(Object.values(keysPerNode).reduce((sum, count) => sum + count, 0), 'the tagged keys, each on both replicas').to.equal(200);
  });

  it('refuses bad flags with exit 2 and one line', async () => {
    const tooManyReplicas = await runCli(['bench', '--nodes', '3', '--replicas', '1,5']);
    expect(tooManyReplicas.code).to.equal(2);
    expect(tooManyReplicas.stderr).to.match(/--replicas 5 is larger than --nodes 3/);
    const clash = await runCli(['bench', '--manager', '127.0.0.1:1', '--nodes', '3']);
    expect(clash.code).to.equal(2);
    expect(clash.stderr.trim().split('\n')).to.have.length(1);
    const leaseClash = await runCli(['bench', '--manager', '127.0.0.1:1', '--no-lease-reads']);
    expect(leaseClash.code).to.equal(2);
    expect(leaseClash.stderr).to.match(/drop --no-lease-reads/);
    const tlsClash = await runCli(['bench', '--manager', '127.0.0.1:1', '--tls']);
    expect(tlsClash.code).to.equal(2);
    expect(tlsClash.stderr).to.match(/with --manager give --tls-ca/);
    const caWithoutManager = await runCli(['bench', '--tls-ca', '/nonexistent/ca.crt']);
    expect(caWithoutManager.code).to.equal(2);
    expect(caWithoutManager.stderr).to.match(/are for --manager; local clusters take --tls/);
    const badWarmup = await runCli(['bench', '--warmup', '-1']);
    expect(badWarmup.code).to.equal(2);
    expect(badWarmup.stderr).to.match(/--warmup/);
    for (const [args, message] of [
      [['--mix', 'most'], /--mix wants a percentage of gets \(a whole number in 0…100\) or a named workload \(txn, ttl\), got "most"/],
      [['--mix', 'txn', '--key-bytes', '6'], /--key-bytes 6 is too short for --mix txn with 10000 keys/],
    ] as const) {
      const refused = await runCli(['bench', ...args]);
      expect(refused.code, args.join(' ')).to.equal(2);
      expect(refused.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(refused.stderr, args.join(' ')).to.match(message);
    }
    const longKeys = await runCli(['bench', '--key-bytes', '21']);
    expect(longKeys.code).to.equal(2);
    expect(longKeys.stderr).to.match(/--key-bytes 21/);
  });
});
