/**
 * Integration-test harness: a manager and N storage nodes as real processes (`node dist/src/cli/main.js
 * …`) on free loopback ports, with a temp data dir. Every process is started with
 * KVSTORE_PARENT_WATCH=1 and a stdin pipe, so it exits if the test runner dies; tests still stop
 * everything by PID in `after`/`afterEach` via {@link TestCluster.stopAll}. All processes append
 * their stderr to one log file under the temp dir; {@link TestCluster.tail} shows the end of it.
 * Waiting is polling with a deadline ({@link waitFor}), never a bare sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { findFreePort } from '../../src/common/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KVClient, ManagerConnection, type KVClientOptions } from '../../src/client/index.js';
import { clusterStatusJson, type ClusterStatusJson } from '../../src/cli/status-util.js';
import type { GetClusterMapResponse } from '../../src/gen/kvstore/v1/manager.js';

/** The CLI entry point, compiled. */
export const MAIN_SCRIPT = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Polls `probe` every `intervalMs` until it returns a value other than undefined/false, or throws after `deadlineMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  deadlineMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A free TCP port on 127.0.0.1, outside the ephemeral range (see src/common/ports.ts): a port
 * from bind(:0) may be taken as some connection's source port before the server binds it.
 * Never hands out the same port twice in one test process.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await findFreePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}
const handedOut = new Set<number>();

/** The result of one CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `kvstore ARGS…` to completion (killed after `timeoutMs`). */
export async function runCli(args: string[], options: { input?: string | Uint8Array; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [MAIN_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => undefined);
  child.stdin.end(options.input ?? '');
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { code, stdout, stderr };
}

/** Settings of a {@link TestCluster}. */
export interface TestClusterOptions {
  nodes: number;
  replicas?: number;
  shards?: number;
  /** Seconds before a silent node is `down` and re-replicated (short in failover tests). */
  downAfterSeconds?: number;
  /** Wait for every shard to have a leader before returning from start (default true). */
  waitForLeaders?: boolean;
}

interface ManagedProcess {
  name: string;
  args: string[];
  child: ChildProcess | undefined;
  exited: Promise<void> | undefined;
}

/** A manager plus storage nodes as real processes. */
export class TestCluster {
  /** The temp dir holding every data dir and the log. */
  readonly dir: string;
  /** Where every process's stderr goes. */
  readonly logFile: string;
  readonly shards: number;
  readonly replicas: number;
  readonly downAfterSeconds: number;
  managerAddress = '';
  private managerProcess: ManagedProcess | undefined;
  private readonly nodeProcesses = new Map<string, ManagedProcess>();
  private readonly clients: KVClient[] = [];
  private connection: ManagerConnection | undefined;
  private nodeCounter = 0;
  private readonly bootstrapNodes: number;

  private constructor(options: TestClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'kvstore-it-'));
    mkdirSync(join(this.dir, 'logs'));
    this.logFile = join(this.dir, 'logs', 'cluster.log');
    this.shards = options.shards ?? 16;
    this.replicas = options.replicas ?? 3;
    this.downAfterSeconds = options.downAfterSeconds ?? 10;
    this.bootstrapNodes = options.nodes;
  }

  /** Starts the manager and `nodes` nodes (n1…nN); by default waits until every shard has a leader. */
  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const cluster = new TestCluster(options);
    try {
      const [port, metricsPort] = [await freePort(), await freePort()];
      cluster.managerAddress = `127.0.0.1:${port}`;
      cluster.managerProcess = {
        name: 'manager',
        args: [
          'manager', '--port', String(port), '--metrics-port', String(metricsPort),
          '--replicas', String(cluster.replicas), '--shards', String(cluster.shards),
          '--data-dir', join(cluster.dir, 'manager'), '--bootstrap-nodes', String(options.nodes),
          '--down-after', String(cluster.downAfterSeconds),
        ],
        child: undefined,
        exited: undefined,
      };
      cluster.spawn(cluster.managerProcess);
      for (let i = 0; i < options.nodes; i++) await cluster.addNode({ waitForRegistration: false });
      if (options.waitForLeaders ?? true) await cluster.waitForLeaders(60_000);
      return cluster;
    } catch (error) {
      process.stderr.write(cluster.tail());
      await cluster.stopAll();
      throw error;
    }
  }

  /** Ids of every node ever started (n1, n2, …). */
  get nodeIds(): string[] {
    return [...this.nodeProcesses.keys()];
  }

  /** The node's address. */
  nodeAddress(id: string): string {
    const managed = this.nodeProcesses.get(id);
    const index = managed?.args.indexOf('--port') ?? -1;
    if (managed === undefined || index < 0) throw new Error(`no node ${id}`);
    return `127.0.0.1:${managed.args[index + 1]}`;
  }

  /** The node's metrics (HTTP) port. */
  nodeMetricsPort(id: string): number {
    const managed = this.nodeProcesses.get(id);
    const index = managed?.args.indexOf('--metrics-port') ?? -1;
    if (managed === undefined || index < 0) throw new Error(`no node ${id}`);
    return Number(managed.args[index + 1]);
  }

  /** The PID of a running node, or undefined. */
  nodePid(id: string): number | undefined {
    const child = this.nodeProcesses.get(id)?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /** Starts a new node n<k+1> on fresh ports; returns its id. */
  async addNode(options: { waitForRegistration?: boolean } = {}): Promise<string> {
    const id = `n${++this.nodeCounter}`;
    const [port, metricsPort] = [await freePort(), await freePort()];
    const managed: ManagedProcess = {
      name: id,
      args: [
        'node', '--id', id, '--port', String(port), '--metrics-port', String(metricsPort),
        '--manager', this.managerAddress, '--data-dir', join(this.dir, id),
      ],
      child: undefined,
      exited: undefined,
    };
    this.nodeProcesses.set(id, managed);
    this.spawn(managed);
    if (options.waitForRegistration ?? true) {
      await waitFor(`${id} to register`, async () => (await this.clusterMap()).nodes.some((node) => node.nodeId === id), 30_000);
    }
    return id;
  }

  /** Sends `signal` to a node and waits until it has exited. */
  async killNode(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const managed = this.nodeProcesses.get(id);
    if (managed === undefined) throw new Error(`no node ${id}`);
    await this.kill(managed, signal);
  }

  /** Starts a stopped node again with the same id, ports and data dir. */
  restartNode(id: string): void {
    const managed = this.nodeProcesses.get(id);
    if (managed === undefined) throw new Error(`no node ${id}`);
    if (this.nodePid(id) !== undefined) throw new Error(`${id} is still running`);
    this.spawn(managed);
  }

  /** Kills the manager (SIGKILL by default) and waits for its exit. */
  async killManager(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.managerProcess !== undefined) await this.kill(this.managerProcess, signal);
    this.connection?.close();
    this.connection = undefined;
  }

  /** Starts the manager again with the same port and data dir. */
  restartManager(): void {
    if (this.managerProcess === undefined) throw new Error('no manager');
    this.spawn(this.managerProcess);
  }

  /** The manager's cluster map. */
  async clusterMap(): Promise<GetClusterMapResponse> {
    this.connection ??= new ManagerConnection(this.managerAddress);
    return this.connection.getClusterMap(3000);
  }

  /** The map in `kvstore status --json` form. */
  async status(): Promise<ClusterStatusJson> {
    return clusterStatusJson(this.managerAddress, await this.clusterMap());
  }

  /** Waits until every shard has a leader. */
  async waitForLeaders(deadlineMs: number): Promise<ClusterStatusJson> {
    return waitFor(
      'every shard to have a leader',
      async () => {
        const status = await this.status();
        return status.shards.length === this.shards && status.shards.every((shard) => shard.leader !== null) ? status : undefined;
      },
      deadlineMs,
    );
  }

  /** A KVClient for this cluster, finalized by {@link stopAll}. */
  client(options: Partial<KVClientOptions> = {}): KVClient {
    const client = new KVClient({ manager: this.managerAddress, ...options });
    this.clients.push(client);
    return client;
  }

  /** Runs the CLI with `--manager` pointing at this cluster appended. */
  cli(args: string[], options: { input?: string | Uint8Array; timeoutMs?: number } = {}): Promise<CliResult> {
    return runCli([...args, '--manager', this.managerAddress], options);
  }

  /** The last `lines` lines of the cluster log. */
  tail(lines = 80): string {
    let text: string;
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return '(no log)\n';
    }
    return `--- last ${lines} lines of ${this.logFile}\n${text.split('\n').slice(-lines - 1).join('\n')}\n`;
  }

  /**
   * Finalizes clients and stops every process by PID: SIGTERM, then SIGKILL after 3 s. Safe to call twice.
   * With `removeDir`, deletes the temp dir afterwards.
   */
  async stopAll(options: { removeDir?: boolean } = {}): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.finalize()));
    this.connection?.close();
    this.connection = undefined;
    const all = [...this.nodeProcesses.values(), ...(this.managerProcess === undefined ? [] : [this.managerProcess])];
    await Promise.all(all.map((managed) => this.kill(managed, 'SIGTERM', 3000)));
    if (options.removeDir === true) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills every process at once with SIGKILL (a whole-cluster crash). */
  async crashAll(): Promise<void> {
    const all = [...this.nodeProcesses.values(), ...(this.managerProcess === undefined ? [] : [this.managerProcess])];
    for (const managed of all) if (managed.child?.exitCode === null && managed.child.signalCode === null) managed.child.kill('SIGKILL');
    await Promise.all(all.map((managed) => managed.exited ?? Promise.resolve()));
    this.connection?.close();
    this.connection = undefined;
  }

  /** Restarts the manager and every node after {@link crashAll}. */
  restartAll(): void {
    if (this.managerProcess !== undefined) this.spawn(this.managerProcess);
    for (const managed of this.nodeProcesses.values()) this.spawn(managed);
  }

  private spawn(managed: ManagedProcess): void {
    const log = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [MAIN_SCRIPT, ...managed.args], {
      stdio: ['pipe', log, log],
      env: { ...process.env, KVSTORE_PARENT_WATCH: '1', KVSTORE_LOG_LEVEL: process.env['KVSTORE_LOG_LEVEL'] ?? 'info' },
    });
    closeSync(log);
    child.stdin?.on('error', () => undefined);
    child.on('error', (error) => process.stderr.write(`${managed.name} failed to start: ${error.message}\n`));
    managed.child = child;
    managed.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  private async kill(managed: ManagedProcess, signal: NodeJS.Signals, escalateAfterMs?: number): Promise<void> {
    const child = managed.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    if (escalateAfterMs !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([managed.exited, new Promise((resolve) => (timer = setTimeout(resolve, escalateAfterMs)))]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await managed.exited;
    child.stdin?.destroy();
  }
}

/** In an `afterEach`: prints the cluster log's tail when the test failed. */
export function printTailOnFailure(context: Mocha.Context, cluster: TestCluster | undefined): void {
  if (cluster !== undefined && context.currentTest?.state === 'failed') process.stderr.write(cluster.tail());
}
