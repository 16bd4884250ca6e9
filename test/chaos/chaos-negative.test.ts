/**
 * The negative end-to-end test (issue 7): nodes started with the test-only `--unsafe-stale-reads`
 * flag answer reads from local state without ReadIndex. The pause fault's stale-read probe pauses a
 * shard leader, writes through the new leader, and sends a read to the old leader as it resumes: an
 * old leader that does not confirm its leadership answers with the value from before the pause, and
 * `kvstore chaos` must report the violation. SEED=n replays a fault schedule.
 */
import { expect } from 'chai';
import { ChaosProcess } from './chaos-process.js';

const SEED = process.env['SEED'] === undefined ? 2 : Number(process.env['SEED']);

describe('kvstore chaos: the checker bites', function () {
  this.timeout(300_000);
  let chaos: ChaosProcess | undefined;

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && chaos !== undefined) {
      process.stderr.write(`negative chaos run failed (SEED=${SEED}); timeline:\n${chaos.file('timeline.txt') ?? '(none)'}\n`);
    }
    chaos?.cleanup();
    chaos = undefined;
  });

  it(`reports a violation when nodes serve reads without ReadIndex (SEED=${SEED})`, async () => {
    chaos = new ChaosProcess();
    const result = await chaos.run(['--unsafe-stale-reads', '--duration', '20', '--faults', 'pause', '--interval', '3', '--seed', String(SEED)], {
      env: { ...process.env, KVSTORE_ALLOW_UNSAFE_TESTING: '1' },
      timeoutMs: 280_000,
    });
    const verdict = /^linearizable: .*$/m.exec(result.stdout)?.[0];
    expect(verdict, `${result.stdout}\n${result.stderr.slice(-2000)}`).to.match(/^linearizable: NO /);
    expect(result.code).to.equal(1);
    const violation = chaos.file('violation.txt') ?? '';
    expect(violation).to.include('NOT linearizable');
    expect(violation).to.match(/smallest failing sub-history found: \d+ of \d+ operations/);
  });
});
