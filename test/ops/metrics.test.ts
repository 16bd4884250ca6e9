/**
 * Issue 8 "Operations" against real processes: a manager and a node (`kvstore manager`,
 * `kvstore node`) on loopback. Checks /healthz (always 200), the /readyz transitions
 * (node: 503 until registered and every replica knows its leader; manager: 503 until a
 * majority of known nodes is up, and again when the only node dies), the default
 * metrics port (gRPC port + 1000), the metric names the issue asks for, request counts
 * by op and code, and that the info log has one line per event with its context.
 */
import { expect } from 'chai';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, MAIN_SCRIPT, runCli } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { status: response.status, body: await response.text() };
}

/** True when `port` can be bound on 127.0.0.1 right now. */
async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose +1000 is free too, for the default metrics port. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 1000 <= 65535 && (await bindable(port + 1000))) return port;
  }
}

/** The value of one sample (`name{labels} value`) in Prometheus text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Names declared with `# TYPE name kind`. */
function declared(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1] ?? '', match[2] ?? '');
  return types;
}

const NODE_METRICS: [string, string][] = [
  ['kvstore_node_requests_total', 'counter'],
  ['kvstore_node_request_duration_seconds', 'histogram'],
  ['kvstore_node_leader_changes_seen_total', 'counter'],
  ['kvstore_node_replicas_leaderless', 'gauge'],
  ['kvstore_node_requests_waiting_for_leader', 'gauge'],
  ['kvstore_node_proposals_dropped_total', 'counter'],
  ['kvstore_node_wal_fsync_duration_seconds', 'histogram'],
  ['kvstore_node_wal_fsync_inline', 'gauge'],
  ['kvstore_node_snapshots_created_total', 'counter'],
  ['kvstore_node_snapshots_installed_total', 'counter'],
  ['kvstore_node_snapshots_sent_total', 'counter'],
  ['kvstore_node_replicas', 'gauge'],
  ['kvstore_node_leaders', 'gauge'],
];

const MANAGER_METRICS: [string, string][] = [
  ['kvstore_manager_nodes', 'gauge'],
  ['kvstore_manager_node_health', 'gauge'],
  ['kvstore_manager_node_health_transitions_total', 'counter'],
  ['kvstore_manager_shards_with_leader', 'gauge'],
  ['kvstore_manager_shards_under_replicated', 'gauge'],
  ['kvstore_manager_moves_in_flight', 'gauge'],
  ['kvstore_manager_moves_started_total', 'counter'],
  ['kvstore_manager_moves_finished_total', 'counter'],
];

