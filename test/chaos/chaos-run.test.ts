/**
 * End-to-end chaos (issue 7): a seeded 30-second `kvstore chaos` run with kill, pause and leader
 * faults against its own 5-node cluster — with mutual TLS between every process and client
 * certificates (issue 17, `--tls`) — must report a linearizable history, no lost write and a
 * recovered cluster, with transactions on hash-tagged key groups among its operations (issue 18:
 * on by default, checked as one operation on the keys each names) and puts with a TTL (a third of
 * them here, `--ttl-fraction 0.3`), some of whose keys expire during the run and are read absent,
 * which the checker explains by their expiry; and the unsafe test-only flag and bad fractions are
 * refused.
 * Longer runs are the documented command: `kvstore chaos --duration 60 --out DIR`.
 * SEED=n replays a fault schedule.
 */
import { expect } from 'chai';
import { historyFromJsonLines, keysOf, MAX_TTL_MS, MIN_TTL_MS } from '../../src/chaos/index.js';
import { runCli } from '../support/cluster.js';
import { ChaosProcess } from './chaos-process.js';

const SEED = process.env['SEED'] === undefined ? 11 : Number(process.env['SEED']);

describe('kvstore chaos', function () {
  this.timeout(300_000);
  let chaos: ChaosProcess | undefined;

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && chaos !== undefined) {
      process.stderr.write(`chaos run failed (SEED=${SEED}); timeline:\n${chaos.file('timeline.txt') ?? '(none)'}\n`);
    }
    chaos?.cleanup();
    chaos = undefined;
  });

  it(`survives 30 s of kill, pause and leader faults on a TLS cluster with a linearizable history, transactions and expiring keys included (SEED=${SEED})`, async () => {
    chaos = new ChaosProcess();
    const args = ['--tls', '--duration', '30', '--faults', 'kill,pause,leader', '--interval', '4', '--clients', '4', '--keys', '8', '--ttl-fraction', '0.3'];
    const result = await chaos.run([...args, '--seed', String(SEED)], { timeoutMs: 280_000 });
    expect(result.stderr).to.include('mutual TLS');
    const verdict = /^linearizable: .*$/m.exec(result.stdout)?.[0];
    expect(verdict, `${result.stdout}\n${result.stderr.slice(-2000)}`).to.match(/^linearizable: yes /);
    expect(result.code).to.equal(0);
    const opsChecked = Number(/ops checked: (\d+)/.exec(verdict ?? '')?.[1]);
    const faults = Number(/faults injected: (\d+)/.exec(verdict ?? '')?.[1]);
    expect(opsChecked).to.be.greaterThan(100);
    expect(faults).to.be.at.least(3);
    expect(verdict).to.include('lost writes: 0').and.include('recovered: yes');

    const transactions = /^transactions: (\d+) \((\d+) committed, (\d+) compares failed, (\d+) unknown\) on (\d+) key groups?/m.exec(result.stdout);
    expect(transactions, result.stdout).to.not.equal(null);
    const [, total, committed, compareFailed, , groups] = (transactions ?? []).map(Number);
    expect(total).to.be.greaterThan(20);
    expect(committed).to.be.greaterThan(0);
    expect(compareFailed).to.be.greaterThan(0); // workers race on the groups, so some compares must fail
    expect(groups).to.equal(2); // one group per four keys
    expect(chaos.file('report.txt')).to.include(transactions?.[0] ?? 'transactions:');

    const ttl = /^ttl: (\d+) puts with a TTL \((\d+) in transactions\); (\d+) reads? found a key expired \((\d+) expirations?\)$/m.exec(result.stdout);
    expect(ttl, result.stdout).to.not.equal(null);
    const [, ttlPuts, ttlInTransactions, expiredReads, expirations] = (ttl ?? []).map(Number);
    expect(ttlPuts).to.be.greaterThan(10);
    expect(ttlInTransactions).to.be.greaterThan(0);
    expect(expirations).to.be.greaterThan(0); // keys did expire during the run, and reads found them gone
    expect(expiredReads).to.be.at.least(expirations ?? 1);

    const history = historyFromJsonLines(chaos.file('history.jsonl') ?? '');
    expect(history.length).to.be.at.least(opsChecked);
    const txns = history.filter((operation) => operation.type === 'txn');
    expect(txns.length).to.equal(total);
    expect(txns.some((operation) => operation.type === 'txn' && operation.status === 'ok' && operation.succeeded === true && operation.success.filter((step) => step.op === 'put').length >= 2)).to.equal(true);
    expect(new Set(txns.flatMap((operation) => keysOf(operation))).size).to.equal(6);
    const ttlMs = history.flatMap((operation) => (operation.type === 'put' && operation.ttlMs !== undefined ? [operation.ttlMs] : []));
    expect(Math.min(...ttlMs)).to.be.at.least(MIN_TTL_MS);
    expect(Math.max(...ttlMs)).to.be.at.most(MAX_TTL_MS);
    const timeline = chaos.file('timeline.txt') ?? '';
    expect(timeline).to.match(/fault .*(kill -9|SIGSTOP)/);
    expect(timeline).to.include('settled after');
    expect(chaos.file('violation.txt')).to.equal(undefined);
  });

  it('refuses --unsafe-stale-reads without KVSTORE_ALLOW_UNSAFE_TESTING=1', async () => {
    const env = { ...process.env };
    delete env['KVSTORE_ALLOW_UNSAFE_TESTING'];
    const chaosRun = await runCli(['chaos', '--unsafe-stale-reads', '--duration', '1'], { env });
    expect(chaosRun.code).to.equal(2);
    expect(chaosRun.stderr.trim().split('\n')).to.have.length(1);
    expect(chaosRun.stderr).to.include('KVSTORE_ALLOW_UNSAFE_TESTING=1');
    const nodeRun = await runCli(['node', '--id', 'n1', '--port', '1', '--manager', '127.0.0.1:2', '--data-dir', '/nonexistent', '--unsafe-stale-reads'], { env });
    expect(nodeRun.code).to.equal(2);
    expect(nodeRun.stderr).to.include('KVSTORE_ALLOW_UNSAFE_TESTING=1');
  });

  it('refuses bad flags with one line and exit 2', async () => {
    const fractions = [['--ttl-fraction', '1.5'], ['--ttl-fraction', '-0.1'], ['--txn-fraction', 'some'], ['--txn-fraction', '']];
    for (const args of [['--faults', 'kill,flood'], ['--duration', '0'], ['--clients', 'many'], ['--manager', 'nowhere'], ...fractions]) {
      const run = await runCli(['chaos', ...args]);
      expect(run.code, args.join(' ')).to.equal(2);
      expect(run.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
    }
  });
});
