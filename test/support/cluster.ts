/**
 * Integration-test harness: a manager and N storage nodes as real processes (`node dist/src/cli/main.js
 * …`, started by src/cluster) on free loopback ports, with a temp data dir. Every process is started
 * with KVSTORE_PARENT_WATCH=1 and a stdin pipe, so it exits if the test runner dies; tests still stop
 * everything by PID in `after`/`afterEach` via {@link TestCluster.stopAll}. All processes append
 * their stderr to one log file under the temp dir; {@link TestCluster.tail} shows the end of it.
 * Waiting is polling with a deadline (wait-for.ts), never a bare sleep.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KVClient, ManagerConnection, type KVClientOptions } from '../../src/client/index.js';
import { clusterStatusJson, type ClusterStatusJson } from '../../src/cli/status-util.js';
import {
  certsDir,
  childCommand,
  CLI_MAIN_SCRIPT,
  connectManager,
  localClusterSecurity,
  Launcher,
  MANAGER_NAME,
  managerAddress,
  nodeName,
  waitForLeaders,
  type ClientCredentials,
  type ClusterProcess,
  type ClusterSpec,
  type Endpoint,
} from '../../src/cluster/index.js';
import { findFreePort } from '../../src/common/index.js';
import type { GetClusterMapResponse } from '../../src/gen/kvstore/v1/manager.js';
import { waitFor } from './wait-for.js';

/** The CLI entry point, compiled. */
export const MAIN_SCRIPT = CLI_MAIN_SCRIPT;

/** How long {@link TestCluster.stopAll} gives processes after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3000;

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
  /** Mutual TLS, certificates made in `DIR/certs` (as `kvstore cluster --tls`); clients, `cli()` and the map use the client certificate. */
  tls?: boolean;
  /** `--auth-token-file` for every process; without TLS, clients, `cli()` and the map send its first token. */
  authTokenFile?: string;
}

/** A manager plus storage nodes as real processes, started by src/cluster's {@link Launcher}. */
export class TestCluster {
  /** The temp dir holding every data dir and the log. */
  readonly dir: string;
  /** Where every process's stderr goes. */
  readonly logFile: string;
  readonly shards: number;
  readonly replicas: number;
  readonly downAfterSeconds: number;
  readonly managerAddress: string;
  /** What this test presents to the cluster (the client certificate, the token); empty for a plaintext, open cluster. */
  credentials: ClientCredentials = {};
  private readonly spec: ClusterSpec;
  private readonly launcher: Launcher;
  /** Where each node listens, by id: fresh ports per node, kept across restarts. */
  private readonly nodeEndpoints = new Map<string, Endpoint>();
  private readonly clients: KVClient[] = [];
  private connection: ManagerConnection | undefined;
  private nodeCounter = 0;

  private constructor(options: TestClusterOptions, manager: Endpoint) {
    this.dir = mkdtempSync(join(tmpdir(), 'kvstore-it-'));
    mkdirSync(join(this.dir, 'logs'));
    this.logFile = join(this.dir, 'logs', 'cluster.log');
    this.shards = options.shards ?? 16;
    this.replicas = options.replicas ?? 3;
    this.downAfterSeconds = options.downAfterSeconds ?? 10;
    this.spec = {
      mainScript: MAIN_SCRIPT,
      nodes: options.nodes,
      replicas: this.replicas,
      shards: this.shards,
      dataDir: this.dir,
      downAfterSeconds: this.downAfterSeconds,
      manager,
      node: (index) => this.endpoint(nodeName(index)),
    };
    this.managerAddress = managerAddress(this.spec);
    this.launcher = new Launcher({
      env: { KVSTORE_LOG_LEVEL: process.env['KVSTORE_LOG_LEVEL'] ?? 'info' },
      logFile: () => this.logFile,
      onError: (name, error) => process.stderr.write(`${name} failed to start: ${error.message}\n`),
    });
  }

  /** Starts the manager and `nodes` nodes (n1…nN); by default waits until every shard has a leader. */
  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const cluster = new TestCluster(options, { port, metricsPort });
    try {
      if (options.tls === true || options.authTokenFile !== undefined) {
        const security = await localClusterSecurity(cluster.dir, { tls: options.tls === true, authTokenFile: options.authTokenFile });
        cluster.spec.security = security.server;
        cluster.credentials = security.client;
      }
      cluster.launcher.start(childCommand(cluster.spec, MANAGER_NAME));
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
    return [...this.nodeEndpoints.keys()];
  }

  /** The node's address. */
  nodeAddress(id: string): string {
    return `127.0.0.1:${this.endpoint(id).port}`;
  }

  /** The node's metrics (HTTP) port. */
  nodeMetricsPort(id: string): number {
    const port = this.endpoint(id).metricsPort;
    if (port === undefined) throw new Error(`no metrics port for ${id}`);
    return port;
  }

  /** The PID of a running node, or undefined. */
  nodePid(id: string): number | undefined {
    return this.nodeEndpoints.has(id) ? this.launcher.find(id)?.pid : undefined;
  }

  /** Starts a new node n<k+1> on fresh ports; returns its id. */
  async addNode(options: { waitForRegistration?: boolean } = {}): Promise<string> {
    const index = ++this.nodeCounter;
    const id = nodeName(index);
    const [port, metricsPort] = [await freePort(), await freePort()];
    this.nodeEndpoints.set(id, { port, metricsPort });
    this.launcher.start(childCommand(this.spec, index));
    if (options.waitForRegistration ?? true) {
      await waitFor(`${id} to register`, async () => (await this.clusterMap()).nodes.some((node) => node.nodeId === id), 30_000);
    }
    return id;
  }

