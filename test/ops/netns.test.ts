/**
 * Issue 8: the compose topology without Docker. Every service of docker-compose.yml
 * that runs a server (the manager and n1…n5) is started with the command the compose
 * file gives it — same ports, `--host 0.0.0.0`, `--advertise nK:700K` — in its own
 * network namespace with its own address, resolving service names through /etc/hosts
 * as containers do through compose's DNS; `/data` becomes a temp dir per service.
 * A client namespace plays the `client` container. One scripted run: start, wait until
 * every shard has a leader (read from the manager's /metrics over the bridge), write,
 * kill -9 a node, read everything back, stop. Namespaces and processes are removed
 * even when the test fails. Skipped, with the reason, when not root or `ip` is missing.
 */
import { expect } from 'chai';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsNetwork } from '../../src/chaos/index.js';
import { skipWithoutNetns } from '../support/netns-skip.js';
import { MAIN_SCRIPT } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';
import { type ComposeService, flagValue, nodeServices, readComposeFile } from './support/compose-file.js';

const CLIENT_SCRIPT = fileURLToPath(new URL('./support/netns-client.js', import.meta.url));
const KEYS = 200;

interface Running {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { status: response.status, body: await response.text() };
}

/** A gauge's value in Prometheus text, or undefined. */
function metricValue(text: string, name: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('ops: the compose topology in network namespaces', function () {
  this.timeout(90_000);
  const network = new NetnsNetwork();
  const running = new Map<string, Running>();
  let dir = '';
  let logFile = '';

  before(function () {
    skipWithoutNetns(this);
    dir = mkdtempSync(join(tmpdir(), 'kvstore-netns-'));
    logFile = join(dir, 'processes.log');
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && logFile !== '') {
      const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
      process.stderr.write(`--- last lines of ${logFile} ---\n${lines.slice(-40).join('\n')}\n`);
    }
  });

  after(async () => {
    for (const entry of running.values()) if (entry.child.exitCode === null && entry.child.signalCode === null) entry.child.kill('SIGKILL');
    await Promise.all([...running.values()].map((entry) => entry.exited));
    network.destroy();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `kvstore …` in the service's namespace; its stderr goes to the shared log. */
  function start(service: ComposeService, dataDir: string): Running {
    const command = service.command.map((arg, index) => (service.command[index - 1] === '--data-dir' ? dataDir : arg));
    const log = openSync(logFile, 'a');
    // `ip netns exec` execs the command itself, so the child's PID is kvstore's.
    const child = spawn('ip', ['netns', 'exec', network.host(service.name).namespace, process.execPath, MAIN_SCRIPT, ...command], {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const entry = { name: service.name, child, exited };
    running.set(service.name, entry);
    return entry;
  }

  /** Runs the client script in the client namespace. */
  async function client(mode: 'write' | 'read', managerAddress: string): Promise<{ ok: number; failed: string[] }> {
    const child = spawn('ip', ['netns', 'exec', network.host('client').namespace, process.execPath, CLIENT_SCRIPT, managerAddress, mode, String(KEYS), 'netns'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    clearTimeout(timer);
    if (stdout.trim() === '') throw new Error(`client ${mode} printed nothing: ${stderr.trim()}`);
    return JSON.parse(stdout) as { ok: number; failed: string[] };
  }

  it('starts, writes, survives kill -9 of a node, reads back and stops', async () => {
    const compose = readComposeFile();
    const manager = compose.services.get('manager');
    if (manager === undefined) throw new Error('no manager service in docker-compose.yml');
    const nodes = nodeServices(compose);
    network.create(['manager', ...nodes.map((node) => node.name), 'client']);
    const metricsUrl = (service: ComposeService): string =>
      `http://${network.host(service.name).address}:${flagValue(service.command, '--metrics-port') ?? ''}`;

    start(manager, join(dir, 'manager'));
    for (const node of nodes) start(node, join(dir, node.name));

    // Every shard led, as the manager reports it on its metrics port.
    const shards = Number(flagValue(manager.command, '--shards'));
    await waitFor('every shard to have a leader', async () => {
      const { body } = await httpGet(`${metricsUrl(manager)}/metrics`);
      return metricValue(body, 'kvstore_manager_shards_with_leader') === shards;
    }, 45_000, 250);
    for (const service of [manager, ...nodes]) {
      await waitFor(`${service.name} /readyz`, async () => (await httpGet(`${metricsUrl(service)}/readyz`)).status === 200, 15_000, 250);
    }

    const managerAddress = `manager:${flagValue(manager.command, '--port') ?? ''}`;
    const written = await client('write', managerAddress);
    expect(written.failed, 'writes that failed').to.deep.equal([]);
    expect(written.ok).to.equal(KEYS);

    const victim = running.get(nodes[1]?.name ?? '');
    if (victim === undefined) throw new Error('no node to kill');
    victim.child.kill('SIGKILL');
    await victim.exited;

    const read = await client('read', managerAddress);
    expect(read.failed, 'reads that failed or returned another value').to.deep.equal([]);
    expect(read.ok).to.equal(KEYS);

    // The survivors still answer; a majority of nodes is up, so the manager stays ready.
    expect((await httpGet(`${metricsUrl(manager)}/readyz`)).status).to.equal(200);

    // Stop: SIGTERM like `docker compose stop`; every process exits on its own.
    const survivors = [...running.values()].filter((entry) => entry !== victim);
    for (const entry of survivors) entry.child.kill('SIGTERM');
    await waitFor('every process to stop', () => survivors.every((entry) => entry.child.exitCode !== null || entry.child.signalCode !== null), 15_000, 100);
    for (const entry of survivors) expect(entry.child.exitCode, `${entry.name} exit code`).to.equal(0);
  });
});