describe('ops: metrics, health and readiness endpoints of real processes', function () {
  this.timeout(60_000);
  let dir = '';
  let logFile = '';
  const processes: Running[] = [];

  function start(args: string[]): Running {
    const log = openSync(logFile, 'a');
    const child = spawn(process.execPath, [MAIN_SCRIPT, ...args], { stdio: ['ignore', log, log] });
    closeSync(log);
    const running = { child, exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) };
    processes.push(running);
    return running;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-ops-metrics-'));
    logFile = join(dir, 'processes.log');
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`--- ${logFile} ---\n${readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n')}\n`);
    }
  });

  after(async () => {
    for (const running of processes) if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill('SIGKILL');
    await Promise.all(processes.map((running) => running.exited));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('serves /healthz, /readyz transitions, /metrics and one info line per event', async () => {
    const managerPort = await freePortPair();
    const [nodePort, nodeMetricsPort] = [await freePort(), await freePort()];
    const managerMetrics = `http://127.0.0.1:${managerPort + 1000}`;
    const nodeMetrics = `http://127.0.0.1:${nodeMetricsPort}`;

    // The node first: alive, but not ready until the manager has answered Register.
    const node = start(['node', '--id', 'n1', '--port', String(nodePort), '--metrics-port', String(nodeMetricsPort),
      '--manager', `127.0.0.1:${managerPort}`, '--data-dir', join(dir, 'n1'), '--log-level', 'info']);
    await waitFor('node /healthz', async () => (await get(`${nodeMetrics}/healthz`)).status === 200, 15_000, 100);
    const unregistered = await get(`${nodeMetrics}/readyz`);
    expect(unregistered.status).to.equal(503);
    expect(unregistered.body).to.contain('not registered');

    // The manager on its default metrics port (gRPC + 1000).
    const manager = start(['manager', '--port', String(managerPort), '--replicas', '1', '--shards', '4', '--bootstrap-nodes', '1',
      '--down-after', '30', '--data-dir', join(dir, 'manager'), '--log-level', 'info']);
    await waitFor('manager /healthz', async () => (await get(`${managerMetrics}/healthz`)).status === 200, 15_000, 100);
    await waitFor('node /readyz', async () => (await get(`${nodeMetrics}/readyz`)).status === 200, 20_000, 100);
    await waitFor('manager /readyz', async () => (await get(`${managerMetrics}/readyz`)).status === 200, 20_000, 100);
    expect((await get(`${managerMetrics}/nope`)).status).to.equal(404);

    // Requests show up by op and code.
    const put = await runCli(['put', '--manager', `127.0.0.1:${managerPort}`, 'ops-key', 'v1']);
    expect(put.code, put.stderr).to.equal(0);
    const missing = await runCli(['get', '--manager', `127.0.0.1:${managerPort}`, 'ops-absent']);
    expect(missing.code).to.equal(1);

    const nodeText = (await get(`${nodeMetrics}/metrics`)).body;
    const nodeTypes = declared(nodeText);
    for (const [name, kind] of NODE_METRICS) expect(nodeTypes.get(name), name).to.equal(kind);
    expect(sample(nodeText, 'kvstore_node_requests_total{op="put",code="OK"}')).to.be.at.least(1);
    expect(sample(nodeText, 'kvstore_node_requests_total{op="get",code="OK"}')).to.be.at.least(1);
    expect(sample(nodeText, 'kvstore_node_request_duration_seconds_count{op="put"}')).to.be.at.least(1);
    expect(sample(nodeText, 'kvstore_node_wal_fsync_duration_seconds_count')).to.be.at.least(1);
    expect(sample(nodeText, 'kvstore_node_replicas')).to.equal(4);
    expect(sample(nodeText, 'kvstore_node_leaders')).to.equal(4);
    // Node totals only by default: per-shard series multiply by the replicas hosted (--metrics-per-shard).
    expect(nodeText, 'no per-shard series without --metrics-per-shard').to.not.contain('shard=');
    expect(sample(nodeText, 'kvstore_node_leader_changes_seen_total')).to.be.at.least(4);
    expect(sample(nodeText, 'kvstore_node_replicas_leaderless')).to.equal(0);
    expect(sample(nodeText, 'kvstore_node_requests_waiting_for_leader')).to.equal(0);
    for (const name of nodeTypes.keys()) expect(name, 'Prometheus naming').to.match(/^(kvstore_(node|manager)_[a-z_]+|process_[a-z_]+|nodejs_[a-z0-9_]+)$/);

    // The manager learns leaders from the node's heartbeats, which may trail its elections.
    const managerText = await waitFor('manager to see 4 leaders', async () => {
      const text = (await get(`${managerMetrics}/metrics`)).body;
      return sample(text, 'kvstore_manager_shards_with_leader') === 4 ? text : undefined;
    }, 15_000, 100);
    const managerTypes = declared(managerText);
    for (const [name, kind] of MANAGER_METRICS) expect(managerTypes.get(name), name).to.equal(kind);
    expect(sample(managerText, 'kvstore_manager_nodes{health="up"}')).to.equal(1);
    expect(sample(managerText, 'kvstore_manager_node_health{node="n1",health="up"}')).to.equal(1);
    expect(sample(managerText, 'kvstore_manager_shards_with_leader')).to.equal(4);

    // The only node dies: it turns suspect after 3 s, and without a majority up the manager is not ready.
    node.child.kill('SIGKILL');
    await node.exited;
    const notReady = await waitFor('manager /readyz to fail', async () => {
      const answer = await get(`${managerMetrics}/readyz`);
      return answer.status === 503 ? answer : undefined;
    }, 15_000, 200);
    expect(notReady.body).to.contain('0 of 1 known nodes up');
    expect((await get(`${managerMetrics}/healthz`)).status).to.equal(200);
    const afterKill = (await get(`${managerMetrics}/metrics`)).body;
    expect(sample(afterKill, 'kvstore_manager_node_health_transitions_total{to="suspect"}')).to.equal(1);

    manager.child.kill('SIGTERM');
    await manager.exited;
    expect(manager.child.exitCode).to.equal(0);

    // The info log: one JSON line per event, with its context, and nothing per request.
    const lines = readFileSync(logFile, 'utf8').split('\n').filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const event = (message: string): Record<string, unknown>[] => lines.filter((line) => line['message'] === message);
    const elected = event('became leader');
    expect(elected.length, 'one "became leader" per shard').to.equal(4);
    for (const line of elected) {
      expect(line).to.include({ component: 'node', node: 'n1', level: 'info' });
      expect(line['shard']).to.be.a('number');
    }
    expect(event('replica created').length).to.equal(4);
    expect(event('node registered')[0]).to.include({ component: 'manager', node: 'n1' });
    expect(event('node suspect')[0]).to.include({ component: 'manager', node: 'n1', was: 'up' });
    expect(lines.filter((line) => line['level'] === 'debug'), 'no debug lines at --log-level info').to.deep.equal([]);
    expect(lines.length, 'info lines in total (startup, 4 shards, suspect, stop)').to.be.below(40);
    expect(JSON.stringify(lines), 'user values never logged').to.not.contain('ops-key');
  });
});
