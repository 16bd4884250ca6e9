/**
 * scripts/reference-shares.mjs with small numbers: it runs `kvstore bench` the asked number of
 * times, prints each run's throughput per K with its share of the smallest K, then the medians;
 * the shares it prints are those of the runs' own results.json; bad flags change nothing and
 * name the limit; no process outlives it.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../ops/support/compose-file.js';
import { waitFor } from '../support/wait-for.js';
import { killProcessesUsing, processesUsing } from './helpers.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'reference-shares.mjs');

interface ScriptResult { code: number | null; stdout: string; stderr: string }

function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reference-shares did not finish in ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface RunJson { replicas: number; opsPerSec: number }

describe('scripts/reference-shares.mjs', function () {
  this.timeout(240_000);
  let privateTmp = '';

  before(() => {
    privateTmp = mkdtempSync(join(tmpdir(), 'kvstore-shares-test-'));
  });
  after(() => {
    killProcessesUsing(privateTmp);
    rmSync(privateTmp, { recursive: true, force: true });
  });

  it('prints every run and the medians of its shares, as its results.json files give them', async () => {
    const keep = join(privateTmp, 'kept');
    const result = await runScript(
      // K given largest first: each share is still against the smallest K.
      ['--runs', '2', '--keep', keep, '--', '--nodes', '2', '--replicas', '2,1', '--shards', '4', '--ops', '300',
        '--keys', '100', '--clients', '1', '--concurrency', '4', '--seed', '3'],
      { ...process.env, TMPDIR: privateTmp },
      200_000,
    );
    const leaked = killProcessesUsing(privateTmp);
    expect(result.code, result.stderr).to.equal(0);
    expect(leaked, 'processes still running after the script exited').to.deep.equal([]);

    const runLines = result.stdout.match(/^this build run \d: .*$/gm) ?? [];
    expect(runLines, result.stdout).to.have.length(2);
    const shares: number[] = [];
    for (const [index, line] of runLines.entries()) {
      const results = JSON.parse(readFileSync(join(keep, `a-run${index + 1}`, 'results.json'), 'utf8')) as { runs: RunJson[] };
      const [k1, k2] = [results.runs.find((run) => run.replicas === 1), results.runs.find((run) => run.replicas === 2)];
      expect(k1, 'a K=1 run').to.not.equal(undefined);
      expect(k2, 'a K=2 run').to.not.equal(undefined);
      const share = k2!.opsPerSec / k1!.opsPerSec;
      shares.push(share);
      expect(line).to.include(`K=1 ${k1!.opsPerSec.toLocaleString('en-US')} · K=2 ${k2!.opsPerSec.toLocaleString('en-US')} (${Math.round(share * 100)}%)`);
    }
    expect(readdirSync(keep).sort()).to.deep.equal(['a-run1', 'a-run2']);

    const table = result.stdout.slice(result.stdout.indexOf('this build: medians of 2 run(s)'));
    expect(table, result.stdout).to.match(/^this build: medians of 2 run\(s\)/);
    const k1Row = /^ {2}1 +[\d,]+ +100% /m.exec(table);
    expect(k1Row, table).to.not.equal(null);
    const k2Row = /^ {2}2 +[\d,]+ +(\d+)% /m.exec(table);
    expect(k2Row, table).to.not.equal(null);
    expect(Number(k2Row![1])).to.equal(Math.round(((shares[0]! + shares[1]!) / 2) * 100));
  });

  it('on SIGINT stops the bench, counts no run cut short, and leaves no process', async () => {
    const ownTmp = mkdtempSync(join(privateTmp, 'interrupted-'));
    const child = spawn(process.execPath, [SCRIPT, '--runs', '2', '--', '--nodes', '2', '--replicas', '1,2', '--shards', '4',
      '--duration', '60', '--keys', '100', '--clients', '1', '--concurrency', '4'], { env: { ...process.env, TMPDIR: ownTmp }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Interrupt once the bench's nodes are up.
      await waitFor('the bench\'s cluster started', () => processesUsing(ownTmp).length >= 3, 60_000, 100);
      child.kill('SIGINT');
      const code = await exited;
      expect(code, stderr).to.equal(130);
    } finally {
      child.kill('SIGKILL');
    }
    const leaked = killProcessesUsing(ownTmp);
    expect(leaked, 'processes still running after the script exited').to.deep.equal([]);
    expect(stdout, 'no run is counted').to.not.match(/run \d:/);
    expect(stderr).to.include('stopped early; only the runs that finished are counted');
  });

  it('refuses bad flags with the reason, and runs nothing', async () => {
    const ownTmp = mkdtempSync(join(privateTmp, 'refused-'));
    const env = { ...process.env, TMPDIR: ownTmp };
    const zero = await runScript(['--runs', '0'], env, 30_000);
    expect(zero.code).to.equal(2);
    expect(zero.stderr).to.include('--runs must be a whole number from 1 to 100, got 0');
    const out = await runScript(['--', '--nodes', '2', '--out', join(ownTmp, 'x')], env, 30_000);
    expect(out.code).to.equal(2);
    expect(out.stderr).to.include('--out is not for this script');
    const unknown = await runScript(['--nodes', '2'], env, 30_000);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.include('unknown flag --nodes (bench flags go after --)');
    expect(readdirSync(ownTmp)).to.deep.equal([]);
  });
});
