/**
 * The local cluster a chaos run controls: the manager and N node processes, started with the same
 * arguments `kvstore cluster` uses (its exported `childCommands`), each of which the nemesis can
 * kill -9, pause (SIGSTOP), resume (SIGCONT) and restart on the same ports and data dir.
 *
 * Every child gets KVSTORE_PARENT_WATCH=1 and a stdin pipe (src/common/parent-watch.ts), so it exits
 * if this process dies; a paused child cannot notice that, so `stop()` and `killAllNow()` resume
 * before they terminate, and `processes.txt` (name and pid per line, rewritten on every spawn) lets a
 * harness kill leftovers by pid. Logs go to `<logDir>/<name>.log`, appended across restarts.
 *
 * With `isolateNodes` (for the `partition` fault; root only, see netns.ts) every node runs in its own
 * network namespace on a bridge: node nI at 10.213.X.(9+I), started as `ip netns exec NS node …
 * --host ADDR --advertise ADDR:PORT` (`ip netns exec` execs in place, so the pid is the node's and
 * kill -9 / SIGSTOP reach it); the manager stays in this namespace on its own bridge address
 * (10.213.X.2), and this process — the workload's clients, the watch, the checker — reaches both
 * from the bridge's gateway (10.213.X.1). Each node has its own network stack, so ports (gRPC and
 * metrics) cannot collide. {@link LocalCluster.cut} blackholes links between namespaces; the
 * network is removed in `stop()` and `killAllNow()`, and at once if the cluster fails to start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childCommands, type ChildHosts, type ClusterSettings } from '../cli/cluster-command.js';
import { findFreePortRange, type Logger } from '../common/index.js';
import { PARENT_WATCH_ENV } from '../common/parent-watch.js';
import { NetnsNetwork } from './netns.js';
import { MANAGER_ENDPOINT, type DirectedLink } from './partition.js';

/** How the cluster is laid out. */
export interface LocalClusterOptions {
  nodes: number;
  replicas: number;
  shards: number;
  /** The manager's `--down-after`: short, so re-replication happens within a short run. */
  downAfterSeconds: number;
  /** Data dirs go under it (`manager`, `n1`…). */
  dataDir: string;
  /** Where each process's log goes. */
  logDir: string;
  /** Path of `dist/src/cli/main.js`. */
  mainScript: string;
  /** Manager port; nodes use port+1…port+N, metrics ports +1000. Default: a free range. */
  port?: number;
  /** Extra arguments for every node (e.g. a test-only flag). */
  nodeArgs?: readonly string[];
  /** Extra environment for every child. */
  env?: NodeJS.ProcessEnv;
  /** Called when a child exits without being told to (crash, bad flag). */
  onUnexpectedExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Run every node in its own network namespace so links can be cut (see the file comment). Needs root. */
  isolateNodes?: boolean;
  /** Where the network's setup and teardown are logged. */
  logger?: Logger;
}

/** How long children get after SIGTERM before SIGKILL at `stop()`. */
const STOP_GRACE_MS = 5000;

interface Member {
  name: string;
  args: string[];
  child: ChildProcess | undefined;
  paused: boolean;
  /** Set while we kill it on purpose, so its exit is not reported as unexpected. */
  expectingExit: boolean;
  exited: Promise<void>;
}

/** A manager plus nodes under this process's control. */
export class LocalCluster {
  /** `host:port` of the manager: 127.0.0.1, or its bridge address with `isolateNodes`. */
  readonly managerAddress: string;
  /** `n1`…`nN`. */
  readonly nodeIds: readonly string[];
  private readonly members = new Map<string, Member>();
  private stopping = false;

  private constructor(
    private readonly options: LocalClusterOptions,
    readonly port: number,
    /** The namespaces the nodes run in, with `isolateNodes`. */
    private readonly network: NetnsNetwork | undefined,
  ) {
    const hosts: ChildHosts | undefined = network === undefined
      ? undefined
      : { manager: network.address(MANAGER_ENDPOINT), node: (nodeId) => network.address(nodeId) };
    this.managerAddress = `${hosts?.manager ?? '127.0.0.1'}:${port}`;
    for (const { name, args } of childCommands(clusterSettings(options, port), options.mainScript, hosts)) {
      const extra = name === 'manager' ? [] : (options.nodeArgs ?? []);
      this.members.set(name, { name, args: [...args, ...extra], child: undefined, paused: false, expectingExit: false, exited: Promise.resolve() });
    }
    this.nodeIds = [...this.members.keys()].filter((name) => name !== 'manager');
  }

