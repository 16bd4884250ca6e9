/**
 * scripts/compose-chaos.sh without Docker: COMPOSE points at a fake compose command
 * that records its arguments (and whose `run` plays the checker: it sleeps, then exits
 * with a chosen status). Checks the script brings the cluster up, runs `kvstore chaos`
 * on the compose network, injects faults through compose, heals every node at the end
 * and returns the checker's verdict as its exit code; and that the chaos flags it
 * passes exist in the CLI once `kvstore chaos` does.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cluster.js';
import { REPO_ROOT } from './support/compose-file.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'compose-chaos.sh');
const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

describe('ops: scripts/compose-chaos.sh (with a fake compose)', function () {
  this.timeout(40_000);
  let dir = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-compose-chaos-'));
    writeFileSync(join(dir, 'compose'), [
      '#!/usr/bin/env bash',
      'echo "$*" >> "$FAKE_CALLS"',
      'if [[ " $* " == *" run "* ]]; then sleep "$FAKE_RUN_SECONDS"; exit "$FAKE_RUN_STATUS"; fi',
      '',
    ].join('\n'));
    chmodSync(join(dir, 'compose'), 0o755);
  });

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  async function run(name: string, args: string[], runSeconds: number, runStatus: number): Promise<{ code: number | null; calls: string[]; stderr: string }> {
    const calls = join(dir, `${name}.calls`);
    writeFileSync(calls, '');
    const child = spawn(SCRIPT, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env, COMPOSE: join(dir, 'compose'), INTERVAL: '2', OUT: join(dir, `${name}-out`),
        FAKE_CALLS: calls, FAKE_RUN_SECONDS: String(runSeconds), FAKE_RUN_STATUS: String(runStatus),
      },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    return { code, calls: readFileSync(calls, 'utf8').trim().split('\n'), stderr };
  }

  it('injects faults through compose while the checker runs, heals, and passes its verdict on', async () => {
    const result = await run('pass', ['12', '7'], 12, 0);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.calls[0]).to.equal(`up -d --wait manager ${NODES.join(' ')}`);
    const checker = result.calls.find((call) => call.includes(' run '));
    expect(checker).to.match(/^--profile client run --rm --no-deps -T .* client chaos --manager manager:7000 --duration 12 --seed 7 --out \/chaos$/);
    const faults = result.calls.filter((call) => /^(kill -s SIGKILL|pause) n\d$/.test(call));
    expect(faults.length, `faults in ${result.calls.join('; ')}`).to.be.at.least(1);
    const tail = result.calls.slice(-2 * NODES.length);
    expect(tail).to.deep.equal(NODES.flatMap((node) => [`unpause ${node}`, `start ${node}`]));
    expect(result.stderr).to.contain('PASS (seed 7)');
  });

  it('fails when the checker reports a violation', async () => {
    const result = await run('fail', ['12', '7'], 1, 1);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.contain('FAIL (seed 7): checker exited 1');
  });

  it('refuses a bad duration with a usage line', async () => {
    const result = await run('usage', ['soon'], 0, 0);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/^usage: /m);
  });

  it('passes only flags `kvstore chaos` has', async () => {
    const help = await runCli(['chaos', '--help']);
    // Without the command, commander answers `--help` with the root help.
    expect(help.code).to.equal(0);
    expect(help.stdout.startsWith('Usage: kvstore chaos '), help.stdout).to.equal(true);
    for (const flag of ['--manager', '--duration', '--seed', '--out']) expect(help.stdout, flag).to.contain(flag);
  });
});
