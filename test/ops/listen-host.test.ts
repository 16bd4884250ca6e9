/**
 * Issue 19 "no silent traps": a node started with `--advertise` naming another host and no
 * `--host` used to listen on 127.0.0.1 only, unreachable by the peers it told to call it there.
 * It now listens on every interface (and says so); `--host` still decides when given.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenHost } from '../../src/cli/node-command.js';
import { freePort, MAIN_SCRIPT } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

/** Whether this machine can listen on and connect to ::1. */
async function reachableIpv6Loopback(): Promise<boolean> {
  const server = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => resolve(true));
  });
  if (!listening) return false;
  const address = server.address();
  const ok = typeof address === 'object' && address !== null && (await reachable('::1', address.port));
  await new Promise((resolve) => server.close(resolve));
  return ok;
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

describe('ops: where a node listens', function () {
  this.timeout(30_000);

  it('listens where it advertises unless --host says otherwise', () => {
    expect(listenHost(undefined, undefined)).to.equal('127.0.0.1');
    expect(listenHost(undefined, '127.0.0.1:7001')).to.equal('127.0.0.1');
    expect(listenHost(undefined, 'localhost:7001')).to.equal('127.0.0.1');
    expect(listenHost(undefined, '10.0.0.5:7001')).to.equal('0.0.0.0');
    expect(listenHost(undefined, 'n1:7001')).to.equal('0.0.0.0');
    expect(listenHost('127.0.0.1', '10.0.0.5:7001')).to.equal('127.0.0.1');
    expect(listenHost('10.0.0.5', undefined)).to.equal('10.0.0.5');
    expect(listenHost(undefined, '[fd00::2]:7001'), 'IPv6: every interface of both families').to.equal('::');
    expect(listenHost(undefined, '[::1]:7001')).to.equal('::1');
  });

  it('refuses an empty --host, which would advertise an address no peer can dial', () => {
    const run = spawnSync(process.execPath, [MAIN_SCRIPT, 'node', '--id', 'n1', '--port', '7001', '--manager', '127.0.0.1:7000', '--data-dir', tmpdir(), '--host', ''], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).to.equal(2);
    expect(run.stderr).to.match(/--host.*expected an address or host name.*0\.0\.0\.0 or ::/);
  });

  it('a node listening on IPv6 loopback (as --advertise [::1]:PORT makes it) is reachable there', async function () {
    if (!(await reachableIpv6Loopback())) {
      process.stderr.write('      skipped: no IPv6 loopback on this machine\n');
      this.skip();
      return;
    }
    await withNode((port) => `[::1]:${port}`, async (port) => {
      expect(await reachable('::1', port)).to.equal(true);
    });
  });

  it('a node advertising another address, without --host, is reachable on it and says so', async function () {
    const external = Object.values(networkInterfaces()).flat().find((entry) => entry !== undefined && entry.family === 'IPv4' && !entry.internal);
    if (external === undefined) {
      process.stderr.write('      skipped: this machine has no non-loopback IPv4 address\n');
      this.skip();
      return;
    }
    await withNode((port) => `${external.address}:${port}`, async (port, output) => {
      expect(await reachable(external.address, port), `${external.address}:${port}`).to.equal(true);
      expect(output()).to.include('listening on every interface');
      await waitFor('the warning about plaintext beyond loopback', () => output().includes('serving plaintext'), 10_000);
    });
  });
});

/**
 * Starts `kvstore node` with `--advertise advertise(port)` and no `--host` (its manager unreachable:
 * it serves all the same), runs `body` once it started, then stops it by PID and removes its data.
 */
async function withNode(advertise: (port: number) => string, body: (port: number, output: () => string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-listen-'));
  const port = await freePort();
  let output = '';
  const node = spawn(process.execPath, [MAIN_SCRIPT, 'node', '--id', 'n1', '--port', String(port), '--metrics-port', String(await freePort()),
    '--manager', '127.0.0.1:1', '--data-dir', join(dir, 'n1'), '--advertise', advertise(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  node.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  node.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    await waitFor('the node to start', () => output.includes('"message":"node started"') || (node.exitCode !== null ? Promise.reject(new Error(output)) : false), 20_000);
    await body(port, () => output);
  } finally {
    const exited = new Promise((resolve) => node.once('exit', resolve));
    node.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('ops: status --wait says why it timed out', () => {
  it('lists leaderless shards with their replicas\' node health and whether a quorum is up', async () => {
    const { leaderlessReport } = await import('../../src/cli/status-command.js');
    const { NodeHealth } = await import('../../src/gen/kvstore/v1/manager.js');
    const node = (nodeId: string, health: number) => ({ nodeId, address: '', health, replicaCount: 0, leaderCount: 0, keyCount: 0, opsPerSecond: 0, p99LatencyMs: 0, metricsPort: 0 });
    const member = (replicaId: number, nodeId: string, learner = false) => ({ replicaId, nodeId, learner });
    const map = {
      shardCount: 2, replicationFactor: 3, epoch: 0,
      nodes: [node('n1', NodeHealth.NODE_HEALTH_UP), node('n2', NodeHealth.NODE_HEALTH_DOWN), node('n3', NodeHealth.NODE_HEALTH_DOWN)],
      shards: [
        { shardId: 0, epoch: 1, replicas: [member(1, 'n1'), member(2, 'n2'), member(3, 'n3')], leaderNodeId: '', term: 3, commitIndex: 9 },
        { shardId: 1, epoch: 1, replicas: [member(4, 'n1'), member(5, 'n2'), member(6, 'n3')], leaderNodeId: 'n1', term: 2, commitIndex: 5 },
      ],
    } as unknown as Parameters<typeof leaderlessReport>[0];
    expect(leaderlessReport(map)).to.equal('no leader: shard 0 (n1 up, n2 down, n3 down; only 1 of 3 voters up: no quorum)');
    const unplaced = { ...map, shards: map.shards.map((shard) => ({ ...shard, replicas: [], leaderNodeId: '' })) };
    expect(leaderlessReport(unplaced)).to.equal('no shard is placed yet: the manager places them once --bootstrap-nodes nodes (default K=3) have registered; 3 have');
  });
});
