/**
 * End-to-end partitions (issue 7): a seeded 20-second `kvstore chaos` run with partition and kill
 * faults, its nodes each in their own network namespace, must inject partitions, report a
 * linearizable history with no lost write and a recovered cluster, and leave no namespace, bridge
 * or veth behind — also when the run is cut short by SIGHUP (its terminal went away), which heals,
 * checks what was recorded and removes the network like Ctrl-C. Needs root and iproute2
 * (`ip netns`); skipped with the reason otherwise. Every process the run started is killed by pid
 * and its namespaces removed, even when the test fails. SEED=n replays a fault schedule.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { listNamespaces, networkPrefix } from '../../src/chaos/index.js';
import { skipWithoutNetns } from '../support/netns-skip.js';
import { ChaosProcess } from './chaos-process.js';

const SEED = process.env['SEED'] === undefined ? 3 : Number(process.env['SEED']);

/** Namespaces, interfaces and /etc/netns entries still named after process `pid`. */
function leftovers(pid: number): string[] {
  const prefix = networkPrefix(pid);
  const interfaces = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter((name) => new RegExp(`^${prefix}(br|v\\d+)$`).test(name));
  const etc = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((name) => name.startsWith(`${prefix}-`)) : [];
  return [...listNamespaces().filter((name) => name.startsWith(`${prefix}-`)), ...interfaces, ...etc];
}

describe('kvstore chaos: partitions in network namespaces', function () {
  this.timeout(150_000);
  let chaos: ChaosProcess | undefined;

  before(function () {
    skipWithoutNetns(this);
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && chaos !== undefined) {
      process.stderr.write(`partition chaos run failed (SEED=${SEED}); timeline:\n${chaos.file('timeline.txt') ?? '(none)'}\n`);
    }
    chaos?.cleanup();
    chaos = undefined;
  });

  it(`survives 20 s of partitions and kills with a linearizable history (SEED=${SEED})`, async () => {
    chaos = new ChaosProcess();
    const result = await chaos.run(['--duration', '20', '--faults', 'partition,kill', '--interval', '3', '--clients', '4', '--keys', '8', '--seed', String(SEED)], {
      timeoutMs: 140_000,
    });
    const output = `${result.stdout}\n${result.stderr.slice(-2000)}`;
    expect(result.stderr, output).to.include('in their own network namespaces');
    const verdict = /^linearizable: .*$/m.exec(result.stdout)?.[0];
    expect(verdict, output).to.match(/^linearizable: yes /);
    expect(verdict).to.include('lost writes: 0').and.include('recovered: yes');
    expect(result.code).to.equal(0);
    expect(Number(/ops checked: (\d+)/.exec(verdict ?? '')?.[1])).to.be.greaterThan(100);
    const partitions = Number(/^faults: \d+ injected \(.*partition (\d+)/m.exec(result.stdout)?.[1] ?? 0);
    expect(partitions, 'partitions injected').to.be.greaterThan(0);
    expect(result.stdout).to.not.include('partition skipped');

    const timeline = chaos.file('timeline.txt') ?? '';
    expect(timeline).to.match(/fault +partition \((halves|isolate)\): \{[n\d,]+\} \| \{[n\d,]+\}/);
    expect(timeline).to.match(/heal +partition healed/);
    expect(timeline).to.include('settled after');

    const pid = chaos.pid();
    if (pid === undefined) throw new Error('the chaos process has no pid');
    expect(leftovers(pid), 'namespaces, interfaces and hosts files left behind').to.deep.equal([]);
  });

  it('heals, checks and removes its namespaces when its terminal hangs up (SIGHUP)', async () => {
    chaos = new ChaosProcess();
    const result = await chaos.run(['--duration', '60', '--faults', 'partition', '--interval', '1', '--clients', '2', '--keys', '4', '--seed', String(SEED)], {
      timeoutMs: 140_000,
      signal: { after: 'running the workload', name: 'SIGHUP' },
    });
    const output = `${result.stdout}\n${result.stderr.slice(-2000)}`;
    expect(result.stderr, output).to.include('interrupted');
    expect(result.stdout, output).to.match(/^linearizable: yes /m);
    expect(result.code, output).to.equal(0);
    const pid = chaos.pid();
    if (pid === undefined) throw new Error('the chaos process has no pid');
    expect(leftovers(pid), 'namespaces, interfaces and hosts files left behind').to.deep.equal([]);
  });
});
