/**
 * The local cluster a chaos run controls: the manager and N node processes, started by src/cluster
 * with the same arguments `kvstore cluster` uses, each of which the nemesis can kill -9, pause
 * (SIGSTOP), resume (SIGCONT) and restart on the same ports and data dir.
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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  childCommands,
  Launcher,
  managerAddress,
  MANAGER_NAME,
  nodeName,
  portRange,
  STOP_GRACE_MS,
  type ChildHosts,
  type ClusterProcess,
  type ClientCredentials,
  type ClusterSecurity,
  type ClusterSpec,
  localClusterSecurity,
} from '../cluster/index.js';
import { findFreePortRange, type Logger } from '../common/index.js';
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
  /** Start every node with `--unsafe-stale-reads` (the negative test; `env` must allow it). */
  unsafeStaleReads?: boolean;
  /** Extra environment for every child. */
  env?: NodeJS.ProcessEnv;
  /** Called when a child exits without being told to (crash, bad flag). */
  onUnexpectedExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Run every node in its own network namespace so links can be cut (see the file comment). Needs root. */
  isolateNodes?: boolean;
  /** Where the network's setup and teardown are logged. */
  logger?: Logger;
  /** Mutual TLS between every process and for clients; certificates made in `dataDir/certs` for the addresses used. */
  tls?: boolean;
}

/** A manager plus nodes under this process's control. */
export class LocalCluster {
  /** `host:port` of the manager: 127.0.0.1, or its bridge address with `isolateNodes`. */
  readonly managerAddress: string;
  /** `n1`…`nN`. */
  readonly nodeIds: readonly string[];
  /** What clients of this cluster present (the client certificate with `tls`); empty otherwise. */
  readonly credentials: ClientCredentials;
  private readonly spec: ClusterSpec;
  private readonly launcher: Launcher;

  private constructor(
    private readonly options: LocalClusterOptions,
    readonly port: number,
    /** The namespaces the nodes run in, with `isolateNodes`. */
    private readonly network: NetnsNetwork | undefined,
    security: ClusterSecurity,
  ) {
    const hosts = hostsOf(network);
    this.credentials = security.client;
    this.spec = {
      security: security.server,
      mainScript: options.mainScript,
      ...portRange(port, hosts),
      nodes: options.nodes,
      replicas: options.replicas,
      shards: options.shards,
      dataDir: options.dataDir,
      downAfterSeconds: options.downAfterSeconds,
      unsafeStaleReads: options.unsafeStaleReads === true,
    };
    this.managerAddress = managerAddress(this.spec);
    this.nodeIds = nodeIdsOf(options);
    this.launcher = new Launcher({
      ...(options.env === undefined ? {} : { env: options.env }),
      logFile: (name) => join(options.logDir, `${name}.log`),
      // `ip netns exec` execs the node in place: the child's pid is the node's.
      command: (name, argv) => {
        const namespace = name === MANAGER_NAME ? undefined : network?.host(name).namespace;
        return namespace === undefined
          ? { file: process.execPath, args: [...argv] }
          : { file: 'ip', args: ['netns', 'exec', namespace, process.execPath, ...argv] };
      },
      onSpawn: () => this.writeProcessList(),
      ...(options.onUnexpectedExit === undefined ? {} : { onUnexpectedExit: options.onUnexpectedExit }),
    });
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
      network?.create(nodeIdsOf(options), { rootNames: [MANAGER_ENDPOINT] });
      const hosts = hostsOf(network);
      const security = await localClusterSecurity(options.dataDir, {
        tls: options.tls === true,
        hosts: hosts === undefined ? [] : [hosts.manager, ...nodeIdsOf(options).map((nodeId) => hosts.node(nodeId))],
      });
      // Nodes in namespaces listen on bridge addresses, not loopback: plaintext there is meant.
      if (options.tls !== true && hosts !== undefined) security.server.insecure = true;
      const cluster = new LocalCluster(options, port, network, security);
      for (const command of childCommands(cluster.spec)) cluster.launcher.start(command);
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
    return this.launcher.all().map((member) => member.name);
  }

  /** The process id of a running member. */
  pid(name: string): number | undefined {
    return this.member(name).pid;
  }

  /** Whether the member's process is alive (paused counts as alive). */
  isRunning(name: string): boolean {
    return this.member(name).running;
  }

  /** Whether the member is stopped with SIGSTOP. */
  isPaused(name: string): boolean {
    return this.member(name).isPaused;
  }

  /** kill -9; resolves once the process is gone. */
  async kill(name: string): Promise<void> {
    await this.member(name).kill('SIGKILL');
  }

  /** SIGSTOP: the process freezes with its sockets open, like a long GC pause or a hung VM. */
  pause(name: string): void {
    this.member(name).pause();
  }

  /** SIGCONT. */
  resume(name: string): void {
    this.member(name).resume();
  }

  /** Starts a member that is not running again, with the same arguments and data dir. */
  restart(name: string): void {
    if (this.isRunning(name)) return;
    this.member(name).start();
  }

  /** Removes every cut link, resumes every paused member and restarts every dead one. */
  heal(): string[] {
    const healed: string[] = [];
    const routes = this.healPartition();
    if (routes > 0) healed.push(`partition healed: removed ${routes} blackhole routes`);
    for (const name of this.names()) {
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
    await this.launcher.stop(STOP_GRACE_MS);
    this.network?.destroy();
  }

  /** Synchronous last resort for a `process.on('exit')` handler: SIGKILL every live child, remove the network. */
  killAllNow(): void {
    this.launcher.killAllNow();
    this.network?.destroy(); // synchronous: removes the veths at once, even if a dying node still pins its namespace
  }

  private member(name: string): ClusterProcess {
    return this.launcher.get(name);
  }

  private writeProcessList(): void {
    const lines = this.launcher.all().flatMap((member) => (member.lastPid === undefined ? [] : [`${member.name} ${member.lastPid}`]));
    writeFileSync(join(this.options.dataDir, 'processes.txt'), `${lines.join('\n')}\n`);
  }
}

/** `n1`…`nN`. */
function nodeIdsOf(options: LocalClusterOptions): string[] {
  return Array.from({ length: options.nodes }, (_, i) => nodeName(i + 1));
}

/** Where the children listen with their own namespaces; undefined: all on 127.0.0.1. */
function hostsOf(network: NetnsNetwork | undefined): ChildHosts | undefined {
  return network === undefined
    ? undefined
    : { manager: network.address(MANAGER_ENDPOINT), node: (nodeId) => network.address(nodeId) };
}
