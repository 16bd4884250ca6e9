/**
 * `kvstore cluster`: prints the ready line once every shard has a leader, serves, stops every child
 * on SIGTERM (exit 0, no orphans), restarts the same cluster with its data from the same data dir,
 * and refuses --replicas > --nodes with exit 2.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterSpec, parseClusterFlags } from '../../src/cli/cluster-command.js';
import { childCommands } from '../../src/cluster/index.js';
import { freePort, MAIN_SCRIPT, runCli } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

/** PIDs of the direct children of `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every process below `pid` (children, their children, …). */
function descendantsOf(pid: number): number[] {
  const all: number[] = [];
  for (const child of childrenOf(pid)) all.push(child, ...descendantsOf(child));
  return all;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('integration: kvstore cluster', function () {
  this.timeout(180_000);
  let dir: string;
  let running: ChildProcess | undefined;
  let descendants: number[] = [];
  let stdout = '';
  let stderr = '';

  function startCluster(port: number): ChildProcess {
    stdout = '';
    stderr = '';
    const child = spawn(process.execPath, [MAIN_SCRIPT, 'cluster', '--nodes', '3', '--replicas', '3', '--shards', '8', '--port', String(port), '--data-dir', join(dir, 'data'), '--down-after', '3'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    running = child;
    return child;
  }

  async function stop(child: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    return exited;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-cluster-'));
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`--- cluster stderr tail\n${stderr.split('\n').slice(-40).join('\n')}\n`);
    if (running !== undefined && running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
    for (const pid of descendants) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  async function basePort(): Promise<number> {
    // the cluster takes port…port+3 (and the servers' default metrics ports +1000): choose from a free one
    return waitFor('a free port range', async () => {
      const port = await freePort();
      return port < 60_000 ? port : undefined;
    }, 5000, 10);
  }

  it('starts, serves, stops on SIGTERM without orphans, and restarts with its data', async () => {
    const port = await basePort();
    const manager = `127.0.0.1:${port}`;
    const first = startCluster(port);
    await waitFor('the ready line', () => stdout.includes(`ready manager=${manager}`) || (first.exitCode !== null ? Promise.reject(new Error(`cluster exited: ${stderr.slice(-500)}`)) : undefined), 60_000);
    expect(stdout).to.equal(`ready manager=${manager}\n`);
    descendants = childrenOf(first.pid!);
    expect(descendants).to.have.length(4);
    expect((await runCli(['put', 'kept', 'across-restarts', '--manager', manager])).code).to.equal(0);
    const perShard = Array.from({ length: 24 }, (_unused, i) => `restart-${i}`); // every one of the 8 shards, very likely
    expect((await runCli(['del', ...perShard, '--manager', manager])).code).to.equal(0);
    expect(await stop(first)).to.equal(0);
    await waitFor('every child to exit', () => descendants.every((pid) => !alive(pid)), 15_000);

    // The manager alone on the stopped cluster's state: its map still names the old leaders, but
    // no node has reported since, so it shows none and `status --wait` does not say ready.
    const lone = spawn(process.execPath, [MAIN_SCRIPT, 'manager', '--port', String(port), '--replicas', '3', '--shards', '8',
      '--data-dir', join(dir, 'data', 'manager')], { stdio: 'ignore' });
    try {
      const status = await waitFor('the lone manager to answer', async () => {
        const result = await runCli(['status', '--json', '--manager', manager]);
        return result.code === 0 ? JSON.parse(result.stdout) as { shards: { leader: string | null }[] } : undefined;
      }, 20_000);
      expect(status.shards.map((shard) => shard.leader)).to.deep.equal(Array.from({ length: 8 }, () => null));
      const waited = await runCli(['status', '--wait', '--timeout', '1', '--manager', manager]);
      expect(waited.code).to.equal(3);
      // The timeout says which shards and what their nodes are.
      expect(waited.stderr.trim().split('\n')).to.have.length(1);
      // The stopped nodes count as just seen when the manager starts ("up"), then turn "suspect"
      // after 3 s of silence — on a loaded machine the CLI calls above can take that long.
      expect(waited.stderr, waited.stderr).to.match(
        /0 of 8 shards have a leader; no leader: shard 0 \((n\d up, n\d up, n\d up; a majority up|n\d (up|suspect), n\d (up|suspect), n\d (up|suspect); (a majority up|only \d of 3 voters up: no quorum))\), .*, and 2 more$/m,
      );
    } finally {
      lone.kill('SIGTERM');
      await new Promise((resolve) => lone.once('exit', resolve));
    }

    const second = startCluster(port);
    await waitFor('the ready line again', () => stdout.includes(`ready manager=${manager}`), 60_000);
    // "ready" means leaders that live nodes reported since they restarted (issue 19), not the map
    // state.json kept from before the stop: every shard answers at once, within a short deadline.
    const atReady = await runCli(['get', ...perShard, 'kept', '--manager', manager, '--timeout', '1.5']);
    expect(atReady.stderr.split('\n').filter((line) => line.includes('error')), atReady.stderr).to.deep.equal([]);
    expect(atReady.stdout).to.equal('kept\tacross-restarts\n');
    descendants = childrenOf(second.pid!);
    const get = await runCli(['get', 'kept', '--manager', manager]);
    expect(get.code, get.stderr).to.equal(0);
    expect(get.stdout).to.equal('across-restarts\n');
    expect(await stop(second)).to.equal(0);
    await waitFor('every child to exit', () => descendants.every((pid) => !alive(pid)), 15_000);
  });

  it('children exit when the cluster process is killed with -9', async () => {
    const port = await basePort();
    const child = startCluster(port);
    await waitFor('the ready line', () => stdout.includes('ready manager='), 60_000);
    descendants = childrenOf(child.pid!);
    expect(descendants).to.have.length(4);
    child.kill('SIGKILL');
    await waitFor('every orphan to exit by itself', () => descendants.every((pid) => !alive(pid)), 15_000).catch((error: unknown) => {
      const survivors = descendants.filter(alive).map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(2, 4).join(' '));
      throw new Error(`${error instanceof Error ? error.message : String(error)}; still running: ${survivors.join('; ')}`);
    });
  });

  it('on a terminal: prints a summary and the ready line, and writes the JSON logs to DATA_DIR/logs (issue 19)', async function () {
    if (spawnSync('script', ['--version'], { stdio: 'ignore' }).status !== 0) {
      process.stderr.write('      skipped: no `script` (util-linux) to give the cluster a terminal\n');
      this.skip();
      return;
    }
    const port = await basePort();
    const data = join(dir, 'terminal');
    const command = [process.execPath, MAIN_SCRIPT, 'cluster', '--nodes', '3', '--shards', '4', '--port', String(port), '--data-dir', data]
      .map((arg) => `'${arg}'`).join(' ');
    // `script` runs the command on a pseudo-terminal: stdout and stderr are the terminal, copied to ours.
    const terminal = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    running = terminal;
    let screen = '';
    terminal.stdout?.on('data', (chunk: Buffer) => (screen += chunk.toString()));
    try {
      await waitFor('the ready line on the terminal', () => screen.includes(`ready manager=127.0.0.1:${port}`) && screen.includes('Ctrl-C stops'), 60_000);
      descendants = descendantsOf(terminal.pid!);
      expect(screen).to.match(/^kvstore cluster: 3 nodes, 3 replicas per shard, 4 shards; data in /m);
      expect(screen).to.match(new RegExp(`^ {2}n3 +127\\.0\\.0\\.1:${port + 3} +metrics :${port + 1003}`, 'm'));
      expect(screen).to.include(`${join(data, 'logs')}/`);
      expect(screen, 'no JSON log lines on the terminal').to.not.match(/^\{"/m);
      for (const name of ['cluster', 'manager', 'n1', 'n2', 'n3']) {
        const lines = readFileSync(join(data, 'logs', `${name}.log`), 'utf8').trim().split('\n');
        expect(JSON.parse(lines[0] ?? '') as object, `${name}.log holds JSON lines`).to.have.property('message');
      }
    } finally {
      terminal.kill('SIGTERM'); // the terminal goes away: the cluster stops on SIGHUP
      await waitFor('every process to exit', () => descendants.every((pid) => !alive(pid)), 15_000).catch(() => undefined);
    }
  });

  it('refuses --replicas larger than --nodes with one line and exit 2', async () => {
    const result = await runCli(['cluster', '--nodes', '2', '--replicas', '3', '--data-dir', join(dir, 'never')]);
    expect(result.code).to.equal(2);
    expect(result.stderr.trim().split('\n')).to.have.length(1);
    expect(result.stderr).to.match(/--replicas 3 .*--nodes 2/);
  });
});

describe('kvstore cluster: the children it starts', () => {
  const settings = parseClusterFlags({
    nodes: '3', replicas: '3', shards: '8', port: '7000', dataDir: '/tmp/kv', downAfter: '10', leaseReads: true,
  });

  it('passes --no-lease-reads to every node, and only to nodes, when asked', () => {
    const withLease = childCommands(clusterSpec(settings, 'main.js'));
    expect(withLease.flatMap((child) => child.args)).to.not.include('--no-lease-reads');
    const without = childCommands(clusterSpec({ ...settings, leaseReads: false }, 'main.js'));
    expect(without.map((child) => [child.name, child.args.includes('--no-lease-reads')])).to.deep.equal([
      ['manager', false], ['n1', true], ['n2', true], ['n3', true],
    ]);
  });

  it('passes --metrics-per-shard to every node, and only to nodes, when asked', () => {
    expect(childCommands(clusterSpec(settings, 'main.js')).flatMap((child) => child.args)).to.not.include('--metrics-per-shard');
    const flagged = parseClusterFlags({
      nodes: '3', replicas: '3', shards: '8', port: '7000', dataDir: '/tmp/kv', downAfter: '10', leaseReads: true, metricsPerShard: true,
    });
    expect(childCommands(clusterSpec(flagged, 'main.js')).map((child) => [child.name, child.args.includes('--metrics-per-shard')])).to.deep.equal([
      ['manager', false], ['n1', true], ['n2', true], ['n3', true],
    ]);
  });
});