  /** Sends `signal` to a node and waits until it has exited. */
  async killNode(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.node(id).kill(signal);
  }

  /** Starts a stopped node again with the same id, ports and data dir. */
  restartNode(id: string): void {
    this.node(id).start();
  }

  /** Kills the manager (SIGKILL by default) and waits for its exit. */
  async killManager(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.launcher.find(MANAGER_NAME)?.kill(signal);
    this.connection?.close();
    this.connection = undefined;
  }

  /** The PID of the running manager, or undefined. */
  managerPid(): number | undefined {
    return this.launcher.find(MANAGER_NAME)?.pid;
  }

  /** Starts the manager again with the same port and data dir. */
  restartManager(): void {
    this.launcher.get(MANAGER_NAME).start();
  }

  /** The manager's cluster map. */
  async clusterMap(): Promise<GetClusterMapResponse> {
    this.connection ??= connectManager({ address: this.managerAddress, credentials: this.credentials });
    return this.connection.getClusterMap(3000);
  }

  /** The map in `kvstore status --json` form. */
  async status(): Promise<ClusterStatusJson> {
    return clusterStatusJson(this.managerAddress, await this.clusterMap());
  }

  /** Waits until every shard has a leader (src/cluster's readiness poll). */
  async waitForLeaders(deadlineMs: number): Promise<ClusterStatusJson> {
    const outcome = await waitForLeaders({ address: this.managerAddress, credentials: this.credentials }, { timeoutMs: deadlineMs, fetchTimeoutMs: 3000 });
    if (!outcome.ready) {
      const why = outcome.lastError === undefined ? '' : ` (last error: ${outcome.lastError.message})`;
      throw new Error(`timed out after ${deadlineMs} ms waiting for every shard to have a leader${why}`);
    }
    return clusterStatusJson(this.managerAddress, outcome.map);
  }

  /** A KVClient for this cluster, finalized by {@link stopAll}. */
  client(options: Partial<KVClientOptions> = {}): KVClient {
    const client = new KVClient({ manager: this.managerAddress, ...this.credentials, ...options });
    this.clients.push(client);
    return client;
  }

  /**
   * Runs the CLI with `--manager` pointing at this cluster appended, and this test's credentials
   * (`--tls-ca`/`--cert`/`--key` of a TLS cluster, `--token` of a token-only one) unless `bare`.
   */
  cli(args: string[], options: { input?: string | Uint8Array; timeoutMs?: number; bare?: boolean } = {}): Promise<CliResult> {
    return runCli([...args, '--manager', this.managerAddress, ...(options.bare === true ? [] : this.credentialArgs())], options);
  }

  /** The client flags that present this test's credentials. */
  credentialArgs(): string[] {
    const certs = certsDir(this.dir);
    if (this.credentials.tls !== undefined) {
      return ['--tls-ca', join(certs, 'ca.crt'), '--cert', join(certs, 'client.crt'), '--key', join(certs, 'client.key')];
    }
    return this.credentials.token === undefined ? [] : ['--token', this.credentials.token];
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
    await this.launcher.stop(STOP_GRACE_MS);
    if (options.removeDir === true) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills every process at once with SIGKILL (a whole-cluster crash). */
  async crashAll(): Promise<void> {
    this.launcher.killAllNow();
    await this.launcher.allExited();
    this.connection?.close();
    this.connection = undefined;
  }

  /** Restarts the manager and every node after {@link stopAll} or {@link crashAll}. */
  restartAll(): void {
    for (const child of this.launcher.all()) child.start();
  }

  private node(id: string): ClusterProcess {
    const child = this.nodeEndpoints.has(id) ? this.launcher.find(id) : undefined;
    if (child === undefined) throw new Error(`no node ${id}`);
    return child;
  }

  private endpoint(id: string): Endpoint {
    const endpoint = this.nodeEndpoints.get(id);
    if (endpoint === undefined) throw new Error(`no node ${id}`);
    return endpoint;
  }
}

/** In an `afterEach`: prints the cluster log's tail when the test failed. */
export function printTailOnFailure(context: Mocha.Context, cluster: TestCluster | undefined): void {
  if (cluster !== undefined && context.currentTest?.state === 'failed') process.stderr.write(cluster.tail());
}

/** A suite's cluster and its initialized client, started once for the suite (see {@link useTestCluster}). */
export interface SuiteCluster {
  readonly cluster: TestCluster;
  readonly kv: KVClient;
}

/**
 * Starts a cluster and an initialized client before the suite's tests, prints the log's tail
 * after a failed test, and finalizes the client and stops every process (data dir removed)
 * after the suite. Call it in a `describe` body; read the fields inside tests.
 */
export function useTestCluster(options: TestClusterOptions): SuiteCluster {
  let cluster: TestCluster | undefined;
  let kv: KVClient | undefined;
  before(async () => {
    cluster = await TestCluster.start(options);
    kv = cluster.client();
    await kv.init();
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await kv?.finalize();
    await cluster?.stopAll({ removeDir: true });
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the suite cluster is not started (use its fields inside tests)');
    return value;
  };
  return {
    get cluster() { return started(cluster); },
    get kv() { return started(kv); },
  };
}
