import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestManagerClient } from './grpc-helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function runManager(args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [MAIN, 'manager', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stderr: result.stderr };
}

describe('manager/command (real process)', () => {
  let dataDir: string;
  let child: ChildProcess | null = null;
  beforeEach(() => { dataDir = mkdtempSync(join(tmpdir(), 'kvstore-manager-cmd-')); });
  afterEach(() => {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    child = null;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('rejects bad flags with one line and exit 2', () => {
    const base = ['--port', '7999', '--replicas', '3', '--shards', '8', '--data-dir', dataDir];
    const cases: [string[], RegExp][] = [
      [['--port', '7999', '--replicas', '0', '--shards', '8', '--data-dir', dataDir], /--replicas/],
      [['--port', '7999', '--replicas', '3', '--shards', '5000', '--data-dir', dataDir], /--shards/],
      [['--port', '70000', '--replicas', '3', '--shards', '8', '--data-dir', dataDir], /--port/],
      [[...base, '--bootstrap-nodes', '2'], /--bootstrap-nodes/],
      [[...base, '--down-after', '-1'], /--down-after/],
      [[...base, '--log-level', 'loud'], /--log-level/],
      [[...base, '--bogus'], /unknown option/],
    ];
    for (const [args, pattern] of cases) {
      const { status, stderr } = runManager(args);
      expect(status, args.join(' ')).to.equal(2);
      expect(stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(stderr).to.match(pattern);
    }
  });

  it('serves until SIGTERM, then stops cleanly with its state saved', async function () {
    this.timeout(30_000);
    const port = await freePort();
    child = spawn(process.execPath, [MAIN, 'manager', '--port', String(port), '--replicas', '1', '--shards', '4',
      '--data-dir', dataDir, '--metrics-port', '0', '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => { child?.once('exit', (code) => { resolve(code); }); });
    const client = new TestManagerClient(`127.0.0.1:${port}`);
    try {
      const map = await waitFor('the manager to start', () => client.clusterMap(), 15_000, 100);
      expect(map.shardCount).to.equal(4);
    } finally {
      client.close();
    }
    if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    expect(await exited).to.equal(0);
    expect(existsSync(join(dataDir, 'state.json'))).to.equal(true);
  });
});