  /**
   * Spawns every process (it does not wait for readiness: poll the manager for that). With
   * `isolateNodes` it builds the network first; if anything fails, what was built is removed.
   */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    mkdirSync(options.dataDir, { recursive: true });
    mkdirSync(options.logDir, { recursive: true });
    const port = options.port ?? (await findFreePortRange(options.nodes + 1));
    const network = options.isolateNodes === true ? new NetnsNetwork(options.logger) : undefined;
    try {
      if (network !== undefined) {
        const nodeIds = childCommands(clusterSettings(options, port), options.mainScript).map((command) => command.name).filter((name) => name !== MANAGER_ENDPOINT);
        network.create(nodeIds, { rootNames: [MANAGER_ENDPOINT] });
      }
      const cluster = new LocalCluster(options, port, network);
      for (const name of cluster.members.keys()) cluster.spawn(name);
      return cluster;
    } catch (error) {
      network?.destroy();
      throw error;
    }
  }

  /** Whether links can be cut: the nodes run in their own namespaces. */
  canPartition(): boolean {
    return this.network !== undefined;
  }

  /**
   * Cuts each link with a blackhole route in the `from` node's namespace (`to` is a node id or
   * `manager`); {@link healPartition} removes them all. Throws when the nodes share one namespace.
   */
  cut(links: readonly DirectedLink[]): void {
    const network = this.network;
    if (network === undefined) throw new Error('links can only be cut when the nodes run in their own network namespaces (isolateNodes)');
    for (const link of links) network.blackhole(link.from, network.address(link.to));
  }

  /** Removes every cut; returns how many blackhole routes there were (0 without namespaces). */
  healPartition(): number {
    return this.network?.removeBlackholes() ?? 0;
  }

  /** The names the nemesis can target: `manager`, `n1`…. */
  names(): string[] {
    return [...this.members.keys()];
  }

  /** The process id of a running member. */
  pid(name: string): number | undefined {
    const child = this.member(name).child;
    return child !== undefined && isAlive(child) ? child.pid : undefined;
  }

  /** Whether the member's process is alive (paused counts as alive). */
  isRunning(name: string): boolean {
    const child = this.member(name).child;
    return child !== undefined && isAlive(child);
  }

  /** Whether the member is stopped with SIGSTOP. */
  isPaused(name: string): boolean {
    return this.member(name).paused;
  }

  /** kill -9; resolves once the process is gone. */
  async kill(name: string): Promise<void> {
    const member = this.member(name);
    if (member.child === undefined || !isAlive(member.child)) return;
    member.expectingExit = true;
    member.child.kill('SIGKILL');
    await member.exited;
    member.paused = false;
  }

  /** SIGSTOP: the process freezes with its sockets open, like a long GC pause or a hung VM. */
  pause(name: string): void {
    const member = this.member(name);
    if (member.child === undefined || !isAlive(member.child) || member.paused) return;
    member.child.kill('SIGSTOP');
    member.paused = true;
  }

  /** SIGCONT. */
  resume(name: string): void {
    const member = this.member(name);
    if (member.child === undefined || !isAlive(member.child) || !member.paused) return;
    member.child.kill('SIGCONT');
    member.paused = false;
  }

  /** Starts a member that is not running again, with the same arguments and data dir. */
  restart(name: string): void {
    if (this.isRunning(name)) return;
    this.spawn(name);
  }

  /** Removes every cut link, resumes every paused member and restarts every dead one. */
  heal(): string[] {
    const healed: string[] = [];
    const routes = this.healPartition();
    if (routes > 0) healed.push(`partition healed: removed ${routes} blackhole routes`);
    for (const name of this.members.keys()) {
      if (this.isPaused(name)) {
        this.resume(name);
        healed.push(`resumed ${name}`);
      } else if (!this.isRunning(name)) {
        this.restart(name);
        healed.push(`restarted ${name}`);
      }
    }
    return healed;
  }

  /** Resumes, then SIGTERM, then SIGKILL after a grace period; resolves when every child exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    const members = [...this.members.values()];
    for (const member of members) {
      if (member.child === undefined || !isAlive(member.child)) continue;
      member.expectingExit = true;
      if (member.paused) member.child.kill('SIGCONT');
      member.child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_GRACE_MS);
    });
    await Promise.race([Promise.all(members.map((member) => member.exited)), grace]);
    clearTimeout(timer);
    for (const member of members) if (member.child !== undefined && isAlive(member.child)) member.child.kill('SIGKILL');
    await Promise.all(members.map((member) => member.exited));
    for (const member of members) member.child?.stdin?.destroy();
    this.network?.destroy();
  }

  /** Synchronous last resort for a `process.on('exit')` handler: SIGKILL every live child, remove the network. */
  killAllNow(): void {
    this.stopping = true;
    for (const member of this.members.values()) {
      const child = member.child;
      if (child !== undefined && isAlive(child)) {
        member.expectingExit = true;
        child.kill('SIGKILL');
      }
    }
    this.network?.destroy(); // synchronous: removes the veths at once, even if a dying node still pins its namespace
  }

  private member(name: string): Member {
    const member = this.members.get(name);
    if (member === undefined) throw new Error(`no cluster member named ${name}`);
    return member;
  }

  private spawn(name: string): void {
    const member = this.member(name);
    const logFd = openSync(join(this.options.logDir, `${name}.log`), 'a');
    // `ip netns exec` execs the node in place: the child's pid is the node's.
    const namespace = name === MANAGER_ENDPOINT ? undefined : this.network?.host(name).namespace;
    const [command, args] = namespace === undefined
      ? [process.execPath, member.args]
      : ['ip', ['netns', 'exec', namespace, process.execPath, ...member.args]];
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        stdio: ['pipe', logFd, logFd],
        env: { ...process.env, ...this.options.env, [PARENT_WATCH_ENV]: '1' },
      });
    } finally {
      closeSync(logFd);
    }
    child.stdin?.on('error', () => undefined); // the child may exit first; its pipe then errors on close
    member.child = child;
    member.paused = false;
    member.expectingExit = false;
    member.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        if (!member.expectingExit && !this.stopping) this.options.onUnexpectedExit?.(name, code, signal);
        resolve();
      });
      child.once('error', () => resolve());
    });
    this.writeProcessList();
  }

  private writeProcessList(): void {
    const lines = [...this.members.values()].flatMap((member) => (member.child?.pid === undefined ? [] : [`${member.name} ${member.child.pid}`]));
    writeFileSync(join(this.options.dataDir, 'processes.txt'), `${lines.join('\n')}\n`);
  }
}

function clusterSettings(options: LocalClusterOptions, port: number): ClusterSettings {
  return {
    nodes: options.nodes,
    replicas: options.replicas,
    shards: options.shards,
    port,
    dataDir: options.dataDir,
    downAfterSeconds: options.downAfterSeconds,
    logLevel: undefined,
    leaseReads: true,
  };
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

